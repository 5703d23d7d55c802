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
            case .done, .delayed:
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
        responseOps = nil
        corsHeaders = []
        let req = ParsedRequest(head: head, buf: inBuf.readable, scheme: "http", port: listener.spec.address.port)
        guard let li = listener.listenerIndex(in: st), let match = st.snapshot.resolve(listener: li, req) else {
            return answerLocally(.noRoute)
        }
        // Istio's HTTP filter order: fault, then CORS, then the router (redirect,
        // directResponse, forwarding).
        switch match.entry.actions.fault(random1: worker.random.next32(), random2: worker.random.next32()) {
        case .none:
            continueExchange(match, state: st, request: req)
        case .abort(let status, let grpc):
            answerFaultAbort(status, grpc)
        case .delay(let ms):
            delayForFault(match, ms: ms, abort: nil)
        case .delayThenAbort(let ms, let status, let grpc):
            delayForFault(match, ms: ms, abort: (status, grpc))
        }
    }

    /// CORS, then the rule's action.
    private func continueExchange(_ match: RouteMatchResult, state st: ProxyState, request req: ParsedRequest) {
        let actions = match.entry.actions
        if let cors = actions.cors {
            let origin = req.header("origin")
            let preflight = cors.preflight(method: req.method, origin: origin,
                                           requestMethod: req.header("access-control-request-method"),
                                           requestHeaders: req.header("access-control-request-headers"))
            if case .respond(let headers) = preflight {
                return answerCustom(status: 200, headers: headers, body: [], contentType: nil)
            }
            corsHeaders = cors.responseHeaders(origin: origin)
        }
        if let r = actions.redirect(scheme: req.scheme, authority: req.authority, path: req.path,
                                    matchedPrefix: match.matchedPrefix, listenerPort: req.port) {
            return answerCustom(status: r.status, headers: [("location", r.location)], body: [], contentType: nil)
        }
        if let d = actions.directResponse {
            return answerCustom(status: d.status, headers: [], body: d.body, contentType: "text/plain")
        }
        forward(match, state: st)
    }

    /// Holds the request (its head stays in the read buffer) for a fault delay.
    private func delayForFault(_ match: RouteMatchResult, ms: Int, abort: (Int, Int?)?) {
        requestPhase = .delayed
        pendingFault = PendingFault(match: match, abort: abort)
        arm(.faultDelay, ms)
    }

    func faultDelayElapsed() {
        guard requestPhase == .delayed, let pending = pendingFault, let st = exchangeState else { return }
        pendingFault = nil
        requestPhase = .head
        if let (status, grpc) = pending.abort {
            answerFaultAbort(status, grpc)
        } else {
            let req = ParsedRequest(head: head, buf: inBuf.readable, scheme: "http", port: listener.spec.address.port)
            continueExchange(pending.match, state: st, request: req)
        }
        if !closed { process() }
    }

    /// Envoy's fault abort: the status asked for, or for `grpcStatus` a 200 carrying it.
    private func answerFaultAbort(_ status: Int, _ grpc: Int?) {
        if let g = grpc {
            answerCustom(status: 200, headers: [("grpc-status", String(g)), ("grpc-message", "fault filter abort")],
                         body: [], contentType: "application/grpc")
        } else {
            answerCustom(status: status, headers: [], body: Array("fault filter abort".utf8), contentType: "text/plain")
        }
    }

    /// Sends the request to a destination of the matched rule.
    private func forward(_ match: RouteMatchResult, state st: ProxyState) {
        let entry = match.entry
        guard !entry.destinations.isEmpty else { return answerLocally(.noRoute) }
        let destination = entry.pickDestination(random: worker.random.next32())
        let clusterIndex = entry.destinations[destination].cluster
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
        let buf = inBuf.readable
        let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: listener.spec.address.port)
        let actions = entry.actions
        responseOps = actions.responseHeaders(destination: destination)
        var ctx = HeadWriter.RequestContext(
            peerIP: peerIP, forwardedProto: "http", edge: listener.spec.kind == .gateway,
            path: req.pathRange,
            hostFallback: head.hostIndex == nil ? (req.authorityRange.map(req.string) ?? cluster.spec.host) : nil,
            pathRewrite: actions.rewritePath(req.path, matchedPrefix: match.matchedPrefix),
            authorityRewrite: actions.authorityRewrite(destination: destination),
            headerOps: actions.requestHeaders(destination: destination))
        let mirrorClusters = entry.mirrors.isEmpty ? [] : actions.mirrorClusters { _ in self.worker.random.next32() }
        if !mirrorClusters.isEmpty {
            // The primary and its shadows carry the same request id.
            ctx.requestID = req.header("x-request-id") == nil ? RequestID.string(random: &worker.random) : nil
        }
        let before = us.outBuf.count
        HeadWriter.writeRequest(head, buf: buf, ctx: ctx, into: us.outBuf, random: &worker.random)
        replay.clear()
        if reused && head.framing == .none && !head.upgrade {
            replay.append(UnsafeRawBufferPointer(rebasing: us.outBuf.readable[before...]))
        }
        for c in mirrorClusters { startMirror(cluster: c, state: st, request: req, context: ctx) }
        inBuf.consume(head.headBytes)
        scanFrom = 0
        requestBody = BodyDecoder(framing: head.framing)
        requestPhase = requestBody.isComplete ? .done : .body
        if requestPhase == .done { mirrors.removeAll() }
        if head.expectContinue && requestPhase == .body {
            outBuf.append("HTTP/1.1 100 Continue\r\n\r\n")
            flush()
        }
        if let t = entry.timeoutMs, t > 0 { arm(.request, t) }
        us.flush()
    }

    /// A fire-and-forget copy of the request (Envoy's shadowing: Host gets "-shadow"); it
    /// never delays or affects the primary exchange.
    private func startMirror(cluster: Int, state st: ProxyState, request req: ParsedRequest, context: HeadWriter.RequestContext) {
        guard !head.upgrade, let ep = worker.pickEndpoint(cluster: cluster, in: st),
              let m = MirrorConnection.start(worker: worker, endpoint: ep) else { return }
        var ctx = context
        ctx.authorityRewrite = MirrorConnection.shadowHost(context.authorityRewrite ?? req.authority)
        ctx.connectionClose = true
        HeadWriter.writeRequest(head, buf: req.buf, ctx: ctx, into: m.outBuf, random: &worker.random)
        m.flush()
        mirrors.append(m)
    }

    /// A reply the configuration asked for, in place of forwarding.
    func answerCustom(status: Int, headers: [(String, String)], body: [UInt8], contentType: StaticString?) {
        let unreadBody = requestPhase == .head || requestPhase == .delayed ? head.framing != .none : requestPhase == .body
        if unreadBody { keepAlive = false }
        if requestPhase == .head || requestPhase == .delayed {
            inBuf.consume(head.headBytes)
            scanFrom = 0
        }
        LocalReply.writeCustom(status: status, headers: headers + corsHeaders, body: body, contentType: contentType,
                               close: !keepAlive, headRequest: head.methodKind == .head, into: outBuf)
        requestPhase = .done
        responsePhase = .done
        finishExchange(reusable: false)
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
        let mirrors = self.mirrors
        let consumed: Int
        do {
            consumed = try requestBody.decode(inBuf.readable, maxData: room, onData: { data in
                HeadWriter.writeBody(data, chunked: chunked, into: out)
                for m in mirrors where m.accepts(data.count) { HeadWriter.writeBody(data, chunked: chunked, into: m.outBuf) }
            }, onTrailers: { trailers in
                HeadWriter.writeLastChunk(trailers, into: out)
                for m in mirrors where m.accepts(0) { HeadWriter.writeLastChunk(trailers, into: m.outBuf) }
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
        for m in mirrors { m.flush() }
        if requestBody.isComplete {
            self.mirrors.removeAll()
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
                                 keepAliveHeader: clientHTTP10 && keepAlive, ops: responseOps, extra: corsHeaders,
                                 into: outBuf)
        responsePhase = .streaming
    }

    func upstreamResponseData(_ data: UnsafeRawBufferPointer) {
        guard head.methodKind != .head else { return }
        HeadWriter.writeBody(data, chunked: responseFraming == .chunked, into: outBuf)
    }

    func upstreamResponseTrailers(_ trailers: UnsafeRawBufferPointer) {
        guard responseFraming == .chunked, head.methodKind != .head else { return }
        HeadWriter.writeLastChunk(trailers, into: outBuf)
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
        mirrors.removeAll()
        pendingFault = nil
        responseOps = nil
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
