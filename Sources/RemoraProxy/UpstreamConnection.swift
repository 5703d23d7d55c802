import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraTLS
import RemoraResilience

/// An HTTP/1.1 connection to one upstream endpoint. While attached to a downstream
/// connection it carries that exchange; between exchanges it waits in its worker's
/// pool, where any byte or close from the peer retires it.
///
/// When the cluster's connection limit is reached it may start out *queued* (Envoy's
/// pending request, within `http1MaxPendingRequests`): no socket yet, the request head and
/// body buffer in `outBuf` (bounded as always), and the worker connects it once a connection
/// slot frees up (`leaveQueue`). The exchange cannot tell the difference.
final class UpstreamConnection: EventHandler, DeferredTask, UpstreamRequest {
    unowned(unsafe) let worker: ProxyWorker   // workers live for the process
    /// -1 while queued.
    private(set) var fd: Int32 = -1
    let endpoint: EndpointRef
    /// Upstream TLS (DestinationRule `tls`), nil for plain text; pooled connections are
    /// reused only for the same context.
    let tlsContext: TLSClientContext?
    /// The cluster circuit breaker whose connection count this connection holds (while
    /// queued: one of its pending requests).
    let breaker: CircuitBreaker?
    private let lifetime: ConnectionLifetime
    private let connectTimeoutMs: Int
    /// When the connection was opened (monotonic ms), for `maxConnectionDuration`.
    private var bornMs: UInt64 = 0
    private var io: Transport
    private var registration = EventLoop.Registration.none

    let inBuf: ByteBuffer
    let outBuf: ByteBuffer
    private var readable = false
    private var writable = false
    private var peerHalfClosed = false

    enum State { case queued, connecting, handshaking, active, pooled, closed }
    private(set) var state = State.connecting
    private var owner: ResponseSink?
    /// The request head said chunked: body bytes are chunk-framed on the way.
    private var requestChunked = false
    private var exchanges = 0
    var pausedForRoom = false
    private var resumeScheduled = false

    private enum Phase { case head, body, tunnel, done }
    private var phase = Phase.head
    private var response = ResponseHead()
    private var scanFrom = 0
    private var body = BodyDecoder(framing: .none)
    private var requestMethod = Method.get

    /// Connect timeout while connecting; idle (or remaining lifetime) while pooled.
    private lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    private init(worker: ProxyWorker, endpoint: EndpointRef, connectTimeoutMs: Int, tls: TLSClientContext?, breaker: CircuitBreaker?,
                 lifetime: ConnectionLifetime) {
        self.worker = worker
        self.endpoint = endpoint
        tlsContext = tls
        self.breaker = breaker
        self.lifetime = lifetime
        self.connectTimeoutMs = connectTimeoutMs
        io = Transport(fd: -1, tls: nil)
        inBuf = ByteBuffer(pool: worker.buffers)
        outBuf = ByteBuffer(pool: worker.buffers)
    }

    /// Starts connecting; nil if the connect failed at once.
    static func connect(worker: ProxyWorker, endpoint: EndpointRef, connectTimeoutMs: Int, tls: TLSClientContext?,
                        breaker: CircuitBreaker? = nil, lifetime: ConnectionLifetime = .default) -> UpstreamConnection? {
        let c = UpstreamConnection(worker: worker, endpoint: endpoint, connectTimeoutMs: connectTimeoutMs, tls: tls, breaker: breaker,
                                   lifetime: lifetime)
        return c.beginConnect() ? c : nil
    }

    /// A connection that waits for a slot under the cluster's connection limit. The caller
    /// holds one of `breaker`'s pending requests for it, which it gives back when it connects
    /// or closes; the worker keeps it in its queue meanwhile.
    static func queued(worker: ProxyWorker, endpoint: EndpointRef, connectTimeoutMs: Int, tls: TLSClientContext?,
                       breaker: CircuitBreaker, lifetime: ConnectionLifetime) -> UpstreamConnection {
        let c = UpstreamConnection(worker: worker, endpoint: endpoint, connectTimeoutMs: connectTimeoutMs, tls: tls, breaker: breaker,
                                   lifetime: lifetime)
        c.state = .queued
        return c
    }

    private func beginConnect() -> Bool {
        guard case .success(let s) = Socket.connect(endpoint.address) else { return false }
        registration = worker.loop.register(fd: s, events: IOEvents.connection, handler: self)
        guard registration != .none else { Socket.close(s); return false }
        fd = s
        io = Transport(fd: s, tls: nil)
        bornMs = MonotonicClock.nowMilliseconds()
        state = .connecting
        worker.loop.arm(timer, afterMs: connectTimeoutMs)
        return true
    }

