#if canImport(Glibc)
import Glibc
#endif

/// `remora ctl`'s HTTP/1.1 client for the admin API: blocking, one connection per request
/// (`Connection: close`), Content-Length request bodies; responses framed by Content-Length,
/// chunked or end of connection. Plain HTTP only (the admin API listens on loopback).
struct CtlEndpoint: CustomStringConvertible {
    var host: String
    var port: Int
    /// Path prefix from the URL ("" or "/something"), put in front of every request path.
    var basePath: String

    /// "http://127.0.0.1:15000", "127.0.0.1:15000", "http://[::1]:15000/prefix", "localhost".
    init(url: String) throws(CtlFailure) {
        var rest = Substring(url)
        if let r = rest.range(of: "://") {
            let scheme = rest[..<r.lowerBound].lowercased()
            guard scheme == "http" else {
                throw CtlFailure.usage("--admin: only http:// URLs are supported, got '\(url)'")
            }
            rest = rest[r.upperBound...]
        }
        var authority = rest
        basePath = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            basePath = String(rest[slash...])
            while basePath.hasSuffix("/") { basePath.removeLast() }
        }
        var h = String(authority)
        var p = 80
        if h.hasPrefix("[") {
            guard let close = h.firstIndex(of: "]") else { throw CtlFailure.usage("--admin: bad address '\(url)'") }
            let after = h[h.index(after: close)...]
            if after.hasPrefix(":") {
                guard let n = Int(after.dropFirst()) else { throw CtlFailure.usage("--admin: bad port in '\(url)'") }
                p = n
            } else if !after.isEmpty {
                throw CtlFailure.usage("--admin: bad address '\(url)'")
            }
            h = String(h[h.index(after: h.startIndex)..<close])
        } else if let colon = h.lastIndex(of: ":") {
            guard let n = Int(h[h.index(after: colon)...]) else { throw CtlFailure.usage("--admin: bad port in '\(url)'") }
            p = n
            h = String(h[..<colon])
        }
        guard !h.isEmpty, (1...65535).contains(p) else { throw CtlFailure.usage("--admin: bad address '\(url)'") }
        host = h
        port = p
    }

    var hostHeader: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    var description: String { "http://\(hostHeader)\(basePath)" }
}

struct CtlResponse {
    var status: Int
    var reason: String
    /// Header names lowercased, in order.
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        let n = name.lowercased()
        return headers.first { $0.name == n }?.value
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The version in the ETag header: `"7"`, `W/"7"` or `7`.
    var etagVersion: Int? {
        guard var v = header("etag")?.ctlTrimmed else { return nil }
        if v.hasPrefix("W/") || v.hasPrefix("w/") { v.removeFirst(2) }
        if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
        return Int(v)
    }
}

struct CtlHTTPClient {
    var endpoint: CtlEndpoint
    var timeoutSeconds: Double

    /// One request. Throws `.connection` for anything below HTTP (refused, reset, timeout, a reply
    /// that is not HTTP); an HTTP error status is a normal response.
    func send(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil) throws(CtlFailure) -> CtlResponse {
        let target = endpoint.basePath + path
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: remora-ctl\r\nConnection: close\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" } else if method == "POST" || method == "PUT" { head += "Content-Length: 0\r\n" }
        head += "\r\n"
        var request = Array(head.utf8)
        if let body { request += body }

        let fd = try connect()
        defer { close(fd) }
        try writeAll(fd, request, what: "\(method) \(target)")
        return try readResponse(fd, method: method, what: "\(method) \(target)")
    }

    private func fail(_ what: String, _ err: Int32) -> CtlFailure {
        let reason = err == EAGAIN || err == EWOULDBLOCK || err == EINPROGRESS
            ? "timed out after \(CtlFormat.seconds(timeoutSeconds))" : String(cString: strerror(err))
        return .connection("admin API at \(endpoint): \(what): \(reason)")
    }

