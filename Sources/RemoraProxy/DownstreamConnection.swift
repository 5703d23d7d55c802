import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraPolicy
import RemoraTLS
import RemoraTelemetry
import RemoraResilience

/// A client connection speaking HTTP/1.1 on a listener. It parses one request at a
/// time (pipelined requests wait in the read buffer, so responses stay in order),
/// streams the body to the upstream, and streams the response back. Both directions
/// are bounded: a side whose peer buffer is full stops reading until it drains.
final class DownstreamConnection: EventHandler, DeferredTask, DownstreamHandle, ResponseSink, RetryingExchange {
    unowned(unsafe) let worker: ProxyWorker   // workers live for the process
    let fd: Int32
    /// The socket, or TLS over it (a listener whose Gateway servers terminate TLS).
    var io: Transport
    private var handshaking = false
    let peerIP: String
    let listener: ListenerRuntime
    private var registration = EventLoop.Registration.none

    let inBuf: ByteBuffer
    let outBuf: ByteBuffer
    var readable = false
    var writable = true
    private var peerHalfClosed = false
    private(set) var closed = false
    /// Close once `outBuf` has been written.
    var closing = false
    /// Written out and half-closed: discarding input until the client closes, so unread
    /// request bytes do not turn our last response into a TCP reset (nginx's lingering close).
    private var lingering = false
    static let lingerTimeoutMs = 2_000
    private var resumeScheduled = false

    // The exchange in progress (see DownstreamExchange.swift).
    enum RequestPhase { case head, delayed, body, done, tunnel }
    enum ResponsePhase { case waiting, streaming, done, tunnel }
    var requestPhase = RequestPhase.head
    var responsePhase = ResponsePhase.waiting
    var head = RequestHead()
    var scanFrom = 0
    var requestBody = BodyDecoder(framing: .none)
    var upstream: UpstreamRequest?
    var exchangeState: ProxyState?
    var keepAlive = true
    var responseFraming = HeadWriter.ResponseFraming.asIs
    var lastChunkWritten = false
    /// The request body (or its end) has been handed to the upstream.
    var requestEndSent = false
    /// No request seen yet: the connection may still turn out to be HTTP/2 (the preface).
    var fresh = true
    /// The exchange in progress, for metrics and the access log.
    var record = ExchangeRecord()
    /// Intercepted (iptables REDIRECT): where unrouted requests go — the original
    /// destination, or for the inbound listener the local application at its port.
    var passthrough: SocketAddress?
    /// Intercepted and not known to be HTTP: the first bytes decide (HTTP, or plain TCP to
    /// `passthrough`); nothing within `sniffTimeoutMs` means a server-first protocol.
    var sniffing = false
    static let sniffTimeoutMs = 100
    /// The attempts of the forwarded request (retries), and its head kept for a replay
    /// (the read buffer moves on once the head is forwarded).
    var attempts: Attempts?
    let headCopy: ByteBuffer
    let replayBody: ByteBuffer
    var tryPurpose = TryPurpose.perTry
    var tryTimerUsed = false
    lazy var tryTimer = LoopTimer { [unowned self] in self.tryTimerFired() }
    /// headers.response of the chosen destination, and CORS headers for the response.
    var responseOps: HeaderOps?
    var corsHeaders: [(String, String)] = []
    /// Shadow copies of the request in flight (fed the request body as it streams).
    var mirrors: [MirrorConnection] = []
    /// A request held by a fault delay.
    struct PendingFault { let match: RouteMatchResult; let abort: CustomReply? }
    var pendingFault: PendingFault?

    enum TimerPurpose { case idle, header, request, linger, faultDelay, sniff }
    var timerPurpose = TimerPurpose.idle
    lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    static let idleTimeoutMs = 300_000
    static let headerTimeoutMs = 60_000
    static let bodyBufferBytes = 64 * 1024

