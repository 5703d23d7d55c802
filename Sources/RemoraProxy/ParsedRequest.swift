import RemoraHTTP1
import RemoraPolicy

/// The routing view of a parsed HTTP/1.1 request: strings are made only for what the
/// route table asks about.
struct ParsedRequest: RouteRequest {
    let head: RequestHead
    let buf: UnsafeRawBufferPointer
    let authorityRange: Range<Int>?
    let pathRange: Range<Int>
    let scheme: String
    let port: Int

    init(head: RequestHead, buf: UnsafeRawBufferPointer, scheme: String, port: Int) {
        self.head = head
        self.buf = buf
        self.scheme = scheme
        self.port = port
        // absolute-form "http://host/path": the authority comes from the target (RFC 9112 §3.2.2).
        let t = head.target
        if let (auth, path) = ParsedRequest.splitAbsolute(buf, t) {
            authorityRange = auth
            pathRange = path
        } else {
            authorityRange = head.hostIndex.map { head.headers[$0].value }
            pathRange = t
        }
    }

    private static func splitAbsolute(_ buf: UnsafeRawBufferPointer, _ t: Range<Int>) -> (Range<Int>, Range<Int>)? {
        guard t.count > 7, buf[t.lowerBound] != UInt8(ascii: "/") else { return nil }
        var i = t.lowerBound
        while i < t.upperBound, buf[i] != UInt8(ascii: ":") { i += 1 }
        guard i + 2 < t.upperBound, buf[i + 1] == UInt8(ascii: "/"), buf[i + 2] == UInt8(ascii: "/") else { return nil }
        let authStart = i + 3
        var j = authStart
        while j < t.upperBound, buf[j] != UInt8(ascii: "/"), buf[j] != UInt8(ascii: "?") { j += 1 }
        return (authStart..<j, j..<t.upperBound)
    }

    @inline(__always) func string(_ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: buf[r]), as: UTF8.self)
    }

    var authority: String { authorityRange.map(string) ?? "" }
    var path: String { pathRange.isEmpty ? "/" : string(pathRange) }
    var method: String { string(head.method) }

    /// `content-type: application/grpc…` (not grpc-web), checked on the bytes.
    var isGrpc: Bool {
        for h in head.headers where h.token == .contentType {
            let v = UnsafeRawBufferPointer(rebasing: buf[h.value])
            return v.starts(with: "application/grpc".utf8) && !v.starts(with: "application/grpc-web".utf8)
        }
        return false
    }

    func header(_ lowercasedName: String) -> String? {
        var result: String?
        var name = lowercasedName
        name.withUTF8 { n in
            for h in head.headers where h.name.count == n.count && ParsedRequest.equalsLowercased(buf, h.name, n) {
                let v = string(h.value)
                if result == nil { result = v } else { result! += (lowercasedName == "cookie" ? "; " : ",") + v }
            }
        }
        return result
    }

    private static func equalsLowercased(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>, _ lower: UnsafeBufferPointer<UInt8>) -> Bool {
        var k = 0
        for i in r {
            var c = buf[i]
            if c >= 65 && c <= 90 { c |= 0x20 }
            if c != lower[k] { return false }
            k += 1
        }
        return true
    }
}
