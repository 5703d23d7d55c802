import RemoraCore
import RemoraH2
import RemoraIO
import RemoraTLS

/// One HTTP/2 (h2c, prior knowledge) client of `remora echo`: the same replies as
/// HTTP/1.1 (EchoReply), many streams at once. Request bodies are counted and given
/// back to the flow-control windows as they arrive; `/bytes/{n}` is produced as the
/// stream's send queue drains, so its memory stays bounded whatever n is.
final class EchoH2Connection: EventHandler, H2SessionDelegate {
    let loop: EventLoop
    let fd: Int32
    let options: EchoServer.Options
    /// HTTPS (ALPN h2, or the preface after TLS): all bytes go through this.
    private let tls: TLSConnection?
    private var registration = EventLoop.Registration.none
    private var session: H2Session!
    private let inBuf = ByteBuffer(capacity: 16 * 1024)
    private let outBuf = ByteBuffer(capacity: 16 * 1024)
    private var readable = true
    private var writable = true
    private var closed = false
    /// receive() failed: write what the session has (its GOAWAY), then close.
    private var failing = false
    private var streams: [Int32: Stream] = [:]
    private var head = H2FieldList()

    /// Stop reading while this much output waits for the socket.
    private static let outHighWater = 256 * 1024
    /// `/bytes/{n}` keeps at most this much queued per stream.
    private static let streamQueue = 64 * 1024

    private final class Stream {
        var method = ""
        var path = ""
        var headers: [(String, String)] = []
        var bodyBytes = 0
        var remaining = 0
        var timer: LoopTimer?
        var answered = false
    }

    /// Takes over `fd` (already unregistered by the HTTP/1.1 side) with the bytes read
    /// so far, which start with the connection preface.
    static func start(loop: EventLoop, fd: Int32, initial: UnsafeRawBufferPointer, pool: BufferPool,
                      options: EchoServer.Options, tls: TLSConnection?) {
        let c = EchoH2Connection(loop: loop, fd: fd, options: options, tls: tls)
        c.session = H2Session(role: .server, settings: H2Settings(), pool: pool, delegate: c)
        c.registration = loop.register(fd: fd, events: IOEvents.connection, handler: c)
        if c.registration == .none {
            Socket.close(fd)
            return
        }
        if initial.count > 0, !c.session.receive(initial) { c.failing = true }
        c.drive()
    }

    private init(loop: EventLoop, fd: Int32, options: EchoServer.Options, tls: TLSConnection?) {
        self.loop = loop
        self.fd = fd
        self.options = options
        self.tls = tls
    }

