import RemoraCore
import RemoraIO

/// Plain TCP between a client and an upstream (Envoy's tcp_proxy): bytes both ways as
/// they come, each direction bounded by `bufferLimitBytes` (a side whose peer's buffer is
/// full stops reading), half-close passed on, the connection ends when both directions
/// have ended. For captured connections that are not HTTP: ports declared TCP, MySQL,
/// Redis, … and server-first or unrecognised protocols. It also ends after `timeouts.idleMs`
/// without a byte either way, or at `timeouts.maxDurationMs` (one timer, re-armed from the
/// last activity when it fires, so bytes cost a clock read, not a timer update).
final class TCPProxyConnection: DownstreamHandle {
    unowned(unsafe) let worker: ProxyWorker
    private let client: TCPSide
    private let server: TCPSide
    private var closed = false
    private let timeouts: TCPTimeouts
    private let bornMs = MonotonicClock.nowMilliseconds()
    fileprivate var lastActivityMs: UInt64
    private lazy var timer = LoopTimer { [unowned self] in self.timerFired() }

    /// Takes over the accepted `fd` (with bytes already read from it) and connects to `target`.
    @discardableResult
    init?(worker: ProxyWorker, clientFD: Int32, initial: UnsafeRawBufferPointer, target: SocketAddress, timeouts: TCPTimeouts) {
        guard case .success(let ufd) = Socket.connect(target) else { Socket.close(clientFD); return nil }
        self.worker = worker
        self.timeouts = timeouts
        lastActivityMs = bornMs
        client = TCPSide(fd: clientFD, pool: worker.buffers, connected: true)
        server = TCPSide(fd: ufd, pool: worker.buffers, connected: false)
        client.owner = self
        server.owner = self
        client.peer = server
        server.peer = client
        server.outBuf.append(initial)
        guard client.register(worker.loop), server.register(worker.loop) else { closeBoth(); return }
        worker.accepted(self)
        worker.tcp.opened += 1
        armTimer(now: bornMs)
        client.readable = true
        client.pump()
    }

    private func armTimer(now: UInt64) {
        let end = timeouts.deadline(bornMs: bornMs, lastActivityMs: lastActivityMs)
        worker.loop.arm(timer, afterMs: end > now ? Int(end - now) : 0)
    }

    private func timerFired() {
        guard !closed else { return }
        let now = MonotonicClock.nowMilliseconds()
        if now >= timeouts.deadline(bornMs: bornMs, lastActivityMs: lastActivityMs) { closeBoth() } else { armTimer(now: now) }
    }

    var limit: Int { worker.limits.bufferLimitBytes }
    fileprivate var serverSide: TCPSide { server }

    func drain() {}   // a byte stream has no request boundary to stop at: it runs to its end

    fileprivate func sideFinished() {
        if client.done && server.done { closeBoth() }
    }

    fileprivate func closeBoth() {
        guard !closed else { return }
        closed = true
        worker.loop.cancel(timer)
        client.close(loop: worker.loop)
        server.close(loop: worker.loop)
        worker.tcp.closed += 1
        worker.closed(self)
    }
}

/// One socket of a TCP proxy: reads into its peer's write buffer, writes its own.
private final class TCPSide: EventHandler {
    let fd: Int32
    let outBuf: ByteBuffer
    unowned(unsafe) var owner: TCPProxyConnection!
    unowned(unsafe) var peer: TCPSide!
    private var registration = EventLoop.Registration.none
    var readable = false
    private var writable = false
    private var connected: Bool
    /// This side's peer sent EOF, passed on as a half-close once our buffer is written.
    private var eofIn = false
    private var shutdownSent = false
    private var closed = false
    /// Both the input ended and everything for this socket was written.
    var done: Bool { eofIn && peer.shutdownSent }

    init(fd: Int32, pool: BufferPool, connected: Bool) {
        self.fd = fd
        outBuf = ByteBuffer(pool: pool)
        self.connected = connected
        writable = connected
    }

    func register(_ loop: EventLoop) -> Bool {
        registration = loop.register(fd: fd, events: IOEvents.connection, handler: self)
        return registration != .none
    }

    func handleEvent(_ events: UInt32) {
        if !connected {
            switch Socket.connectProgress(fd, events: events) {
            case .pending: return
            case .failed: return owner.closeBoth()
            case .connected: connected = true
            }
        }
        if events & IOEvents.writable != 0 {
            writable = true
            flush()
        }
        if !closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            pump()
        }
    }

    /// Reads while the peer's buffer has room.
    func pump() {
        while readable && !eofIn && !closed && connected {
            let room = owner.limit - peer.outBuf.count
            if room <= 0 { return }   // resumed when the peer drains
            let want = min(room, 16 * 1024)
            switch Socket.read(fd, into: peer.outBuf.reserve(want), count: want) {
            case .bytes(let n):
                peer.outBuf.commit(n)
                owner.lastActivityMs = MonotonicClock.nowMilliseconds()
                if peer === owner.serverSide { owner.worker.tcp.received += n } else { owner.worker.tcp.sent += n }
                peer.flush()
            case .wouldBlock:
                readable = false
            case .eof:
                eofIn = true
                peer.flush()   // passes the half-close on once written
            case .failed:
                owner.closeBoth()
                return
            }
        }
    }

    func flush() {
        guard connected, !closed else { return }
        while !outBuf.isEmpty && writable {
            switch Socket.write(fd, outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed:
                owner.closeBoth()
                return
            }
        }
        if outBuf.isEmpty && peer.eofIn && !shutdownSent {
            shutdownSent = true
            Socket.shutdownWrite(fd)
            owner.sideFinished()
            if closed { return }
        }
        if outBuf.count < owner.limit && peer.readable { peer.pump() }
    }

    func close(loop: EventLoop) {
        guard !closed else { return }
        closed = true
        loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
        outBuf.clear()
    }
}

/// Istio's TCP metrics of one worker (istio_tcp_connections_opened_total, …).
struct TCPCounters {
    var opened = 0
    var closed = 0
    /// Bytes from the client (istio_tcp_received_bytes_total) and to it (istio_tcp_sent_bytes_total).
    var received = 0
    var sent = 0

    mutating func add(_ o: TCPCounters) {
        opened += o.opened; closed += o.closed; received += o.received; sent += o.sent
    }
}

/// Protocol sniffing on intercepted connections (Istio's: HTTP is recognised from the
/// first bytes, anything else is plain TCP).
enum Sniff {
    enum Verdict { case http, notHTTP, needMore }

    /// A request line starts with a method token and a space ("GET ", "OPTIONS ", …), or
    /// the HTTP/2 preface ("PRI * HTTP/2.0").
    static func classify(_ b: UnsafeRawBufferPointer) -> Verdict {
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: " ") { return i > 0 ? .http : .notHTTP }
            guard c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"), i < 20 else { return .notHTTP }
            i += 1
        }
        return .needMore
    }

    /// Server-first protocols by well-known port: the client waits for a greeting, so
    /// waiting for client bytes would hang them (SMTP, FTP, SSH, POP3, IMAP, MySQL).
    static let serverFirstPorts: Set<Int> = [21, 22, 25, 110, 143, 587, 3306]
}