    /// A queued connection got a connection slot (the worker acquired it): connect now.
    func leaveQueue() {
        guard state == .queued else { return }
        breaker?.release(.pendingRequests)
        state = .connecting   // holds the connection slot from here: close() gives it back
        if !beginConnect() { fail(.connectFailed) }
    }

    /// Whether this connection may carry one more exchange (`maxRequestsPerConnection`,
    /// `maxConnectionDuration`).
    var canCarryMore: Bool {
        lifetime.canCarryMore(requests: exchanges, bornMs: bornMs, nowMs: lifetime.maxDurationMs == nil ? 0 : MonotonicClock.nowMilliseconds())
    }

    private var headLimits: HTTP1Limits {
        HTTP1Limits(maxHeadBytes: worker.limits.maxRequestHeadersKb * 1024, maxHeaders: worker.limits.maxHeaders)
    }

    // MARK: pool

    func takeFromPool() -> Bool {
        guard state == .pooled else { return false }
        worker.loop.cancel(timer)
        state = .active
        return true
    }

    func enterPool() {
        owner = nil
        guard state == .active, inBuf.isEmpty, outBuf.isEmpty else { close(); return }
        let wait = lifetime.idleWaitMs(bornMs: bornMs, nowMs: MonotonicClock.nowMilliseconds())
        guard wait > 0 else { worker.forget(self); close(); return }
        state = .pooled
        worker.loop.arm(timer, afterMs: wait)
        if readable { readLoop() }   // the peer may have closed while we were busy
    }

    func attach(_ ds: ResponseSink, method: Method) {
        owner = ds
        requestMethod = method
        phase = .head
        scanFrom = 0
        pausedForRoom = false
    }

    // MARK: the request (UpstreamRequest)

    func sendHead(_ head: RequestHead, buf: UnsafeRawBufferPointer, ctx: HeadWriter.RequestContext, random: inout FastRandom) {
        requestChunked = head.framing == .chunked
        HeadWriter.writeRequest(head, buf: buf, ctx: ctx, into: outBuf, random: &random)
    }

    @inline(__always) func sendBody(_ data: UnsafeRawBufferPointer) {
        HeadWriter.writeBody(data, chunked: requestChunked, into: outBuf)
    }

    func sendEnd(trailers: Trailers?) {
        guard requestChunked else { return }
        outBuf.append("0\r\n")
        trailers?.writeLines(into: outBuf)
        outBuf.append("\r\n")
    }

    var sendRoom: Int { worker.limits.bufferLimitBytes - outBuf.count }

    // MARK: events

    func handleEvent(_ events: UInt32) {
        if state == .connecting {
            switch Socket.connectProgress(fd, events: events) {
            case .pending: return
            case .failed: return fail(.connectFailed)
            case .connected: break
            }
            if let ctx = tlsContext {
                guard io.beginClientTLS(ctx) else { return fail(.tlsFailed) }
                state = .handshaking
            } else {
                state = .active
                worker.loop.cancel(timer)
            }
        }
        if state == .handshaking {
            switch io.upstreamHandshakeStep(worker: worker, endpoint: endpoint) {
            case .waiting:
                return
            case .failed:
                return fail(.tlsFailed)
            case .done:
                state = .active
                worker.loop.cancel(timer)
                writable = true
                readable = true   // the TLS layer may hold bytes already
                flush()
                readLoop()
                return
            }
        }
        if events & IOEvents.writable != 0 {
            writable = true
            flush()
        }
        if state != .closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            if events & (IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 { peerHalfClosed = true }
            readLoop()
        }
    }

    func runDeferred() {
        resumeScheduled = false
        guard state == .active else { return }
        pausedForRoom = false
        process()
        readLoop()
    }

    func scheduleResume() {
        guard !resumeScheduled, state != .closed else { return }
        resumeScheduled = true
        worker.loop.schedule(self)
    }

    private func readLoop() {
        while readable && state != .closed {
            if state == .pooled {
                // Idle: any input (or EOF) means the peer is done with this connection.
                var scratch: UInt64 = 0
                let r = withUnsafeMutableBytes(of: &scratch) { io.read(into: $0.baseAddress!, count: 8) }
                if case .wouldBlock = r { readable = false; return }
                worker.forget(self)
                close()
                return
            }
            guard let ds = owner else { return }
            if ds.responseRoom <= 0 { pausedForRoom = true; return }
            let cap = phase == .head ? headLimits.maxHeadBytes : DownstreamConnection.bodyBufferBytes
            if inBuf.count >= cap { pausedForRoom = true; return }
            let p = inBuf.reserve(min(cap - inBuf.count, 4096))
            let want = min(cap - inBuf.count, inBuf.capacity - inBuf.writeIndex)
            switch io.read(into: p, count: want) {
            case .bytes(let n):
                inBuf.commit(n)
                // A short read drained the socket: the next byte brings a new edge. Unless
                // the peer half-closed, whose EOF would bring none (nginx's rule).
                if n < want && !peerHalfClosed && io.shortReadDrains { readable = false }
                process()
            case .wouldBlock:
                readable = false
            case .eof:
                readable = false
                io.logFailure(to: endpoint, firstExchange: exchanges == 0)
                peerClosed()
            case .failed:
                readable = false
                io.logFailure(to: endpoint, firstExchange: exchanges == 0)
                fail(.reset)
            }
        }
    }

