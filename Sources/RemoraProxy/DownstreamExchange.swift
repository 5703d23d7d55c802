import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraPolicy
import RemoraTelemetry
import RemoraResilience

/// One request/response exchange on an HTTP/1.1 client connection: route, forward the
/// head and body upstream, stream the response back, or answer locally (SPEC §6).
extension DownstreamConnection {
    /// Parses and forwards as far as the buffers allow.
    func process() {
        while !closed && !closing {
            switch requestPhase {
            case .head:
                guard upstream == nil, responsePhase == .waiting, !inBuf.isEmpty else { return }
                if sniffing {
                    switch Sniff.classify(inBuf.readable) {
                    case .notHTTP: return switchToTCP()
                    case .needMore: return   // the sniff timer still runs
                    case .http: break
                    }
                    sniffing = false
                    arm(.idle, DownstreamConnection.idleTimeoutMs)
                }
                if fresh {
                    switch H2Preface.match(inBuf.readable) {
                    case .yes: return switchToHTTP2()
                    case .partial: return
                    case .no: fresh = false
                    }
                }
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

    private var parsedRequest: ParsedRequest {
        ParsedRequest(head: head, buf: inBuf.readable, scheme: io.tls == nil ? "http" : "https", port: listener.spec.address.port)
    }

    private func startExchange() {
        let st = worker.state
        exchangeState = st
        worker.loop.cancel(timer)
        keepAlive = head.keepAlive && !worker.draining
        requestEndSent = false
        responseFraming = .asIs
        lastChunkWritten = false
        responseOps = nil
        corsHeaders = []
        let req = parsedRequest
        record.begin(req, worker: worker)
        if let location = listener.httpsRedirect(req) {
            return answerCustom(CustomReply(status: 301, headers: [("location", location)], body: [], contentType: nil))
        }
        if let target = passthrough, listener.spec.kind == .meshInbound {
            return startForward(worker.planPassthrough(to: target, inbound: true, request: req, peerIP: peerIP, listener: listener.spec), state: st)
        }
        guard let li = listener.listenerIndex(in: st), let match = st.snapshot.resolve(listener: li, req) else {
            if let target = passthrough {
                return startForward(worker.planPassthrough(to: target, inbound: false, request: req, peerIP: peerIP, listener: listener.spec), state: st)
            }
            return answerLocally(.noRoute)
        }
        record.routeName = match.entry.name
        if let step = ExchangePlan.fault(match, random: &worker.random) {
            if case .delay = step { record.flags.insert(.delayInjected) } else { record.flags.insert(.faultInjected) }
            take(step, match: match, state: st)
        } else {
            take(ExchangePlan.router(match, req, corsHeaders: &corsHeaders), match: match, state: st)
        }
    }

    private func take(_ step: ExchangeStep, match: RouteMatchResult, state st: ProxyState) {
        switch step {
        case .respond(let r):
            answerCustom(r)
        case .delay(let ms, let abort):
            // The request is held (its head stays in the read buffer).
            requestPhase = .delayed
            pendingFault = PendingFault(match: match, abort: abort)
            arm(.faultDelay, ms)
        case .forward:
            forward(match, state: st)
        }
    }

    func faultDelayElapsed() {
        guard requestPhase == .delayed, let pending = pendingFault, let st = exchangeState else { return }
        pendingFault = nil
        requestPhase = .head
        if let abort = pending.abort {
            record.flags.insert(.faultInjected)
            answerCustom(abort)
        } else {
            take(ExchangePlan.router(pending.match, parsedRequest, corsHeaders: &corsHeaders), match: pending.match, state: st)
        }
        if !closed { process() }
    }

    /// Sends the request to a destination of the matched rule.
    private func forward(_ match: RouteMatchResult, state st: ProxyState) {
        switch worker.planForward(match, state: st, request: parsedRequest, peerIP: peerIP, listener: listener.spec, downstreamH2: false) {
        case .local(let reply): answerLocally(reply)
        case .forward(let plan): startForward(plan, state: st)
        }
    }

    private func startForward(_ f: Forwarding, state st: ProxyState) {
        let req = parsedRequest
        record.cluster = f.cluster
        record.upstream = f.endpoint
        if let id = f.ctx.requestID { record.requestID = id }
        worker.stats.count(.upstream_rq_total, cluster: f.cluster.stats.cluster)
        attempts = Attempts(f, body: replayBody)
        if f.retryPolicy.isEnabled || head.framing == .none {   // kept for retries and stale-connection replays
            headCopy.clear()
            headCopy.append(UnsafeRawBufferPointer(rebasing: inBuf.readable[..<head.headBytes]))
        }
        guard worker.admitRequest(&attempts!) else { return answerLocally(.overflow) }
        guard let us = openAttempt(f) else { return }
        upstream = us
        us.attach(self, method: head.methodKind)
        responseOps = f.responseOps
        var idRandom = FastRandom(seed: f.requestIDSeed)   // the same x-request-id on every attempt
        us.sendHead(head, buf: req.buf, ctx: f.ctx, random: &idRandom)
        worker.attemptStarted(&attempts!)
        armPerTry()
        for c in f.mirrorClusters {
            if let m = worker.startMirror(cluster: c, state: st, request: req, context: f.ctx) { mirrors.append(m) }
        }
        inBuf.consume(head.headBytes)
        scanFrom = 0
        requestBody = BodyDecoder(framing: head.framing)
        requestPhase = requestBody.isComplete ? .done : .body
        if requestPhase == .done {
            requestEndSent = true
            mirrors.removeAll()
        }
        if head.expectContinue && requestPhase == .body {
            outBuf.append("HTTP/1.1 100 Continue\r\n\r\n")
            flush()
        }
        if let t = f.timeoutMs, t > 0 { arm(.request, t) }
        us.flush()
    }

    /// A reply the configuration asked for, in place of forwarding.
    func answerCustom(_ r: CustomReply) {
        let unreadBody = requestPhase == .head || requestPhase == .delayed ? head.framing != .none : requestPhase == .body
        if unreadBody { keepAlive = false }
        if requestPhase == .head || requestPhase == .delayed {
            inBuf.consume(head.headBytes)
            scanFrom = 0
        }
        record.status = r.status
        LocalReply.writeCustom(status: r.status, headers: r.headers + corsHeaders, body: r.body, contentType: r.contentType,
                               close: !keepAlive, headRequest: head.methodKind == .head, into: outBuf)
        requestPhase = .done
        responsePhase = .done
        finishExchange(reusable: false)
    }

    /// Answers with a proxy-generated response (for gRPC, a status in the headers). A
    /// request body not yet read cannot be skipped safely, so such a connection closes
    /// after the reply.
    func answerLocally(_ reply: LocalReply) {
        record.flags.insert(reply.responseFlags)
        if reply.status == 504, let c = record.cluster { worker.stats.count(.upstream_rq_timeout, cluster: c.stats.cluster) }
        if record.grpc {   // proxy-generated errors are trailers-only gRPC statuses
            record.grpcStatus = Grpc.status(for: reply)
            return answerCustom(CustomReply(status: 200, headers: Grpc.replyFields(reply), body: [], contentType: nil))
        }
        let unreadBody = requestPhase == .head ? head.framing != .none : requestPhase == .body
        if unreadBody { keepAlive = false }
        if requestPhase == .head {
            inBuf.consume(head.headBytes)
            scanFrom = 0
        }
        record.status = reply.status
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
        let room = us.sendRoom
        if room <= 0 { return false }
        if inBuf.isEmpty { return false }
        let chunked = head.framing == .chunked
        let mirrors = self.mirrors
        let consumed: Int
        do {
            let keepLimit = limits.bufferLimitBytes
            consumed = try requestBody.decode(inBuf.readable, maxData: room, onData: { data in
                self.record.bytesIn += data.count
                self.attempts?.keepBody(data, limit: keepLimit)
                us.sendBody(data)
                for m in mirrors where m.accepts(data.count) { HeadWriter.writeBody(data, chunked: chunked, into: m.outBuf) }
            }, onTrailers: { trailers in
                self.requestEndSent = true
                self.attempts?.keepTrailers(.http1(trailers), pool: self.worker.buffers)
                us.sendEnd(trailers: .http1(trailers))
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
            if !requestEndSent {
                requestEndSent = true
                us.sendEnd(trailers: nil)
            }
            self.mirrors.removeAll()
            requestPhase = .done
            if responsePhase == .done { finishExchange(reusable: false) }
        }
        us.flush()
        return consumed > 0 && requestPhase == .body
    }

    private func pumpTunnel() {
        guard let us = upstream as? UpstreamConnection, !inBuf.isEmpty else { return }
        let room = us.sendRoom
        guard room > 0 else { return }
        let n = min(room, inBuf.count)
        us.outBuf.append(UnsafeRawBufferPointer(rebasing: inBuf.readable[..<n]))
        inBuf.consume(n)
        us.flush()
    }

    // MARK: upstream callbacks (ResponseSink)

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
        if retryOnResponseHead(rh, buf: buf) { return }
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
        record.bytesOut += data.count
        HeadWriter.writeBody(data, chunked: responseFraming == .chunked, into: outBuf)
    }

    func upstreamResponseTrailers(_ trailers: Trailers) {
        if record.grpc { record.noteGrpcStatus(trailers.value("grpc-status")) }
        guard responseFraming == .chunked, head.methodKind != .head else { return }
        outBuf.append("0\r\n")
        trailers.writeLines(into: outBuf)
        outBuf.append("\r\n")
        lastChunkWritten = true
    }

    func upstreamTunnelData(_ data: UnsafeRawBufferPointer) { outBuf.append(data) }

    func flushResponse() { flush() }

    func upstreamSendRoom() {
        if requestPhase == .body || requestPhase == .tunnel { scheduleResume() }
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
            if let us = upstream { upstream = nil; us.abandon() }
            closeAfterFlush()
        }
    }

    /// The upstream failed; it has already let go of this exchange.
    func upstreamFailed(_ f: UpstreamFailure, reused: Bool) {
        upstream = nil
        guard !closed else { return }
        if responsePhase == .waiting {
            if replayAfterStaleConnection(f, reused: reused) || retryOnFailure(f) { return }
            answerLocally(f.localReply)
        } else if responsePhase == .tunnel {
            closeAfterFlush()
        } else {
            abort()   // the response had started: the client must see the failure
        }
    }

    func upstreamTunnelClosed() { closeAfterFlush() }

    func upstreamTimedOut() {
        cancelTryTimer()
        guard responsePhase == .waiting else { abort(); return }
        if let us = upstream { upstream = nil; us.abandon() }
        answerLocally(.upstreamTimeout)
    }

    // MARK: retries

    var canStillRetry: Bool { !closed && responsePhase == .waiting }
    var retryState: ProxyState? { exchangeState }
    var retryHead: (head: RequestHead, buf: UnsafeRawBufferPointer) { (head, headCopy.readable) }
    var requestBodyEnded: Bool { requestEndSent }
    var requestBodyBytes: Int { record.bytesIn }
    var replayForbidden: Bool { head.upgrade }
    func retrySent(_ us: UpstreamRequest) {}

    /// Both directions are complete: release the upstream, then wait for the next request.
    func finishExchange(reusable: Bool) {
        worker.loop.cancel(timer)
        cancelTryTimer()
        if attempts != nil { worker.attemptsDone(&attempts!); attempts = nil }
        headCopy.clear()
        replayBody.clear()
        worker.report(&record, listener: listener.spec, protocolName: "HTTP/1.1", peerIP: peerIP)
        if let us = upstream {
            upstream = nil
            if let c = us as? UpstreamConnection {
                if reusable { worker.release(c) } else { c.close() }
            }
        }
        exchangeState = nil
        mirrors.removeAll()
        pendingFault = nil
        responseOps = nil
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

/// The HTTP/2 connection preface (RFC 9113 §3.4), which an h2c client with prior
/// knowledge sends first.
enum H2Preface {
    static let bytes: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    enum Match { case yes, partial, no }

    static func match(_ b: UnsafeRawBufferPointer) -> Match {
        let n = min(b.count, bytes.count)
        for i in 0..<n where b[i] != bytes[i] { return .no }
        return n == bytes.count ? .yes : .partial
    }
}
