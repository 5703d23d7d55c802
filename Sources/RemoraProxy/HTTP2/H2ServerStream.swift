import RemoraCore
import RemoraH2
import RemoraHTTP1
import RemoraIO
import RemoraPolicy
import RemoraTelemetry
import RemoraResilience

/// One request/response exchange on an HTTP/2 client connection: routed and forwarded
/// like an HTTP/1.1 request (ExchangePlan), its body streamed both ways. Received DATA is
/// given back to the flow-control windows only once the upstream has room for more, so a
/// slow upstream (or a slow client, for the response) holds memory bounded by the windows.
final class H2ServerStream: ResponseSink, DeferredTask, RetryingExchange {
    unowned(unsafe) let conn: H2DownstreamConnection
    let id: Int32
    var worker: ProxyWorker { conn.worker }
    private var session: H2Session { conn.session }
    private(set) var closed = false

    private let headBuf: ByteBuffer
    private var head = RequestHead()
    private var requestEnded = false
    /// Request body (or trailers, as HTTP/1.1 lines) that arrived before there was an upstream.
    private var early: ByteBuffer?
    private var earlyTrailers: ByteBuffer?
    /// Received DATA bytes not yet given back to the windows.
    private var unconsumed = 0

    private var state: ProxyState?
    var upstream: UpstreamRequest?
    private var mirrors: [MirrorConnection] = []
    private var responseOps: HeaderOps?
    private var corsHeaders: [(String, String)] = []
    private var responseStarted = false
    private var responseEnded = false
    private var answered = false
    private var resumeScheduled = false
    private var pendingStep: ExchangeStep?
    private var pendingMatch: RouteMatchResult?
    var record = ExchangeRecord()
    /// The attempts of the forwarded request (retries); the head stays in `headBuf`.
    var attempts: Attempts?
    var tryPurpose = TryPurpose.perTry
    var tryTimerUsed = false
    lazy var tryTimer = LoopTimer { [unowned self] in self.tryTimerFired() }

    private enum TimerPurpose { case request, faultDelay }
    private var timerPurpose = TimerPurpose.request
    private lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    /// Response bytes queued in nghttp2 for this stream before the upstream must wait.
    static let sendBudget = 128 * 1024

    init(connection: H2DownstreamConnection, id: Int32) {
        conn = connection
        self.id = id
        headBuf = ByteBuffer(pool: connection.worker.buffers)
    }

    // MARK: request from the client

    func received(_ view: H2HeaderView, endStream: Bool) {
        requestEnded = endStream
        if view.oversized {
            head = RequestHead()
            answered = true   // start() answers 431
            return
        }
        H2Heads.request(view, endStream: endStream, store: headBuf, into: &head)
    }

    func receivedData(_ data: UnsafeRawBufferPointer) {
        unconsumed += data.count
        record.bytesIn += data.count
        if let us = upstream {
            attempts?.keepBody(data, limit: worker.limits.bufferLimitBytes)
            us.sendBody(data)
            for m in mirrors where m.accepts(data.count) { HeadWriter.writeBody(data, chunked: head.framing == .chunked, into: m.outBuf) }
            us.flush()
            giveBackWindow()
        } else if answered {
            giveBackWindow()   // nobody wants it: keep the connection's window open
        } else {
            if early == nil { early = ByteBuffer(pool: worker.buffers) }
            early!.append(data)   // bounded by the stream window
        }
    }

    func receivedTrailers(_ view: H2HeaderView) {
        requestEnded = true
        if let us = upstream {
            attempts?.keepTrailers(.h2(view), pool: worker.buffers)
            us.sendEnd(trailers: .h2(view))
            us.flush()
            endMirrors()
        } else if !answered {
            let t = ByteBuffer(pool: worker.buffers)
            Trailers.h2(view).writeLines(into: t)
            earlyTrailers = t
        }
    }

    func receivedEnd() {
        requestEnded = true
        if let us = upstream {
            us.sendEnd(trailers: nil)
            us.flush()
            endMirrors()
        }
    }

    private func endMirrors() {
        for m in mirrors where head.framing == .chunked && m.accepts(0) { m.outBuf.append("0\r\n\r\n") }
        for m in mirrors { m.flush() }
        mirrors.removeAll()
    }

