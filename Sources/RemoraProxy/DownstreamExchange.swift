import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraPolicy

/// One request/response exchange on a downstream connection: route, forward the head
/// and body upstream, stream the response back, or answer locally (SPEC §6).
extension DownstreamConnection {
    /// Parses and forwards as far as the buffers allow.
    func process() {
        while !closed && !closing {
            switch requestPhase {
            case .head:
                guard upstream == nil, responsePhase == .waiting, !inBuf.isEmpty else { return }
                switch HTTP1Parser.parseRequestHead(inBuf.readable, into: &head, limits: headLimits, scanFrom: &scanFrom) {
                case .incomplete:
                    if timerPurpose == .idle { arm(.header, DownstreamConnection.headerTimeoutMs) }
                    return
                case .error(let e):
                    reject(e)
                    return
                case .complete:
                    startExchange()
                }
            case .body:
                if !pumpRequestBody() { return }
            case .done:
                return
            case .tunnel:
                pumpTunnel()
                return
            }
        }
    }

    /// A request the codec refused: answer and close (framing is in doubt).
    private func reject(_ e: HTTP1Error) {
        inBuf.clear()
        LocalReply.writeError(e, into: outBuf)
        closeAfterFlush()
    }

    private func startExchange() {
        let st = worker.state
        exchangeState = st
        worker.loop.cancel(timer)
        keepAlive = head.keepAlive && !worker.draining
        retried = false
        responseFraming = .asIs
        lastChunkWritten = false
        let buf = inBuf.readable
        let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: listener.spec.address.port)