    private func connect() throws(CtlFailure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &res)
        guard rc == 0, let first = res else {
            throw CtlFailure.connection("admin API at \(endpoint): cannot resolve \(endpoint.host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        var lastError: Int32 = ECONNREFUSED
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            // On Linux SO_SNDTIMEO also bounds connect(); SO_RCVTIMEO bounds each read.
            var tv = timeval(tv_sec: Int(timeoutSeconds), tv_usec: Int((timeoutSeconds - Double(Int(timeoutSeconds))) * 1_000_000))
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var r: Int32
            repeat { r = Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) } while r < 0 && errno == EINTR
            if r == 0 { return fd }
            lastError = errno
            close(fd)
        }
        throw fail("cannot connect", lastError)
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws(CtlFailure) {
        var off = 0
        var err: Int32 = 0
        bytes.withUnsafeBytes { p in
            while off < p.count {
                let n = Glibc.send(fd, p.baseAddress! + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    err = errno
                    return
                }
                off += n
            }
        }
        if err != 0 { throw fail("sending \(what)", err) }
    }

    /// Reads and frames one response (1xx interim responses skipped).
    private func readResponse(_ fd: Int32, method: String, what: String) throws(CtlFailure) -> CtlResponse {
        var buf: [UInt8] = []
        var eof = false
        var chunk = [UInt8](repeating: 0, count: 65536)

        func fill() throws(CtlFailure) -> Bool {
            if eof { return false }
            var n: Int
            repeat { n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) } } while n < 0 && errno == EINTR
            if n < 0 { throw fail("reading the reply to \(what)", errno) }
            if n == 0 { eof = true; return false }
            buf += chunk[0..<n]
            return true
        }
        func malformed(_ why: String) -> CtlFailure {
            .connection("admin API at \(endpoint): malformed reply to \(what): \(why)")
        }

        while true {
            // head
            var headEnd: Int?
            while headEnd == nil {
                headEnd = CtlHTTPClient.find([13, 10, 13, 10], in: buf)
                if headEnd == nil {
                    if buf.count > 1 << 20 { throw malformed("header section too large") }
                    guard try fill() else {
                        throw buf.isEmpty ? CtlFailure.connection("admin API at \(endpoint): connection closed without a reply to \(what)")
                                          : malformed("connection closed inside the header section")
                    }
                }
            }
            let headText = String(decoding: buf[0..<headEnd!], as: UTF8.self)
            buf.removeFirst(headEnd! + 4)
            var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
            let statusLine = lines.isEmpty ? "" : lines.removeFirst()
            let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...999).contains(status) else {
                throw malformed("bad status line '\(statusLine.prefix(80))'")
            }
            var headers: [(name: String, value: String)] = []
            for line in lines where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { throw malformed("bad header line '\(line.prefix(80))'") }
                headers.append((String(line[..<colon]).lowercased().ctlTrimmed, String(line[line.index(after: colon)...]).ctlTrimmed))
            }
            var response = CtlResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [])
            if (100..<200).contains(status) && status != 101 { continue }
            if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) { return response }

            if let te = response.header("transfer-encoding"), te.lowercased().contains("chunked") {
                var body: [UInt8] = []
                while true {
                    var lineEnd = CtlHTTPClient.find([13, 10], in: buf)
                    while lineEnd == nil {
                        guard try fill() else { throw malformed("connection closed inside a chunked body") }
                        lineEnd = CtlHTTPClient.find([13, 10], in: buf)
                    }
                    let sizeText = String(decoding: buf[0..<lineEnd!], as: UTF8.self)
                    let sizeField = sizeText.split(separator: ";", maxSplits: 1).first.map(String.init)?.ctlTrimmed ?? ""
                    guard let size = Int(sizeField, radix: 16), size >= 0 else { throw malformed("bad chunk size '\(sizeText.prefix(40))'") }
                    buf.removeFirst(lineEnd! + 2)
                    if size == 0 { break }  // trailers, if any, are not needed
                    while buf.count < size + 2 {
                        guard try fill() else { throw malformed("connection closed inside a chunk") }
                    }
                    body += buf[0..<size]
                    buf.removeFirst(size + 2)
                }
                response.body = body
                return response
            }
            if let cl = response.header("content-length") {
                guard let n = Int(cl), n >= 0 else { throw malformed("bad Content-Length '\(cl)'") }
                while buf.count < n {
                    guard try fill() else { throw malformed("connection closed after \(buf.count) of \(n) body bytes") }
                }
                response.body = Array(buf[0..<n])
                return response
            }
            while try fill() {}
            response.body = buf
            return response
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = 0
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] {
                var ok = true
                for j in 1..<needle.count where hay[i + j] != needle[j] { ok = false; break }
                if ok { return i }
            }
            i += 1
        }
        return nil
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (no Foundation needed).
    var ctlTrimmed: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