    /// Gives received bytes back to the windows while the upstream has room.
    private func giveBackWindow() {
        guard unconsumed > 0 else { return }
        // Without an upstream (not dispatched yet, a fault delay, a retry's backoff) the
        // window stays shut: what arrives meanwhile is held, bounded by it.
        guard let us = upstream else {
            if answered { session.consume(stream: id, count: unconsumed); unconsumed = 0; conn.needsSend() }
            return
        }
        if us.sendRoom <= 0 { return }
        session.consume(stream: id, count: unconsumed)
        unconsumed = 0
        conn.needsSend()
    }

    // MARK: routing

    /// Called once the input batch that opened the stream has been parsed.
    func start() {
        if answered {
            answered = false
            return answerCustom(CustomReply(status: 431, headers: [], body: Array("request header fields too large".utf8),
                                            contentType: "text/plain"))
        }
        let st = worker.state
        state = st
        let req = parsedRequest
        let early = record.bytesIn   // DATA that came in the batch that opened the stream
        record.begin(req, worker: worker)
        record.bytesIn = early
        if let location = conn.listener.httpsRedirect(req) {
            return answerCustom(CustomReply(status: 301, headers: [("location", location)], body: [], contentType: nil))
        }
        if head.methodKind == .connect {
            return answerCustom(CustomReply(status: 501, headers: [], body: Array("CONNECT is not supported".utf8), contentType: "text/plain"))
        }
        if let target = conn.passthrough, conn.listener.spec.kind == .meshInbound {
            return startForward(worker.planPassthrough(to: target, inbound: true, request: req, peerIP: conn.peerIP,
                                                       listener: conn.listener.spec))
        }
        guard let li = conn.listener.listenerIndex(in: st), let match = st.snapshot.resolve(listener: li, req) else {
            if let target = conn.passthrough {
                return startForward(worker.planPassthrough(to: target, inbound: false, request: req, peerIP: conn.peerIP,
                                                           listener: conn.listener.spec))
            }
            return answerLocally(.noRoute)
        }
        record.routeName = match.entry.name
        if let step = ExchangePlan.fault(match, random: &worker.random) {
            if case .delay = step { record.flags.insert(.delayInjected) } else { record.flags.insert(.faultInjected) }
            return take(step, match: match)
        }
        take(ExchangePlan.router(match, req, corsHeaders: &corsHeaders), match: match)
    }

    private var parsedRequest: ParsedRequest {
        ParsedRequest(head: head, buf: headBuf.readable, scheme: conn.secure ? "https" : "http", port: conn.listener.spec.address.port)
    }

    private func take(_ step: ExchangeStep, match: RouteMatchResult) {
        switch step {
        case .respond(let r):
            answerCustom(r)
        case .delay(let ms, let abort):
            pendingMatch = match
            pendingStep = abort.map { .respond($0) }
            timerPurpose = .faultDelay
            worker.loop.arm(timer, afterMs: ms)
        case .forward:
            forward(match)
        }
    }

    private func faultDelayElapsed() {
        guard let match = pendingMatch else { return }
        pendingMatch = nil
        if let step = pendingStep {
            pendingStep = nil
            record.flags.insert(.faultInjected)
            return take(step, match: match)
        }
        take(ExchangePlan.router(match, parsedRequest, corsHeaders: &corsHeaders), match: match)
    }

    private func forward(_ match: RouteMatchResult) {
        guard let st = state else { return }
        let req = parsedRequest
        switch worker.planForward(match, state: st, request: req, peerIP: conn.peerIP, listener: conn.listener.spec,
                                  downstreamH2: true) {
        case .local(let reply):
            answerLocally(reply)
        case .forward(let f):
            startForward(f)
        }
    }