        guard let li = listener.listenerIndex(in: st),
              case .route(let entry) = st.snapshot.route(listener: li, req) else {
            return answerLocally(.noRoute)
        }
        let clusterIndex = entry.pickCluster(random: worker.random.next32())
        let cluster = st.clusters[clusterIndex]
        guard let ep = worker.pickEndpoint(cluster: clusterIndex, in: st) else {
            return answerLocally(.noHealthyUpstream)
        }
        endpoint = ep
        connectTimeoutMs = cluster.spec.connectTimeoutMs
        guard let (us, reused) = worker.acquireUpstream(ep, connectTimeoutMs: connectTimeoutMs) else {
            return answerLocally(.connectFailure)
        }
        upstream = us
        us.attach(self, method: head.methodKind)
        let ctx = HeadWriter.RequestContext(
            peerIP: peerIP, forwardedProto: "http", edge: listener.spec.kind == .gateway,
            path: req.pathRange,
            hostFallback: head.hostIndex == nil ? (req.authorityRange.map(req.string) ?? cluster.spec.host) : nil)
        let before = us.outBuf.count
        HeadWriter.writeRequest(head, buf: buf, ctx: ctx, into: us.outBuf, random: &worker.random)
        replay.clear()
        if reused && head.framing == .none && !head.upgrade {
            replay.append(UnsafeRawBufferPointer(rebasing: us.outBuf.readable[before...]))
        }
        inBuf.consume(head.headBytes)
        scanFrom = 0
        requestBody = BodyDecoder(framing: head.framing)
        requestPhase = requestBody.isComplete ? .done : .body
        if head.expectContinue && requestPhase == .body {
            outBuf.append("HTTP/1.1 100 Continue\r\n\r\n")
            flush()
        }
        if let t = entry.timeoutMs, t > 0 { arm(.request, t) }
        us.flush()
    }

    /// Answers with a proxy-generated response. A request body not yet read cannot be
    /// skipped safely, so such a connection closes after the reply.
    func answerLocally(_ reply: LocalReply) {
        let unreadBody = requestPhase == .head ? head.framing != .none : requestPhase == .body
        if unreadBody { keepAlive = false }
        if requestPhase == .head {
            inBuf.consume(head.headBytes)
            scanFrom = 0
        }
        reply.write(into: outBuf, close: !keepAlive, headRequest: head.methodKind == .head)
        requestPhase = .done
        responsePhase = .done
        finishExchange(reusable: false)
    }

    // MARK: request body

    /// Moves body bytes from the read buffer to the upstream. Returns false when no
    /// progress can be made until more input arrives or the upstream drains.
    private func pumpRequestBody() -> Bool {
        guard let us = upstream else { return false }
        let room = limits.bufferLimitBytes - us.outBuf.count
        if room <= 0 { return false }
        if inBuf.isEmpty { return false }
        let out = us.outBuf
        let chunked = head.framing == .chunked
        let consumed: Int
        do {
            consumed = try requestBody.decode(inBuf.readable, maxData: room, onData: { data in
                if chunked {
                    let p = out.reserve(18)
                    out.commit(HTTP1Parser.writeChunkHeader(size: data.count, to: p))
                    out.append(data)
                    out.append("\r\n")
                } else {
                    out.append(data)
                }
            }, onTrailers: { trailers in
                out.append("0\r\n")
                out.append(trailers)
                out.append("\r\n")
            })
        } catch {
            // Malformed body framing from the client: nothing more can be trusted.
            if responsePhase == .waiting {
                upstream = nil
                us.abandon()
                requestPhase = .done
                keepAlive = false
                inBuf.clear()
                LocalReply.writeError(HTTP1Error(status: 400, reason: error.reason), into: outBuf)
                closeAfterFlush()
            } else {
                abort()
            }
            return false
        }
        inBuf.consume(consumed)
        if requestBody.isComplete {
            requestPhase = .done
            if responsePhase == .done { finishExchange(reusable: false) }
        }
        us.flush()
        return consumed > 0 && requestPhase == .body
    }

    private func pumpTunnel() {
        guard let us = upstream, !inBuf.isEmpty else { return }
        let room = limits.bufferLimitBytes - us.outBuf.count
        guard room > 0 else { return }
        let n = min(room, inBuf.count)
        us.outBuf.append(UnsafeRawBufferPointer(rebasing: inBuf.readable[..<n]))
        inBuf.consume(n)
        us.flush()
    }

    // MARK: upstream callbacks

    /// The response head arrived (final status, or 101 for an upgrade).
    func upstreamResponseHead(_ rh: ResponseHead, buf: UnsafeRawBufferPointer) {
        if rh.status == 101 {
            HeadWriter.writeResponse(rh, buf: buf, framing: .asIs, close: false, keepAliveHeader: false, into: outBuf)
            requestPhase = .tunnel
            responsePhase = .tunnel
            worker.loop.cancel(timer)
            flush()
            scheduleResume()   // bytes the client sent after its request are tunnel data
            return
        }
        let clientHTTP10 = head.minorVersion == 0
        switch rh.framing {
        case .none, .contentLength: responseFraming = .asIs
        case .chunked, .untilClose: responseFraming = clientHTTP10 ? .closeDelimited : .chunked
        }
        if requestPhase == .body || responseFraming == .closeDelimited || worker.draining { keepAlive = false }
        HeadWriter.writeResponse(rh, buf: buf, framing: responseFraming, close: !keepAlive,
                                 keepAliveHeader: clientHTTP10 && keepAlive, into: outBuf)
        responsePhase = .streaming
    }

    func upstreamResponseData(_ data: UnsafeRawBufferPointer) {
        guard head.methodKind != .head else { return }
        if responseFraming == .chunked {
            let p = outBuf.reserve(18)
            outBuf.commit(HTTP1Parser.writeChunkHeader(size: data.count, to: p))
            outBuf.append(data)
            outBuf.append("\r\n")
        } else {
            outBuf.append(data)
        }
    }

    func upstreamResponseTrailers(_ trailers: UnsafeRawBufferPointer) {
        guard responseFraming == .chunked, head.methodKind != .head else { return }
        outBuf.append("0\r\n")
        outBuf.append(trailers)
        outBuf.append("\r\n")
        lastChunkWritten = true
    }

    /// The response is complete. `reusable`: the upstream may keep the connection.
    func upstreamResponseEnd(reusable: Bool) {
        if responseFraming == .chunked && !lastChunkWritten && head.methodKind != .head {
            outBuf.append("0\r\n\r\n")
            lastChunkWritten = true
        }
        responsePhase = .done
        if requestPhase == .done {
            finishExchange(reusable: reusable)
        } else {
            // The upstream answered before the request body ended (an early 413, say):
            // the rest of the body cannot be skipped safely, so this connection ends.
            if let us = upstream { upstream = nil; us.close() }
            closeAfterFlush()
        }
    }

    enum UpstreamFailure { case connectFailed, reset, protocolError }

    /// The upstream connection failed; it has already closed itself.
    func upstreamFailed(_ f: UpstreamFailure, reused: Bool) {
        upstream = nil
        guard !closed else { return }
        if responsePhase == .waiting {
            if f == .reset, reused, !retried, requestPhase == .done, !replay.isEmpty, let ep = endpoint,
               let (us, _) = worker.acquireUpstream(ep, connectTimeoutMs: connectTimeoutMs) {
                // A keep-alive connection closed under us before answering: try once more, fresh.
                retried = true
                upstream = us
                us.attach(self, method: head.methodKind)
                us.outBuf.append(replay.readable)
                us.flush()
                return
            }
            let reply: LocalReply = switch f {
            case .connectFailed: .connectFailure
            case .reset: .upstreamReset
            case .protocolError: .badUpstreamResponse
            }
            answerLocally(reply)
        } else if responsePhase == .tunnel {
            closeAfterFlush()
        } else {
            abort()   // the response had started: the client must see the failure
        }
    }

    func upstreamTunnelClosed() { closeAfterFlush() }

    func upstreamTimedOut() {
        guard responsePhase == .waiting else { abort(); return }
        if let us = upstream { upstream = nil; us.abandon() }
        answerLocally(.upstreamTimeout)
    }

    /// Both directions are complete: release the upstream, then wait for the next request.
    func finishExchange(reusable: Bool) {
        worker.loop.cancel(timer)
        if let us = upstream {
            upstream = nil
            if reusable { worker.release(us) } else { us.close() }
        }
        exchangeState = nil
        endpoint = nil
        replay.clear()
        requestPhase = .head
        responsePhase = .waiting
        head.headers.removeAll(keepingCapacity: true)
        flush()
        guard !closed else { return }
        if !keepAlive {
            inBuf.clear()
            closeAfterFlush()
            return
        }
        arm(.idle, DownstreamConnection.idleTimeoutMs)
        if !inBuf.isEmpty || readable { scheduleResume() }
    }
}
