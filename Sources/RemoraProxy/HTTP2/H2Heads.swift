import RemoraCore
import RemoraH2
import RemoraHTTP1

/// HTTP/2 header blocks as the heads the rest of the proxy works with (RequestHead,
/// ResponseHead: ranges into a buffer), so routing and the HTTP/1.1 writers need no
/// second code path.
enum H2Heads {
    private static let colon = UInt8(ascii: ":")

    /// Copies a request block into `store` and describes it in `head`: :method and :path
    /// give method and target, :authority becomes the Host field (RFC 9113 §8.3.1), split
    /// cookie fields are joined for HTTP/1.1 (§8.2.3), content-length or END_STREAM the
    /// framing (no length: chunked towards HTTP/1.1).
    static func request(_ view: H2HeaderView, endStream: Bool, store: ByteBuffer, into head: inout RequestHead) {
        store.clear()
        store.append(view.bytes)
        head = RequestHead()
        var authority: Range<Int>?
        var cookies = 0
        for f in view.fields {
            let name = UnsafeRawBufferPointer(rebasing: view.bytes[f.name])
            if name.first == colon {
                switch name.count {
                case 7 where equal(name, ":method"):
                    head.method = f.value
                    head.methodKind = Method.of(UnsafeRawBufferPointer(rebasing: view.bytes[f.value]))
                case 5 where equal(name, ":path"): head.target = f.value
                case 10 where equal(name, ":authority"): authority = f.value
                default: break
                }
                continue
            }
            let token = HeaderToken.of(name)
            if token == .host && authority != nil { continue }
            if token == .cookie { cookies += 1; if cookies > 1 { continue } }
            if token == .contentLength, let n = decimal(UnsafeRawBufferPointer(rebasing: view.bytes[f.value])) {
                head.framing = .contentLength(n)
            }
            if token == .host { head.hostIndex = head.headers.count }
            head.headers.append(HeaderField(name: f.name, value: f.value, token: token, hopByHop: token.isHopByHop))
        }
        if let a = authority {
            let start = store.count
            store.append("host")
            head.hostIndex = head.headers.count
            head.headers.append(HeaderField(name: start..<start + 4, value: a, token: .host, hopByHop: false))
        }
        if cookies > 1 { joinCookies(view, store: store, head: &head) }
        if case .contentLength = head.framing {} else { head.framing = endStream ? .none : .chunked }
        head.keepAlive = true
    }

    /// One "cookie" field with every value, "; "-separated, in place of the first.
    private static func joinCookies(_ view: H2HeaderView, store: ByteBuffer, head: inout RequestHead) {
        let start = store.count
        var first = true
        for f in view.fields where HeaderToken.of(UnsafeRawBufferPointer(rebasing: view.bytes[f.name])) == .cookie {
            if !first { store.append("; ") }
            store.append(UnsafeRawBufferPointer(rebasing: view.bytes[f.value]))
            first = false
        }
        if let i = head.headers.firstIndex(where: { $0.token == .cookie }) {
            head.headers[i].value = start..<store.count
        }
    }

    /// A response block (final status) as a ResponseHead over `view.bytes`.
    static func response(_ view: H2HeaderView, endStream: Bool, headRequest: Bool, into rh: inout ResponseHead) {
        rh.headers.removeAll(keepingCapacity: true)
        rh.status = 0
        rh.reason = 0..<0
        rh.framing = endStream ? .none : .chunked
        rh.keepAlive = true
        for f in view.fields {
            let name = UnsafeRawBufferPointer(rebasing: view.bytes[f.name])
            if name.first == colon {
                if equal(name, ":status") {
                    rh.status = Int(decimal(UnsafeRawBufferPointer(rebasing: view.bytes[f.value])) ?? 0)
                }
                continue
            }
            let token = HeaderToken.of(name)
            if token == .contentLength, !endStream, let n = decimal(UnsafeRawBufferPointer(rebasing: view.bytes[f.value])) {
                rh.framing = .contentLength(n)
            }
            rh.headers.append(HeaderField(name: f.name, value: f.value, token: token, hopByHop: token.isHopByHop))
        }
        // No body follows a HEAD request or a 204/304: the length, if any, passes as written.
        // Otherwise a response that ends with its headers (gRPC trailers-only) has length 0,
        // which HTTP/1.1 must be told (RFC 9112 §6.3: no length would mean "until close").
        if headRequest || rh.status == 204 || rh.status == 304 {
            rh.framing = .none
        } else if endStream {
            rh.framing = .contentLength(0)
        }
    }

    static func decimal(_ b: UnsafeRawBufferPointer) -> UInt64? {
        guard !b.isEmpty, b.count <= 19 else { return nil }
        var n: UInt64 = 0
        for c in b {
            guard c >= 48 && c <= 57 else { return nil }
            n = n * 10 + UInt64(c - 48)
        }
        return n
    }

    @inline(__always) static func equal(_ b: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard b.count == s.utf8CodeUnitCount else { return false }
        return memcmp(b.baseAddress!, s.utf8Start, b.count) == 0
    }
}

#if canImport(Glibc)
import Glibc
#endif