    @discardableResult
    init(worker: ProxyWorker, fd: Int32, peer: SocketAddress, listener: ListenerRuntime) {
        self.worker = worker
        self.fd = fd
        io = Transport(fd: fd, tls: nil)
        self.peerIP = peer.ip
        self.listener = listener
        inBuf = ByteBuffer(pool: worker.buffers)
        outBuf = ByteBuffer(pool: worker.buffers)
        headCopy = ByteBuffer(pool: worker.buffers)
        replayBody = ByteBuffer(pool: worker.buffers)
        if let ctx = listener.tls {
            guard let t = ctx.connection(fd: fd) else { Socket.close(fd); closed = true; return }
            io.tls = t
            handshaking = true
        }
        registration = worker.loop.register(fd: fd, events: IOEvents.connection, handler: self)
        guard registration != .none else { Socket.close(fd); closed = true; return }
        worker.accepted(self)
        if handshaking {
            arm(.header, DownstreamConnection.headerTimeoutMs)
            continueHandshake()
        } else {
            arm(.idle, DownstreamConnection.idleTimeoutMs)
        }
    }

    /// One step of the TLS handshake; then HTTP/2 if ALPN chose it, else HTTP/1.1.
    private func continueHandshake() {
        switch io.handshakeStep() {
        case .waiting:
            return
        case .failed(let why):
            worker.tlsHandshakeFailures += 1
            Log.info("TLS handshake with \(peerIP) on \(listener.spec.name) failed: \(why)")
            close()
        case .done:
            handshaking = false
            if io.tls?.alpn == "h2" { return switchToHTTP2() }
            arm(.idle, DownstreamConnection.idleTimeoutMs)
            readable = true   // TLS may already hold request bytes: no new edge would come
            readLoop()
        }
    }

    var limits: ProxyLimits { worker.limits }
    var headLimits: HTTP1Limits {
        HTTP1Limits(maxHeadBytes: limits.maxRequestHeadersKb * 1024, maxHeaders: limits.maxHeaders)
    }
    /// Room left in the client-bound buffer: how much response the upstream may read.
    var responseRoom: Int { limits.bufferLimitBytes - outBuf.count }

    // MARK: events

    func handleEvent(_ events: UInt32) {
        if handshaking {
            if events & (IOEvents.hangup | IOEvents.error) != 0 { close(); return }
            return continueHandshake()
        }
        if events & IOEvents.writable != 0 {
            writable = true
            flush()
        }
        if !closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            if events & (IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 { peerHalfClosed = true }
            readLoop()
        }
    }

    func runDeferred() {
        resumeScheduled = false
        guard !closed else { return }
        process()
        readLoop()
    }

    /// Continues this connection after the current event (never re-entered from a peer).
    func scheduleResume() {
        guard !resumeScheduled, !closed else { return }
        resumeScheduled = true
        worker.loop.schedule(self)
    }

    private var readCapacity: Int {
        requestPhase == .head ? headLimits.maxHeadBytes : DownstreamConnection.bodyBufferBytes
    }

