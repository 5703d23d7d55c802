import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraTLS

/// One client of `remora echo`: reads a request and its whole body (counting it),
/// then answers; keep-alive and pipelining in order. A connection that opens with the
/// HTTP/2 preface is handed to EchoH2Connection (h2c, prior knowledge). With TLS the
/// handshake comes first, and ALPN "h2" hands the connection over at once.
final class EchoConnection: EventHandler {
    let loop: EventLoop
    let fd: Int32
    let options: EchoServer.Options
    let pool: BufferPool
    /// HTTPS: all bytes go through this; nil for plain HTTP.
    private var tls: TLSConnection?
    /// Nothing parsed yet: the bytes may still turn out to be the HTTP/2 preface.
    private var atStart = true
    private var registration = EventLoop.Registration.none
    private let inBuf = ByteBuffer(capacity: 16 * 1024)
    private let outBuf = ByteBuffer(capacity: 16 * 1024)
    private var readable = false
    private var writable = true
    private var closed = false
    private var closing = false

    private enum Phase { case head, body, delaying, streaming }
    private var phase = Phase.head
    private var head = RequestHead()
    private var scanFrom = 0
    private var body = BodyDecoder(framing: .none)
    private var bodyBytes = 0
    private var reply: EchoReply?
    private var streamRemaining = 0
    private lazy var timer = LoopTimer { [unowned self] in self.delayDone() }

    static func start(loop: EventLoop, fd: Int32, options: EchoServer.Options, pool: BufferPool, tls: TLSConnection?) {
        let c = EchoConnection(loop: loop, fd: fd, options: options, pool: pool, tls: tls)
        c.registration = loop.register(fd: fd, events: IOEvents.connection, handler: c)
        if c.registration == .none { Socket.close(fd) }
    }

    private init(loop: EventLoop, fd: Int32, options: EchoServer.Options, pool: BufferPool, tls: TLSConnection?) {
        self.loop = loop
        self.fd = fd
        self.options = options
        self.pool = pool
        self.tls = tls
    }

    private static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// true: HTTP/1.1 from here on (or the connection went to HTTP/2); false: a prefix
    /// of the preface, wait for more.
    private func checkPreface() -> Bool {
        let b = inBuf.readable
        let n = min(b.count, EchoConnection.preface.count)
        guard EchoConnection.preface.withUnsafeBytes({ $0.prefix(n).elementsEqual(b.prefix(n)) }) else {
            atStart = false
            return true
        }
        if n < EchoConnection.preface.count { return false }
        // Hand the socket and the bytes read so far to the HTTP/2 side.
        atStart = false
        closed = true
        loop.unregister(fd: fd, registration: registration)
        EchoH2Connection.start(loop: loop, fd: fd, initial: b, pool: pool, options: options, tls: tls)
        tls = nil
        inBuf.clear()
        return true
    }