    /// Parses the response and hands it to the downstream, as far as its buffer allows.
    private func process() {
        while state == .active, let ds = owner {
            switch phase {
            case .head:
                guard !inBuf.isEmpty else { return }
                switch HTTP1Parser.parseResponseHead(inBuf.readable, into: &response, limits: headLimits,
                                                     requestMethod: requestMethod, scanFrom: &scanFrom) {
                case .incomplete:
                    return
                case .error:
                    fail(.protocolError)
                    return
                case .complete:
                    if response.status >= 100 && response.status < 200 && response.status != 101 {
                        inBuf.consume(response.headBytes)   // interim (100, 103): ours to drop
                        scanFrom = 0
                        continue
                    }
                    ds.upstreamResponseHead(response, buf: inBuf.readable)
                    inBuf.consume(response.headBytes)
                    scanFrom = 0
                    if response.status == 101 {
                        phase = .tunnel
                        continue
                    }
                    body = BodyDecoder(framing: response.framing)
                    phase = .body
                    if body.isComplete { finishResponse(); return }
                }
            case .body:
                let room = ds.responseRoom
                if room <= 0 { pausedForRoom = true; ds.flushResponse(); return }
                guard !inBuf.isEmpty else { ds.flushResponse(); return }
                let consumed: Int
                do {
                    consumed = try body.decode(inBuf.readable, maxData: room,
                                               onData: { ds.upstreamResponseData($0) },
                                               onTrailers: { ds.upstreamResponseTrailers(.http1($0)) })
                } catch {
                    fail(.protocolError)
                    return
                }
                inBuf.consume(consumed)
                if body.isComplete { finishResponse(); return }
                ds.flushResponse()
                if consumed == 0 { return }
            case .tunnel:
                let room = ds.responseRoom
                if room <= 0 { pausedForRoom = true; ds.flushResponse(); return }
                let n = min(room, inBuf.count)
                if n > 0 {
                    ds.upstreamTunnelData(UnsafeRawBufferPointer(rebasing: inBuf.readable[..<n]))
                    inBuf.consume(n)
                }
                ds.flushResponse()
                return
            case .done:
                return
            }
        }
    }

    private func finishResponse() {
        phase = .done
        exchanges += 1
        let reusable = response.keepAlive && inBuf.isEmpty
        owner?.upstreamResponseEnd(reusable: reusable)
    }

    private func peerClosed() {
        switch phase {
        case .body where body.finishAtEOF():
            finishResponse()
        case .tunnel:
            let ds = owner
            close()
            ds?.upstreamTunnelClosed()
        default:
            fail(.reset)
        }
    }

    // MARK: writing

    func flush() {
        guard state == .active else { return }
        while !outBuf.isEmpty && writable {
            switch io.write(outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed:
                io.logFailure(to: endpoint, firstExchange: exchanges == 0)
                fail(.reset)
                return
            }
        }
        if let ds = owner, outBuf.count < worker.limits.bufferLimitBytes { ds.upstreamSendRoom() }
    }

    // MARK: ending

    private func timerFired() {
        switch state {
        case .connecting, .handshaking: fail(.connectFailed)
        case .pooled: worker.forget(self); close()
        default: break
        }
    }

    private func fail(_ f: UpstreamFailure) {
        let ds = owner
        let reused = exchanges > 0
        close()
        ds?.upstreamFailed(f, reused: reused)
    }

    /// The downstream gave up on the exchange: the connection cannot be reused.
    func abandon() {
        owner = nil
        close()
    }

    func close() {
        guard state != .closed else { return }
        let wasQueued = state == .queued
        state = .closed
        owner = nil
        if wasQueued {
            worker.dequeue(self)
            breaker?.release(.pendingRequests)
            return
        }
        worker.loop.cancel(timer)
        if fd >= 0 {
            worker.loop.unregister(fd: fd, registration: registration)
            io.closeNotify()
            Socket.close(fd)
        }
        worker.connectionSlotFreed(breaker)
    }
}
