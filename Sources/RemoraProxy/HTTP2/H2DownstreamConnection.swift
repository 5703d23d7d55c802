import RemoraCore
import RemoraH2
import RemoraHTTP1
import RemoraIO
import RemoraTLS
import RemoraPolicy

/// A client connection speaking HTTP/2 (h2c with prior knowledge, detected by the
/// preface on an HTTP/1.1 port). nghttp2 parses and frames; every stream is an exchange
/// (H2ServerStream). Streams of one input batch are dispatched only after the whole batch
/// was parsed, so a request reset in the same read (rapid reset, CVE-2023-44487) costs no
/// upstream work.
final class H2DownstreamConnection: EventHandler, DeferredTask, H2SessionDelegate, DownstreamHandle {
    unowned(unsafe) let worker: ProxyWorker   // workers live for the process
    let fd: Int32
    private let io: Transport
    var secure: Bool { io.tls != nil }
    /// Intercepted traffic: where unrouted requests go (see DownstreamConnection.passthrough).
    let passthrough: SocketAddress?
    let peerIP: String
    let listener: ListenerRuntime
    private var registration = EventLoop.Registration.none
    private(set) var session: H2Session!
    private let inBuf: ByteBuffer
    private let outBuf: ByteBuffer
    private var readable = false
    private var writable = true
    private(set) var closed = false
    /// A fatal error or the end of a drain: write what is queued (GOAWAY), then close.
    private var closing = false
    private var sendScheduled = false
    private var draining = false

    private var streams: [Int32: H2ServerStream] = [:]
    private var newStreams: [H2ServerStream] = []
    /// Reused for every header list this connection sends.
    var fields = H2FieldList()

    private enum TimerPurpose { case idle, goAway, close }
    private var timerPurpose = TimerPurpose.idle
    private lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    /// Serialised output kept ahead of the socket; beyond it nghttp2 keeps frames queued
    /// and we stop reading the client (it is not reading us).
    static let outputHighWater = 64 * 1024
    static let drainGraceMs = 1_000

    /// Takes over `fd` from an HTTP/1.1 connection that saw the preface in `initial`.
    @discardableResult
    init(worker: ProxyWorker, io: Transport, peerIP: String, listener: ListenerRuntime, passthrough: SocketAddress?,
         initial: UnsafeRawBufferPointer) {
        self.worker = worker
        self.passthrough = passthrough
        self.io = io
        fd = io.fd
        self.peerIP = peerIP
        self.listener = listener
        inBuf = ByteBuffer(pool: worker.buffers)
        outBuf = ByteBuffer(pool: worker.buffers)
        let limits = worker.limits
        var settings = H2Settings()
        settings.maxConcurrentStreams = limits.maxConcurrentStreams
        settings.initialStreamWindow = limits.http2StreamWindowBytes
        settings.connectionWindow = limits.http2ConnectionWindowBytes
        settings.maxHeaderListBytes = limits.maxRequestHeadersKb * 1024
        settings.maxHeaders = limits.maxHeaders
        session = H2Session(role: .server, settings: settings, pool: worker.buffers, delegate: self)
        registration = worker.loop.register(fd: fd, events: IOEvents.connection, handler: self)
        guard registration != .none else { Socket.close(fd); closed = true; return }
        worker.accepted(self)
        arm(.idle, DownstreamConnection.idleTimeoutMs)
        if worker.draining { drain() }
        input(initial)
        sendAndFlush()
        // Under TLS, bytes may already wait inside the TLS layer: no new edge would come.
        if io.tls != nil { readable = true; readLoop() }
    }

    var limits: ProxyLimits { worker.limits }

    // MARK: events

