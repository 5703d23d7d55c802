import RemoraConfig
import RemoraCore
import RemoraHTTP1
import RemoraIO

/// One request to an admin, health or metrics port, read whole (bodies are small and bounded).
struct AdminRequest: Sendable {
    var method: String
    /// The request-target as sent.
    var target: String
    /// The path part of the target, not decoded.
    var path: String
    /// Query parameters, percent-decoded ("+" is a space); the first occurrence of a name wins.
    var query: [String: String]
    /// Names lowercased, in order.
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    init(method: String, target: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        let q = target.firstIndex(of: "?")
        path = q.map { String(target[..<$0]) } ?? target
        query = [:]
        if let q {
            for pair in target[target.index(after: q)...].split(separator: "&", omittingEmptySubsequences: true) {
                let eq = pair.firstIndex(of: "=")
                let name = percentDecode(eq.map { pair[..<$0] } ?? pair[...], plusIsSpace: true)
                let value = eq.map { percentDecode(pair[pair.index(after: $0)...], plusIsSpace: true) } ?? ""
                if query[name] == nil { query[name] = value }
            }
        }
        self.headers = headers.map { ($0.name.lowercased(), $0.value) }
        self.body = body
    }

    /// The first value of a header (any case), or nil.
    func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name == n }?.value
    }

    /// Every value of a header, comma-joined (RFC 9110 §5.3).
    func headerList(_ name: String) -> String? {
        let n = name.lowercased()
        let values = headers.filter { $0.name == n }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
}

/// A reply: always a complete body with Content-Length.
struct AdminResponse {
    var status: Int
    var contentType: String?
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// Close the connection once the reply is written.
    var close = false
    /// Runs once the reply has been handed to the kernel (e.g. /quitquitquit starts draining then).
    var afterSent: (() -> Void)?