    func readLoop() {
        if lingering { discardInput(); return }
        while readable && !closed && !closing {
            let cap = readCapacity
            if inBuf.count >= cap { return }   // resumed when the buffer is consumed
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
                peerClosed()
            case .failed:
                readable = false
                abort()
            }
        }
    }

    // MARK: writing

    func flush() {
        while !outBuf.isEmpty && writable && !closed {
            switch io.write(outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed:
                abort()
                return
            }
        }
        guard !closed else { return }
        if outBuf.isEmpty && closing { startLingering(); return }
        if let us = upstream, us.pausedForRoom, responseRoom > 0 { us.scheduleResume() }
    }

    /// Writes what is buffered, then closes.
    func closeAfterFlush() {
        closing = true
        flush()
    }

    // MARK: closing

    private func startLingering() {
        guard !lingering else { return }
        lingering = true
        io.closeNotify()
        Socket.shutdownWrite(fd)
        inBuf.clear()
        if let us = upstream {
            upstream = nil
            us.abandon()
        }
        arm(.linger, DownstreamConnection.lingerTimeoutMs)
        discardInput()
    }

    private func discardInput() {
        while readable && !closed {
            inBuf.clear()
            switch io.read(into: inBuf.reserve(16 * 1024), count: 16 * 1024) {
            case .bytes: continue
            case .wouldBlock: readable = false
            case .eof, .failed: close()
            }
        }
    }

    /// The client went away.
    private func peerClosed() {
        if requestPhase == .head && upstream == nil && responsePhase == .waiting {
            close()   // between requests, or a partial head: nothing to answer
        } else if requestPhase == .tunnel {
            closeAfterFlush()
        } else {
            abort()   // mid-exchange: the upstream exchange is abandoned ("DC")
        }
    }

    /// Starts sniffing an intercepted connection (called right after init).
    func startSniffing() {
        guard !closed else { return }
        sniffing = true
        arm(.sniff, DownstreamConnection.sniffTimeoutMs)
    }

    /// Not HTTP: the socket and what was read become a plain TCP proxy to the original destination.
    func switchToTCP() {
        guard let target = passthrough, !closed else { return close() }
        closed = true
        sniffing = false
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        TCPProxyConnection(worker: worker, clientFD: fd, initial: inBuf.readable, target: target,
                           timeouts: worker.tcpTimeouts(port: target.port))
        inBuf.clear()
        outBuf.clear()
        worker.closed(self)
    }

    /// Hands the socket to an HTTP/2 connection (the client sent the HTTP/2 preface).
    func switchToHTTP2() {
        closed = true
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        H2DownstreamConnection(worker: worker, io: io, peerIP: peerIP, listener: listener, passthrough: passthrough,
                               initial: inBuf.readable)
        inBuf.clear()
        outBuf.clear()
        worker.closed(self)
    }

    /// Closes at once; an exchange in progress is abandoned and its upstream closed.
    func abort() { close(reset: responseFraming == .closeDelimited && responsePhase == .streaming) }

    func close(reset: Bool = false) {
        guard !closed else { return }
        closed = true
        cancelTryTimer()
        if attempts != nil { worker.attemptsDone(&attempts!); attempts = nil }
        if record.active {
            // The exchange ended with the connection: the client went away (DC) or was cut off.
            if responsePhase != .done { record.flags.insert(.downstreamConnectionTermination) }
            worker.report(&record, listener: listener.spec, protocolName: "HTTP/1.1", peerIP: peerIP)
        }
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        if reset { Socket.abort(fd) } else { io.closeNotify(); Socket.close(fd) }
        if let us = upstream {
            upstream = nil
            us.abandon()
        }
        mirrors.removeAll()
        pendingFault = nil
        exchangeState = nil
        worker.closed(self)
    }

    /// The worker is draining: idle connections close now, busy ones after their exchange.
    func drain() {
        keepAlive = false
        if requestPhase == .head && upstream == nil && responsePhase == .waiting && inBuf.isEmpty {
            closeAfterFlush()
        }
    }

    // MARK: timers

    func arm(_ purpose: TimerPurpose, _ ms: Int) {
        timerPurpose = purpose
        worker.loop.arm(timer, afterMs: ms)
    }

    private func timerFired() {
        guard !closed else { return }
        switch timerPurpose {
        case .idle, .header:
            if requestPhase == .head && upstream == nil && responsePhase == .waiting {
                if inBuf.isEmpty { close() } else {
                    LocalReply.writeError(HTTP1Error(status: 408, reason: "request header timeout"), into: outBuf)
                    closeAfterFlush()
                }
            }
        case .request:
            upstreamTimedOut()
        case .linger:
            close()
        case .faultDelay:
            faultDelayElapsed()
        case .sniff:
            if sniffing { switchToTCP() }
        }
    }
}
