import RemoraCore
import RemoraHTTP1

/// What `remora echo` answers to one request: the JSON description of the request,
/// or the test paths `/status/{code}`, `/delay/{ms}`, `/bytes/{n}` (SPEC §7).
struct EchoReply {
    let status: Int
    let delayMs: Int
    let streamBytes: Int?
    let keepAlive: Bool
    let isHead: Bool
    private let method: String
    private let path: String
    private let protocolName: String
    private let headers: [(String, String)]
    let name: String
    /// Served over TLS: the JSON says `"tls":true` (absent for plain HTTP).
    private let tls: Bool

    init(head: RequestHead, buf: UnsafeRawBufferPointer, options: EchoServer.Options, tls: Bool = false) {
        func str(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: buf[r]), as: UTF8.self) }
        self.init(method: str(head.method), path: str(head.target),
                  protocolName: head.minorVersion == 0 ? "HTTP/1.0" : "HTTP/1.1",
                  headers: head.headers.map { (str($0.name).lowercased(), str($0.value)) },
                  keepAlive: head.keepAlive, isHead: head.methodKind == .head, options: options, tls: tls)
    }

    /// The protocol-neutral form: HTTP/2 passes its regular fields (plus `host` from
    /// `:authority`) so both protocols describe a request the same way.
    init(method: String, path: String, protocolName: String, headers: [(String, String)],
         keepAlive: Bool, isHead: Bool, options: EchoServer.Options, tls: Bool = false) {
        self.tls = tls
        self.method = method
        self.path = path
        self.protocolName = protocolName
        self.headers = headers
        name = options.name
        self.keepAlive = keepAlive
        self.isHead = isHead
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        let parts = route.split(separator: "/", omittingEmptySubsequences: true)
        var status = options.status ?? 200
        var delay = 0
        var stream: Int?
        if parts.count == 2, let n = Int(parts[1]), n >= 0 {
            switch parts[0] {
            case "status" where n >= 100 && n <= 999: status = n
            case "delay": delay = min(n, 600_000)
            case "bytes": stream = n
            default: break
            }
        }
        self.status = status
        delayMs = delay
        streamBytes = stream
    }

    /// No body at all for this status (1xx, 204, 304).
    var noBody: Bool { status == 204 || status == 304 || status < 200 }

    /// Writes the head (and the JSON body); returns how many streamed body bytes follow.
    func write(into out: ByteBuffer, bodyBytes: Int) -> Int {
        out.append("HTTP/1.1 ")
        out.append(decimal: status)
        out.append(byte: UInt8(ascii: " "))
        out.append(HTTP1Parser.reasonPhrase(status))
        out.append("\r\nx-echo-name: ")
        out.append(name)
        out.append("\r\n")
        if !keepAlive { out.append("connection: close\r\n") }
        if let n = streamBytes, !noBody {
            out.append("content-type: application/octet-stream\r\ncontent-length: ")
            out.append(decimal: n)
            out.append("\r\n\r\n")
            return isHead ? 0 : n
        }
        if noBody {
            out.append("\r\n")
            return 0
        }
        let json = jsonBody(bodyBytes: bodyBytes)
        out.append("content-type: application/json\r\ncontent-length: ")
        out.append(decimal: json.utf8.count)
        out.append("\r\n\r\n")
        if !isHead { out.append(json) }
        return 0
    }

    func jsonBody(bodyBytes: Int) -> String {
        var s = "{\"name\":\(JSON.quote(name)),\"method\":\(JSON.quote(method)),\"path\":\(JSON.quote(path)),"
        s += "\"protocol\":\(JSON.quote(protocolName)),\"headers\":{"
        var merged: [(String, String)] = []
        for (k, v) in headers {
            if let i = merged.firstIndex(where: { $0.0 == k }) { merged[i].1 += ", " + v } else { merged.append((k, v)) }
        }
        s += merged.map { "\(JSON.quote($0.0)):\(JSON.quote($0.1))" }.joined(separator: ",")
        s += "},\"bodyBytes\":\(bodyBytes)"
        if tls { s += ",\"tls\":true" }
        s += "}"
        return s
    }
}

/// Minimal JSON string quoting (the echo server's only JSON need).
enum JSON {
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