    func handleEvent(_ events: UInt32) {
        if events & IOEvents.writable != 0 {
            writable = true
            sendAndFlush()
        }
        if !closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            readLoop()
        }
    }

    func runDeferred() {
        sendScheduled = false
        guard !closed else { return }
        sendAndFlush()
        if readable { readLoop() }
    }

    /// Streams call this when they queued frames: one send per event-loop turn.
    func needsSend() {
        guard !sendScheduled, !closed else { return }
        sendScheduled = true
        worker.loop.schedule(self)
    }

    private func readLoop() {
        while readable && !closed && !closing {
            if outBuf.count >= H2DownstreamConnection.outputHighWater { return }   // resumed when the socket drains
            let want = 16 * 1024
            let p = inBuf.reserve(want)
            switch io.read(into: p, count: want) {
            case .bytes(let n):
                inBuf.commit(n)
                input(inBuf.readable)
                inBuf.clear()
                sendAndFlush()
            case .wouldBlock:
                readable = false
            case .eof, .failed:
                readable = false
                close()
            }
        }
    }

    private func input(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        if !session.receive(bytes) {
            if let why = session.abuse { Log.warning("HTTP/2 client \(peerIP): \(why), connection closed (GOAWAY)") }
            closing = true
            newStreams.removeAll()
            return
        }
        // Dispatch what survived the whole batch.
        let batch = newStreams
        newStreams.removeAll(keepingCapacity: true)
        for s in batch where !s.closed { s.start() }
    }

    private func sendAndFlush() {
        guard !closed else { return }
        while true {
            if outBuf.count < H2DownstreamConnection.outputHighWater {
                guard session.send(into: outBuf, limit: H2DownstreamConnection.outputHighWater) else {
                    close()
                    return
                }
            }
            if outBuf.isEmpty || !writable { break }
            switch io.write(outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed:
                close()
                return
            }
        }
        if outBuf.isEmpty && (closing || (!session.wantsRead && !session.wantsWrite)) {
            close()
            return
        }
        if readable && !closing && outBuf.count < H2DownstreamConnection.outputHighWater { needsSend() }
    }

    // MARK: H2SessionDelegate

    func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) {
        switch kind {
        case .request:
            let st = H2ServerStream(connection: self, id: stream)
            streams[stream] = st
            newStreams.append(st)
            st.received(headers, endStream: endStream)
            if streams.count == 1 { worker.loop.cancel(timer) }
        case .trailers:
            streams[stream]?.receivedTrailers(headers)
        case .response, .informational:
            break
        }
    }

    func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer) {
        if let st = streams[stream] { st.receivedData(data) } else { s.consume(stream: stream, count: data.count) }
    }

    func h2EndStream(_ s: H2Session, stream: Int32) { streams[stream]?.receivedEnd() }

    func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {
        guard let st = streams.removeValue(forKey: stream) else { return }
        st.streamClosed(errorCode: errorCode)
        if streams.isEmpty {
            if draining { session.goAway(errorCode: 0); closing = true; needsSend() } else { arm(.idle, DownstreamConnection.idleTimeoutMs) }
        }
    }

    func h2SendRoom(_ s: H2Session, stream: Int32) { streams[stream]?.sendRoom() }

    // MARK: closing

    /// Draining: a GOAWAY that announces the end now, the final one after a grace period;
    /// in-flight streams complete.
    func drain() {
        guard !draining, !closed else { return }
        draining = true
        session.shutdownNotice()
        arm(.goAway, H2DownstreamConnection.drainGraceMs)
        needsSend()
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        io.closeNotify()
        Socket.close(fd)
        let open = streams
        streams.removeAll()
        newStreams.removeAll()
        for st in open.values { st.streamClosed(errorCode: 0) }
        inBuf.clear()
        outBuf.clear()
        worker.closed(self)
    }

    private func arm(_ p: TimerPurpose, _ ms: Int) {
        timerPurpose = p
        worker.loop.arm(timer, afterMs: ms)
    }

    private func timerFired() {
        guard !closed else { return }
        switch timerPurpose {
        case .idle:
            if streams.isEmpty { session.goAway(errorCode: 0); closing = true; arm(.close, 1_000); needsSend() }
        case .goAway:
            session.goAway(errorCode: 0)
            if streams.isEmpty { closing = true }
            needsSend()
        case .close:
            close()
        }
    }
}
