import RemoraCore
import RemoraH2
import RemoraHTTP1
import RemoraIO
import RemoraTLS
import RemoraResilience

/// An h2c connection to one upstream endpoint, shared by as many exchanges as its
/// streams allow (the peer's SETTINGS_MAX_CONCURRENT_STREAMS, or the DestinationRule's
/// maxConcurrentStreams). Requests may be submitted while it connects: nghttp2 queues
/// them behind the connection preface.
final class H2UpstreamConnection: EventHandler, DeferredTask, H2SessionDelegate {
    unowned(unsafe) let worker: ProxyWorker   // workers live for the process
    let fd: Int32
    let endpoint: EndpointRef
    let maxStreams: Int?
    let tlsContext: TLSClientContext?
    /// The cluster circuit breaker whose connection count this connection holds.
    private let breaker: CircuitBreaker?
    private let lifetime: ConnectionLifetime
    /// When the connection was opened (monotonic ms), for `maxConnectionDuration`.
    private let bornMs = MonotonicClock.nowMilliseconds()
    /// Streams ever handed out, for `maxRequestsPerConnection`.
    private var opened = 0
    private var io: Transport
    private var registration = EventLoop.Registration.none
    private(set) var session: H2Session!
    private let inBuf: ByteBuffer
    private let outBuf: ByteBuffer
    private var readable = false
    private var writable = false
    private var sendScheduled = false

    enum State { case connecting, handshaking, active, closed }
    private(set) var state = State.connecting
    private var streams: [Int32: H2UpstreamStream] = [:]
    /// Streams handed out and not yet finished (including those not yet submitted).
    private(set) var load = 0
    private var everConnected = false
    var fields = H2FieldList()

    /// Connect timeout while connecting; idle timeout (or remaining lifetime) with no stream.
    private lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    private init(worker: ProxyWorker, fd: Int32, endpoint: EndpointRef, maxStreams: Int?, tls: TLSClientContext?,
                 breaker: CircuitBreaker?, lifetime: ConnectionLifetime) {
        self.breaker = breaker
        self.lifetime = lifetime
        self.worker = worker
        self.fd = fd
        self.endpoint = endpoint
        self.maxStreams = maxStreams
        tlsContext = tls
        io = Transport(fd: fd, tls: nil)
        inBuf = ByteBuffer(pool: worker.buffers)
        outBuf = ByteBuffer(pool: worker.buffers)
    }

    static func connect(worker: ProxyWorker, endpoint: EndpointRef, connectTimeoutMs: Int, maxStreams: Int?,
                        tls: TLSClientContext?, breaker: CircuitBreaker? = nil, lifetime: ConnectionLifetime = .default) -> H2UpstreamConnection? {
        guard case .success(let fd) = Socket.connect(endpoint.address) else { return nil }
        let c = H2UpstreamConnection(worker: worker, fd: fd, endpoint: endpoint, maxStreams: maxStreams, tls: tls, breaker: breaker,
                                     lifetime: lifetime)
        var settings = H2Settings()
        let limits = worker.limits
        settings.initialStreamWindow = limits.http2StreamWindowBytes
        settings.connectionWindow = limits.http2ConnectionWindowBytes
        settings.maxHeaderListBytes = limits.maxRequestHeadersKb * 1024
        settings.maxHeaders = limits.maxHeaders
        c.session = H2Session(role: .client, settings: settings, pool: worker.buffers, delegate: c)
        c.registration = worker.loop.register(fd: fd, events: IOEvents.connection, handler: c)
        guard c.registration != .none else { Socket.close(fd); return nil }
        worker.loop.arm(c.timer, afterMs: connectTimeoutMs)
        return c
    }

    /// Whether one more exchange may use this connection (stream limits, and its lifetime:
    /// past `maxRequestsPerConnection` or `maxConnectionDuration` it only finishes what it carries).
    var hasRoom: Bool {
        guard state != .closed, session.canOpenStream else { return false }
        guard load < min(session.remoteMaxConcurrentStreams, maxStreams ?? Int.max) else { return false }
        return canCarryMore
    }

    private var canCarryMore: Bool {
        lifetime.canCarryMore(requests: opened, bornMs: bornMs, nowMs: lifetime.maxDurationMs == nil ? 0 : MonotonicClock.nowMilliseconds())
    }

    func newStream() -> H2UpstreamStream {
        load += 1
        opened += 1
        if state == .active { worker.loop.cancel(timer) }   // the idle timer (connecting: the connect timer stays)
        return H2UpstreamStream(connection: self)
    }