    func handleEvent(_ events: UInt32) {
        if let t = tls, !t.handshakeDone {
            handshake(t)
            return
        }
        if events & IOEvents.writable != 0 {
            writable = true
            // A TLS read that needed to write (a key update) is retried now.
            if tls?.wantsWriteForRead == true { readable = true }
            flush()
        }
        if !closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            if tls?.wantsReadForWrite == true {
                writable = true
                flush()
            }
            readLoop()
        }
    }

    /// Any event moves the handshake on; each want is answered by a later edge, since
    /// OpenSSL asks only after the socket said EAGAIN.
    private func handshake(_ t: TLSConnection) {
        switch t.handshake() {
        case .wantRead, .wantWrite:
            return
        case .failed(let reason):
            Log.debug("echo: TLS handshake failed: \(reason)")
            close()
        case .done:
            if t.alpn == "h2" {
                closed = true
                loop.unregister(fd: fd, registration: registration)
                EchoH2Connection.start(loop: loop, fd: fd, initial: UnsafeRawBufferPointer(start: nil, count: 0),
                                       pool: pool, options: options, tls: t)
                tls = nil
                return
            }
            // The request may already sit in OpenSSL's buffer: no edge will announce it.
            readable = true
            writable = true
            readLoop()
        }
    }

    /// The socket, or TLS over it.
    @inline(__always) private var io: Transport { Transport(fd: fd, tls: tls) }

    private func readLoop() {
        while readable && !closed {
            if inBuf.count >= 256 * 1024 { return }
            let p = inBuf.reserve(16 * 1024)
            switch io.read(into: p, count: 16 * 1024) {
            case .bytes(let n):
                inBuf.commit(n)
                process()
            case .wouldBlock:
                readable = false
            case .eof, .failed:
                close()
            }
        }
    }

    private func process() {
        while !closed && !closing {
            switch phase {
            case .head:
                guard !inBuf.isEmpty else { return }
                if atStart && (!checkPreface() || closed) { return }
                switch HTTP1Parser.parseRequestHead(inBuf.readable, into: &head, limits: HTTP1Limits(), scanFrom: &scanFrom) {
                case .incomplete:
                    return
                case .error(let e):
                    outBuf.append("HTTP/1.1 ")
                    outBuf.append(decimal: e.status)
                    outBuf.append(" Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    closing = true
                    flush()
                    return
                case .complete:
                    reply = EchoReply(head: head, buf: inBuf.readable, options: options, tls: tls != nil)
                    if head.expectContinue { outBuf.append("HTTP/1.1 100 Continue\r\n\r\n") }
                    inBuf.consume(head.headBytes)
                    scanFrom = 0
                    body = BodyDecoder(framing: head.framing)
                    bodyBytes = 0
                    phase = .body
                }
            case .body:
                if !body.isComplete {
                    guard !inBuf.isEmpty else { return }
                    var counted = 0
                    let consumed: Int
                    do {
                        consumed = try body.decode(inBuf.readable, maxData: Int.max,
                                                   onData: { counted += $0.count }, onTrailers: { _ in })
                    } catch {
                        close()
                        return
                    }
                    bodyBytes += counted
                    inBuf.consume(consumed)
                    if !body.isComplete { return }
                }
                if let ms = reply?.delayMs, ms > 0 {
                    phase = .delaying
                    loop.arm(timer, afterMs: ms)
                    return
                }
                respond()
            case .delaying, .streaming:
                return
            }
        }
    }

    private func delayDone() {
        guard !closed, phase == .delaying else { return }
        respond()
        process()
    }

    private func respond() {
        guard let r = reply else { return }
        streamRemaining = r.write(into: outBuf, bodyBytes: bodyBytes)
        if !r.keepAlive { closing = true }
        phase = streamRemaining > 0 ? .streaming : .head
        fillStream()
        flush()
    }

    /// `/bytes/{n}`: the body is produced as the client drains it, never held whole.
    private func fillStream() {
        while streamRemaining > 0 && outBuf.count < 256 * 1024 {
            let n = min(streamRemaining, 16 * 1024)
            let p = outBuf.reserve(n)
            for i in 0..<n { p.storeBytes(of: UInt8(ascii: "a") &+ UInt8(i % 26), toByteOffset: i, as: UInt8.self) }
            outBuf.commit(n)
            streamRemaining -= n
        }
        if streamRemaining == 0 && phase == .streaming { phase = .head }
    }

    private func flush() {
        while !closed {
            while !outBuf.isEmpty && writable {
                switch io.write(outBuf.readable) {
                case .bytes(let n): outBuf.consume(n)
                case .wouldBlock: writable = false
                case .eof, .failed: close(); return
                }
            }
            if phase == .streaming && writable { fillStream(); continue }
            break
        }
        if closed { return }
        if outBuf.isEmpty && phase == .head {
            if closing { close(); return }
            if !inBuf.isEmpty { process() }
        }
    }

    private func close() {
        guard !closed else { return }
        closed = true
        loop.cancel(timer)
        loop.unregister(fd: fd, registration: registration)
        tls?.shutdown()
        Socket.close(fd)
    }
}