    func handleEvent(_ events: UInt32) {
        if events & IOEvents.writable != 0 {
            writable = true
            // A TLS read that needed to write (a key update) is retried now.
            if tls?.wantsWriteForRead == true { readable = true }
        }
        if events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            if tls?.wantsReadForWrite == true { writable = true }
        }
        drive()
    }

    /// The socket, or TLS over it.
    @inline(__always) private var io: Transport { Transport(fd: fd, tls: tls) }

    /// Reads, feeds the session, and writes what it produces, until nothing moves.
    private func drive() {
        while !closed {
            var moved = false
            if readable && !failing && outBuf.count < EchoH2Connection.outHighWater {
                let p = inBuf.reserve(16 * 1024)
                switch io.read(into: p, count: 16 * 1024) {
                case .bytes(let n):
                    inBuf.commit(n)
                    if !session.receive(inBuf.readable) { failing = true }
                    inBuf.clear()
                    moved = true
                case .wouldBlock:
                    readable = false
                case .eof, .failed:
                    close()
                    return
                }
            }
            if outBuf.count < EchoH2Connection.outHighWater && session.wantsWrite {
                let before = outBuf.count
                if !session.send(into: outBuf, limit: EchoH2Connection.outHighWater) { failing = true }
                if outBuf.count > before { moved = true }
            }
            while writable && !outBuf.isEmpty {
                switch io.write(outBuf.readable) {
                case .bytes(let n):
                    outBuf.consume(n)
                    moved = true
                case .wouldBlock:
                    writable = false
                case .eof, .failed:
                    close()
                    return
                }
            }
            if outBuf.isEmpty && (failing || (!session.wantsRead && !session.wantsWrite)) {
                close()
                return
            }
            if !moved { return }
        }
    }

    private func close() {
        guard !closed else { return }
        closed = true
        for s in streams.values { if let t = s.timer { loop.cancel(t) } }
        streams.removeAll()
        loop.unregister(fd: fd, registration: registration)
        tls?.shutdown()
        Socket.close(fd)
    }

    // MARK: H2SessionDelegate

    func h2Headers(_ s: H2Session, stream: Int32, kind: H2HeadersKind, headers: H2HeaderView, endStream: Bool) {
        if kind == .request {
            if headers.oversized {
                head.removeAll()
                head.append(":status", "431")
                head.append("x-echo-name", options.name)
                _ = s.respond(stream: stream, headers: head, endStream: true)
                return
            }
            let st = Stream()
            var authority: String?
            for f in headers.fields {
                let name = headers.string(f.name)
                let value = headers.string(f.value)
                switch name {
                case ":method": st.method = value
                case ":path": st.path = value
                case ":authority": authority = value
                default: if !name.hasPrefix(":") { st.headers.append((name, value)) }
                }
            }
            // HTTP/1.1 shows Host among the headers; :authority is its HTTP/2 form.
            if let a = authority, !st.headers.contains(where: { $0.0 == "host" }) { st.headers.insert(("host", a), at: 0) }
            streams[stream] = st
        }
        if endStream { finish(stream) }
    }

    func h2Data(_ s: H2Session, stream: Int32, data: UnsafeRawBufferPointer) {
        streams[stream]?.bodyBytes += data.count
        s.consume(stream: stream, count: data.count)
    }

    func h2EndStream(_ s: H2Session, stream: Int32) { finish(stream) }

    func h2StreamClosed(_ s: H2Session, stream: Int32, errorCode: UInt32) {
        if let st = streams.removeValue(forKey: stream), let t = st.timer { loop.cancel(t) }
    }

    func h2SendRoom(_ s: H2Session, stream: Int32) { fill(stream) }

    // MARK: replies

    private func reply(_ st: Stream) -> EchoReply {
        EchoReply(method: st.method, path: st.path, protocolName: "HTTP/2", headers: st.headers,
                  keepAlive: true, isHead: st.method == "HEAD", options: options, tls: tls != nil)
    }

    /// The request is complete: answer now, or after /delay/{ms} on this stream's timer.
    private func finish(_ id: Int32) {
        guard let st = streams[id], !st.answered else { return }
        st.answered = true
        let r = reply(st)
        if r.delayMs > 0 {
            let t = LoopTimer { [unowned self] in self.delayDone(id) }
            st.timer = t
            loop.arm(t, afterMs: r.delayMs)
            return
        }
        answer(id, st, r)
    }

    private func delayDone(_ id: Int32) {
        guard !closed, let st = streams[id] else { return }
        st.timer = nil
        answer(id, st, reply(st))
        drive()
    }

    private func answer(_ id: Int32, _ st: Stream, _ r: EchoReply) {
        if r.status < 200 {
            // HTTP/2 has no final 1xx: send it as an interim response, then the echo.
            head.removeAll()
            head.append(":status", String(r.status))
            _ = session.respond(stream: id, headers: head, endStream: false)
        }
        let status = r.status < 200 ? (options.status ?? 200) : r.status
        let noBody = status == 204 || status == 304
        head.removeAll()
        head.append(":status", String(status))
        head.append("x-echo-name", r.name)
        if let n = r.streamBytes, !noBody {
            head.append("content-type", "application/octet-stream")
            head.append("content-length", String(n))
            let done = r.isHead || n == 0
            _ = session.respond(stream: id, headers: head, endStream: done)
            if !done {
                st.remaining = n
                fill(id)
            }
            return
        }
        if noBody {
            _ = session.respond(stream: id, headers: head, endStream: true)
            return
        }
        var json = r.jsonBody(bodyBytes: st.bodyBytes)
        head.append("content-type", "application/json")
        head.append("content-length", String(json.utf8.count))
        _ = session.respond(stream: id, headers: head, endStream: r.isHead)
        if !r.isHead {
            json.withUTF8 { session.sendData(stream: id, UnsafeRawBufferPointer($0)) }
            session.endStream(stream: id, trailers: nil)
        }
    }

    /// Tops up a `/bytes/{n}` stream's send queue; more on h2SendRoom.
    private func fill(_ id: Int32) {
        guard let st = streams[id], st.remaining > 0 else { return }
        while st.remaining > 0 && session.queuedBytes(stream: id) < EchoH2Connection.streamQueue {
            let n = min(st.remaining, EchoPattern.bytes.count)
            EchoPattern.bytes.withUnsafeBytes { session.sendData(stream: id, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            st.remaining -= n
        }
        if st.remaining == 0 { session.endStream(stream: id, trailers: nil) }
    }
}

/// The `/bytes/{n}` body, 16 KiB at a time: the same bytes HTTP/1.1 sends.
enum EchoPattern {
    static let bytes: [UInt8] = (0..<(16 * 1024)).map { UInt8(ascii: "a") &+ UInt8($0 % 26) }
}