    func register(_ s: H2UpstreamStream, id: Int32) { streams[id] = s }

    /// A stream handed out by newStream() is done with the connection.
    func finished(_ s: H2UpstreamStream) {
        if s.id >= 0 { streams.removeValue(forKey: s.id) }
        load -= 1
        if load == 0 && state == .active { becameIdle() }
    }

    /// No stream left: close if draining or retired, else wait for the idle timeout (or the
    /// end of the connection's lifetime, if sooner).
    private func becameIdle() {
        let wait = lifetime.idleWaitMs(bornMs: bornMs, nowMs: MonotonicClock.nowMilliseconds())
        if worker.draining || wait == 0 || !canCarryMore { close(); return }
        worker.loop.arm(timer, afterMs: wait)
    }

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
                connected()
            }
        }
        if state == .handshaking {
            switch io.upstreamHandshakeStep(worker: worker, endpoint: endpoint) {
            case .waiting:
                return
            case .failed:
                return fail(.tlsFailed)
            case .done:
                connected()
                writable = true
                readable = true   // the TLS layer may hold bytes already
                sendAndFlush()
                readLoop()
                return
            }
        }
        if events & IOEvents.writable != 0 {
            writable = true
            sendAndFlush()
        }
        if state != .closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            readLoop()
        }
    }

    private func connected() {
        state = .active
        everConnected = true
        worker.loop.cancel(timer)
        if load == 0 { becameIdle() }
    }

    func runDeferred() {
        sendScheduled = false
        sendAndFlush()
    }

    func needsSend() {
        guard !sendScheduled, state != .closed else { return }
        sendScheduled = true
        worker.loop.schedule(self)
    }

    private func readLoop() {
        while readable && state == .active {
            if outBuf.count >= H2DownstreamConnection.outputHighWater { return }
            let p = inBuf.reserve(16 * 1024)
            switch io.read(into: p, count: 16 * 1024) {
            case .bytes(let n):
                inBuf.commit(n)
                let ok = session.receive(inBuf.readable)
                inBuf.clear()
                if !ok { sendAndFlush(); fail(.protocolError); return }
                sendAndFlush()
            case .wouldBlock:
                readable = false
            case .eof, .failed:
                readable = false
                io.logFailure(to: endpoint, firstExchange: false)
                fail(.reset)
            }
        }
    }

    private func sendAndFlush() {
        guard state == .active else { return }
        while true {
            if outBuf.count < H2DownstreamConnection.outputHighWater {
                guard session.send(into: outBuf, limit: H2DownstreamConnection.outputHighWater) else { fail(.protocolError); return }
            }
            if outBuf.isEmpty || !writable { break }
            switch io.write(outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed:
                fail(.reset)
                return
            }
        }
        if outBuf.isEmpty && !session.wantsRead && !session.wantsWrite { fail(.reset) }
    }

    // MARK: H2SessionDelegate

    func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) {
        guard let st = streams[stream] else { return }
        switch kind {
        case .response: st.receivedResponse(headers, endStream: endStream)
        case .trailers: st.receivedTrailers(headers)
        case .informational, .request: break
        }
    }

    func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer) {
        if let st = streams[stream] { st.receivedData(data) } else { s.consume(stream: stream, count: data.count) }
    }

    func h2EndStream(_ s: H2Session, stream: Int32) { streams[stream]?.receivedEnd() }

    func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {
        guard let st = streams[stream] else { return }
        st.streamClosed(errorCode: errorCode)
    }

    func h2SendRoom(_ s: H2Session, stream: Int32) { streams[stream]?.sendRoomOpened() }

    // MARK: ending

    private func timerFired() {
        switch state {
        case .connecting, .handshaking: fail(.connectFailed)
        case .active: if load == 0 { close() }
        case .closed: break
        }
    }

    /// The connection failed: every exchange on it learns why.
    private func fail(_ f: UpstreamFailure) {
        guard state != .closed else { return }
        close(failure: everConnected ? f : .connectFailed)
    }

    func close(failure: UpstreamFailure = .reset) {
        guard state != .closed else { return }
        state = .closed
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        io.closeNotify()
        Socket.close(fd)
        worker.connectionSlotFreed(breaker)
        worker.forget(self)
        let open = streams
        streams.removeAll()
        for st in open.values { st.connectionFailed(failure) }
        inBuf.clear()
        outBuf.clear()
    }
}