    private func startForward(_ f: Forwarding) {
        guard let st = state else { return }
        let req = parsedRequest
        attempts = Attempts(f, body: ByteBuffer(pool: worker.buffers))
        guard worker.admitRequest(&attempts!) else { return answerLocally(.overflow) }
        guard let us = openAttempt(f) else { return }
        upstream = us
        responseOps = f.responseOps
        record.cluster = f.cluster
        record.upstream = f.endpoint
        if let id = f.ctx.requestID { record.requestID = id }
        worker.stats.count(.upstream_rq_total, cluster: f.cluster.stats.cluster)
        us.attach(self, method: head.methodKind)
        var idRandom = FastRandom(seed: f.requestIDSeed)   // the same x-request-id on every attempt
        us.sendHead(head, buf: req.buf, ctx: f.ctx, random: &idRandom)
        worker.attemptStarted(&attempts!)
        armPerTry()
        for c in f.mirrorClusters {
            if let m = worker.startMirror(cluster: c, state: st, request: req, context: f.ctx) { mirrors.append(m) }
        }
        if let e = early {
            early = nil
            attempts?.keepBody(e.readable, limit: worker.limits.bufferLimitBytes)
            us.sendBody(e.readable)
            for m in mirrors where m.accepts(e.count) { HeadWriter.writeBody(e.readable, chunked: head.framing == .chunked, into: m.outBuf) }
        }
        if requestEnded {
            if let t = earlyTrailers {
                earlyTrailers = nil
                attempts?.keepTrailers(.http1(t.readable), pool: worker.buffers)
                us.sendEnd(trailers: .http1(t.readable))
            } else {
                us.sendEnd(trailers: nil)
            }
            endMirrors()
        }
        if let t = f.timeoutMs, t > 0 {
            timerPurpose = .request
            worker.loop.arm(timer, afterMs: t)
        }
        us.flush()
        giveBackWindow()
    }

    // MARK: replies made here

    private func answerCustom(_ r: CustomReply) {
        answered = true
        record.status = r.status
        let headRequest = head.methodKind == .head
        let body = headRequest ? [] : r.body
        H2HeadWriter.reply(status: r.status, headers: r.headers + corsHeaders, contentType: r.contentType,
                           bodyBytes: r.body.isEmpty && r.contentType == nil ? nil : r.body.count, into: &conn.fields)
        respond(body: body)
    }

    func answerLocally(_ reply: LocalReply) {
        answered = true
        record.flags.insert(reply.responseFlags)
        record.status = record.grpc ? 200 : reply.status
        if reply.status == 504, let c = record.cluster { worker.stats.count(.upstream_rq_timeout, cluster: c.stats.cluster) }
        if record.grpc {
            record.grpcStatus = Grpc.status(for: reply)
            // Trailers-only (SPEC §6): HTTP 200 with the gRPC status in the one header block.
            H2HeadWriter.reply(status: 200, headers: Grpc.replyFields(reply), contentType: nil, bodyBytes: nil, into: &conn.fields)
            return respond(body: [])
        }
        var headers: [(String, String)] = []
        if reply.overloaded { headers.append(("x-remora-overloaded", "true")) }
        let body = Array(UnsafeRawBufferPointer(start: reply.body.utf8Start, count: reply.body.utf8CodeUnitCount))
        H2HeadWriter.reply(status: reply.status, headers: headers, contentType: "text/plain", bodyBytes: body.count, into: &conn.fields)
        respond(body: head.methodKind == .head ? [] : body)
    }

    private func respond(body: [UInt8]) {
        responseStarted = true
        responseEnded = true
        worker.loop.cancel(timer)
        _ = session.respond(stream: id, headers: conn.fields, endStream: body.isEmpty)
        if !body.isEmpty {
            body.withUnsafeBytes { session.sendData(stream: id, $0) }
            session.endStream(stream: id, trailers: nil)
        }
        early = nil
        earlyTrailers = nil
        giveBackWindow()
        conn.needsSend()
    }

    // MARK: ResponseSink

    var responseRoom: Int { H2ServerStream.sendBudget - session.queuedBytes(stream: id) }

    func upstreamResponseHead(_ rh: ResponseHead, buf: UnsafeRawBufferPointer) {
        guard !closed else { return }
        if rh.status == 101 { return upstreamFailed(.protocolError, reused: false) }   // no upgrades over HTTP/2
        if retryOnResponseHead(rh, buf: buf) { return }
        responseStarted = true
        var rh = rh
        if rh.framing == .contentLength(0) { rh.framing = .none }   // ends with the headers, as it came
        H2HeadWriter.response(rh, buf: buf, ops: responseOps, extra: corsHeaders, into: &conn.fields)
        let noBody = rh.framing == .none
        _ = session.respond(stream: id, headers: conn.fields, endStream: noBody)
        if noBody { responseEnded = true }
        conn.needsSend()
    }

    func upstreamResponseData(_ data: UnsafeRawBufferPointer) {
        guard !closed, !responseEnded, head.methodKind != .head else { return }
        record.bytesOut += data.count
        session.sendData(stream: id, data)
    }