    init(status: Int, contentType: String? = nil, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    init(status: Int, contentType: String, text: String, headers: [(name: String, value: String)] = []) {
        self.init(status: status, contentType: contentType, headers: headers, body: Array(text.utf8))
    }
}

func percentDecode(_ s: Substring, plusIsSpace: Bool = false) -> String {
    guard s.contains("%") || (plusIsSpace && s.contains("+")) else { return String(s) }
    var out: [UInt8] = []
    let bytes = Array(s.utf8)
    var i = 0
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    while i < bytes.count {
        let c = bytes[i]
        if c == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(plusIsSpace && c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Limits of the admin HTTP server.
struct AdminHTTPLimits {
    /// Larger request bodies get 413 (SPEC: a configuration of many thousand rules still fits).
    var maxBodyBytes = 16 * 1024 * 1024
    var maxHeadBytes = 64 * 1024
    /// Replies waiting for a client that does not read: stop answering its pipelined requests beyond this.
    var maxPendingOutput = 1024 * 1024
    /// An idle (or stalled) connection is closed after this.
    var idleTimeoutMs = 60_000
    var maxConnections = 512
}

/// A listening socket of the admin server and the connections it accepted, all on one loop.
final class AdminHTTPListener: EventHandler {
    typealias Handler = (AdminRequest, @escaping (AdminResponse) -> Void) -> Void

    let loop: EventLoop
    let port: Int
    let limits: AdminHTTPLimits
    let handler: Handler
    private var fd: Int32
    private var registration = EventLoop.Registration.none
    private var connections: [ObjectIdentifier: AdminConnection] = [:]

    /// Binds (throws if the port cannot be bound) and registers on `loop`.
    init(loop: EventLoop, address: String, port: Int, limits: AdminHTTPLimits, handler: @escaping Handler) throws {
        self.loop = loop
        self.limits = limits
        self.handler = handler
        fd = try Socket.listen(host: address, port: port, reusePort: false, backlog: 128)
        self.port = Socket.localPort(fd)
        registration = loop.register(fd: fd, events: IOEvents.readable, handler: self)
        if registration == .none {
            Socket.close(fd)
            fd = -1
            throw Socket.ListenError.failed("\(address):\(port)", 22)
        }
    }

    var connectionCount: Int { connections.count }

    func handleEvent(_ events: UInt32) {
        guard fd >= 0 else { return }
        for _ in 0..<64 {
            guard let (cfd, _) = Socket.accept(fd) else { return }
            if connections.count >= limits.maxConnections {
                Socket.close(cfd)
                continue
            }
            let c = AdminConnection(loop: loop, fd: cfd, listener: self)
            guard c.start() else { continue }
            connections[ObjectIdentifier(c)] = c
        }
    }

    func closed(_ c: AdminConnection) { connections[ObjectIdentifier(c)] = nil }

    func close() {
        guard fd >= 0 else { return }
        loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
        fd = -1
        for c in Array(connections.values) { c.close() }
        connections.removeAll()
    }
}

/// One client connection: HTTP/1.1 keep-alive, one request at a time (pipelined requests wait in the
/// read buffer, so replies stay in order), non-blocking reads and buffered writes. A reply may come
/// later (after a configuration is installed on every worker); nothing blocks the loop meanwhile.
final class AdminConnection: EventHandler {
    private let loop: EventLoop
    private let fd: Int32
    private weak var listener: AdminHTTPListener?
    private let limits: AdminHTTPLimits
    private var registration = EventLoop.Registration.none
    private let inBuf = ByteBuffer(capacity: 4096)
    private let outBuf = ByteBuffer(capacity: 4096)
    private var readable = false
    private var writable = true
    private(set) var isClosed = false
    /// The peer closed its side: answer what was read, then close.
    private var peerDone = false
    private var closeWhenFlushed = false
    private var afterFlush: [() -> Void] = []
    private var inProcess = false

    private enum Phase {
        case head
        case lengthBody(Int)
        case chunkedBody
        /// The handler has the request; the reply has not come yet.
        case handling
    }
    private var phase = Phase.head
    private var head = RequestHead()
    private var scanFrom = 0
    private var decoder = BodyDecoder(framing: .none)
    private var body: [UInt8] = []
    private var pending: (method: String, target: String, headers: [(name: String, value: String)])?
    private var keepAlive = true
    private var isHeadRequest = false
    private lazy var timer = LoopTimer { [unowned self] in self.timedOut() }

    init(loop: EventLoop, fd: Int32, listener: AdminHTTPListener) {
        self.loop = loop
        self.fd = fd
        self.listener = listener
        limits = listener.limits
    }

    func start() -> Bool {
        registration = loop.register(fd: fd, events: IOEvents.connection, handler: self)
        if registration == .none {
            Socket.close(fd)
            isClosed = true
            return false
        }
        loop.arm(timer, afterMs: limits.idleTimeoutMs)
        return true
    }

    func handleEvent(_ events: UInt32) {
        if isClosed { return }
        if events & IOEvents.writable != 0 {
            writable = true
            flush()
        }
        if !isClosed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            readable = true
            readLoop()
        }
    }

    private var maxBuffered: Int { limits.maxBodyBytes + limits.maxHeadBytes + 64 * 1024 }

    private func readLoop() {
        var gotBytes = false
        while readable && !isClosed && !peerDone {
            if inBuf.count >= maxBuffered { break }
            let want = 64 * 1024
            let p = inBuf.reserve(want)
            switch Socket.read(fd, into: p, count: want) {
            case .bytes(let n):
                inBuf.commit(n)
                gotBytes = true
            case .wouldBlock:
                readable = false
            case .eof:
                peerDone = true
                readable = false
            case .failed:
                close()
                return
            }
        }
        if gotBytes, !isHandling { loop.arm(timer, afterMs: limits.idleTimeoutMs) }
        process()
        if peerDone && !isClosed && !isHandling && outBuf.isEmpty {
            // Nothing more will come: whatever partial request is left can never complete.
            close()
        }
    }

    private var isHandling: Bool { if case .handling = phase { return true }; return false }

    /// Parses and dispatches what the read buffer holds, one request at a time.
    private func process() {
        if inProcess { return }
        inProcess = true
        defer { inProcess = false }
        while !isClosed && !closeWhenFlushed && outBuf.count < limits.maxPendingOutput {
            switch phase {
            case .handling:
                return
            case .head:
                guard !inBuf.isEmpty else { return }
                var hl = HTTP1Limits(maxHeadBytes: limits.maxHeadBytes, maxHeaders: 100)
                hl.maxRequestLineBytes = 8 * 1024
                switch HTTP1Parser.parseRequestHead(inBuf.readable, into: &head, limits: hl, scanFrom: &scanFrom) {
                case .incomplete:
                    return
                case .error(let e):
                    fail(e.status, e.reason)
                    return
                case .complete:
                    startRequest()
                }
            case .lengthBody(let n):
                guard inBuf.count >= n else { return }
                body = Array(UnsafeRawBufferPointer(rebasing: inBuf.readable[0..<n]))
                inBuf.consume(n)
                dispatch()
            case .chunkedBody:
                guard !inBuf.isEmpty else { return }
                var over = false
                let consumed: Int
                do {
                    consumed = try decoder.decode(inBuf.readable, maxData: Int.max, onData: { data in
                        if self.body.count + data.count > self.limits.maxBodyBytes { over = true } else { self.body.append(contentsOf: data) }
                    }, onTrailers: { _ in })
                } catch {
                    fail(400, "malformed chunked body")
                    return
                }
                inBuf.consume(consumed)
                if over {
                    fail(413, "request body larger than \(limits.maxBodyBytes) bytes")
                    return
                }
                if decoder.isComplete { dispatch() } else { return }
            }
        }
    }

    private func startRequest() {
        let buf = inBuf.readable
        func str(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: buf[r]), as: UTF8.self) }
        let headers = head.headers.map { (name: str($0.name), value: str($0.value)) }
        let method = str(head.method)
        pending = (method, str(head.target), headers)
        keepAlive = head.keepAlive
        isHeadRequest = method == "HEAD"
        let framing = head.framing
        let expect = head.expectContinue
        inBuf.consume(head.headBytes)
        scanFrom = 0
        body = []
        switch framing {
        case .none, .untilClose:
            dispatch()
        case .contentLength(let n):
            if n > UInt64(limits.maxBodyBytes) {
                fail(413, "request body larger than \(limits.maxBodyBytes) bytes")
                return
            }
            if n == 0 { dispatch(); return }
            if expect && inBuf.count < Int(n) { outBuf.append("HTTP/1.1 100 Continue\r\n\r\n"); flush() }
            phase = .lengthBody(Int(n))
        case .chunked:
            if expect { outBuf.append("HTTP/1.1 100 Continue\r\n\r\n"); flush() }
            decoder = BodyDecoder(framing: .chunked)
            phase = .chunkedBody
        }
    }

    private func dispatch() {
        guard let p = pending, let listener else { return }
        pending = nil
        phase = .handling
        let request = AdminRequest(method: p.method, target: p.target, headers: p.headers, body: body)
        body = []
        listener.handler(request) { [weak self] response in
            self?.send(response)
        }
    }

    /// A request that cannot be read: answer and close (its framing is in doubt).
    private func fail(_ status: Int, _ reason: String) {
        pending = nil
        phase = .handling
        keepAlive = false
        isHeadRequest = false
        var r = AdminResponse(status: status, contentType: "application/json",
                              text: ConfigValue.object([.init("error", .string(reason))]).jsonString(pretty: true) + "\n")
        r.close = true
        send(r)
    }

    private func send(_ r: AdminResponse) {
        guard !isClosed, isHandling else { return }
        let close = r.close || !keepAlive || peerDone
        outBuf.append("HTTP/1.1 ")
        outBuf.append(decimal: r.status)
        outBuf.append(byte: 0x20)
        outBuf.append(HTTP1Parser.reasonPhrase(r.status))
        outBuf.append("\r\n")
        if let ct = r.contentType { outBuf.append("content-type: \(ct)\r\n") }
        outBuf.append("content-length: ")
        outBuf.append(decimal: r.body.count)
        outBuf.append("\r\n")
        for h in r.headers { outBuf.append("\(h.name): \(h.value)\r\n") }
        outBuf.append("cache-control: no-cache, max-age=0\r\n")
        if close { outBuf.append("connection: close\r\n") }
        outBuf.append("\r\n")
        if !isHeadRequest { r.body.withUnsafeBytes { outBuf.append($0) } }
        if let a = r.afterSent { afterFlush.append(a) }
        if close { closeWhenFlushed = true }
        phase = .head
        loop.arm(timer, afterMs: limits.idleTimeoutMs)
        flush()
        resume()
    }

    /// After a reply: go on with pipelined requests, and with reading if a full buffer had stopped it
    /// (edge-triggered: no new event would announce bytes already waiting).
    private func resume() {
        if isClosed || inProcess || isHandling { return }
        if readable && !peerDone && inBuf.count < maxBuffered {
            readLoop()
            return
        }
        process()
        if peerDone && !isClosed && !isHandling && outBuf.isEmpty { close() }
    }

    private func flush() {
        while !isClosed && writable && !outBuf.isEmpty {
            switch Socket.write(fd, outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed: close(); return
            }
        }
        guard !isClosed, outBuf.isEmpty else { return }
        if !afterFlush.isEmpty {
            let run = afterFlush
            afterFlush.removeAll()
            for a in run { a() }
        }
        if closeWhenFlushed {
            close()
            return
        }
        resume()
    }

    private func timedOut() {
        guard !isClosed else { return }
        if isHandling {
            loop.arm(timer, afterMs: limits.idleTimeoutMs)
            return
        }
        close()
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        loop.cancel(timer)
        loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
        // What was to follow a reply (/quitquitquit's drain) must not depend on the client reading it.
        let run = afterFlush
        afterFlush.removeAll()
        for a in run { a() }
        listener?.closed(self)
    }
}