    func upstreamResponseTrailers(_ trailers: Trailers) {
        guard !closed, !responseEnded else { return }
        if record.grpc { record.noteGrpcStatus(trailers.value("grpc-status")) }
        conn.fields.removeAll()
        trailers.appendLowercased(to: &conn.fields)
        session.endStream(stream: id, trailers: conn.fields.count > 0 ? conn.fields : nil)
        responseEnded = true
        conn.needsSend()
    }

    func upstreamResponseEnd(reusable: Bool) {
        worker.loop.cancel(timer)
        if let us = upstream {
            upstream = nil
            if let h1 = us as? UpstreamConnection {
                if reusable && requestEnded { worker.release(h1) } else { h1.close() }
            } else if !requestEnded {
                us.abandon()   // an HTTP/2 upstream answered early: cancel the rest of the request
            }
        }
        if !closed && !responseEnded {
            session.endStream(stream: id, trailers: nil)
            responseEnded = true
        }
        // The response is complete; a request body still arriving is consumed and dropped.
        answered = true
        giveBackWindow()
        conn.needsSend()
    }

    func upstreamFailed(_ f: UpstreamFailure, reused: Bool) {
        upstream = nil
        guard !closed else { return }
        if !responseStarted {
            if replayAfterStaleConnection(f, reused: reused) || retryOnFailure(f) { return }
            answerLocally(f.localReply)
        } else if !responseEnded {
            reset(.internalError)
        }
    }

    func upstreamTunnelClosed() { reset(.internalError) }

    func upstreamTunnelData(_ data: UnsafeRawBufferPointer) {}

    func flushResponse() { conn.needsSend() }

    func upstreamSendRoom() {
        guard !resumeScheduled, !closed else { return }
        resumeScheduled = true
        worker.loop.schedule(self)
    }

    func runDeferred() {
        resumeScheduled = false
        guard !closed else { return }
        giveBackWindow()
    }

    /// nghttp2 took response bytes: the upstream may deliver more.
    func sendRoom() {
        if let us = upstream, us.pausedForRoom { us.scheduleResume() }
    }

    // MARK: ending

    private enum ErrorCode: UInt32 { case noError = 0, internalError = 2, cancel = 8 }

    private func reset(_ code: ErrorCode) {
        guard !closed else { return }
        session.reset(stream: id, errorCode: code.rawValue)
        conn.needsSend()
    }

    private func timerFired() {
        guard !closed else { return }
        switch timerPurpose {
        case .faultDelay:
            faultDelayElapsed()
        case .request:
            cancelTryTimer()
            if let us = upstream { upstream = nil; us.abandon() }
            if responseStarted { reset(.cancel) } else { answerLocally(.upstreamTimeout) }
        }
    }

    // MARK: retries (RetryingExchange)

    var canStillRetry: Bool { !closed && !responseStarted && !answered }
    var retryState: ProxyState? { state }
    var retryHead: (head: RequestHead, buf: UnsafeRawBufferPointer) { (head, headBuf.readable) }
    var requestBodyEnded: Bool { requestEnded }
    var requestBodyBytes: Int { record.bytesIn }
    var replayForbidden: Bool { false }

    /// After a retry's head and kept body: what arrived during the backoff, then the window.
    func retrySent(_ us: UpstreamRequest) {
        if let e = early {
            early = nil
            attempts!.keepBody(e.readable, limit: worker.limits.bufferLimitBytes)
            us.sendBody(e.readable)
        }
        giveBackWindow()
    }

    /// The stream is gone (completed, reset by the client, or the connection closed).
    func streamClosed(errorCode: UInt32) {
        guard !closed else { return }
        closed = true
        cancelTryTimer()
        if attempts != nil { worker.attemptsDone(&attempts!); attempts = nil }
        if record.active {
            if !responseEnded || errorCode != 0 { record.flags.insert(.downstreamConnectionTermination) }
            worker.report(&record, listener: conn.listener.spec, protocolName: "HTTP/2", peerIP: conn.peerIP)
        }
        worker.loop.cancel(timer)
        if let us = upstream {
            upstream = nil
            us.abandon()
        }
        mirrors.removeAll()
        early = nil
        earlyTrailers = nil
        headBuf.clear()
        state = nil
    }
}
