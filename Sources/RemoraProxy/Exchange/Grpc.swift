import RemoraCore
import RemoraHTTP1
import RemoraPolicy

/// gRPC over the proxy: recognising gRPC requests, their deadline, and the status a
/// proxy-generated error carries for them (SPEC §6).
enum Grpc {
    /// A field of a response head by lowercase name (grpc-status of a trailers-only reply).
    static func field(_ name: String, _ rh: ResponseHead, _ buf: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        for h in rh.headers where h.name.count == name.utf8.count {
            let n = UnsafeRawBufferPointer(rebasing: buf[h.name])
            if zip(n, name.utf8).allSatisfy({ $0 | 0x20 == $1 }) { return UnsafeRawBufferPointer(rebasing: buf[h.value]) }
        }
        return nil
    }

    /// The client's `grpc-timeout` in milliseconds ("100m", "5S", "1H", …; at most 8 digits).
    static func timeoutMs<R: RouteRequest>(_ req: R) -> Int? {
        guard let v = req.header("grpc-timeout") else { return nil }
        return parseTimeout(v)
    }

    static func parseTimeout(_ v: String) -> Int? {
        let u = Array(v.utf8)
        guard u.count >= 2, u.count <= 9, let unit = u.last else { return nil }
        var n = 0
        for c in u.dropLast() {
            guard c >= 48 && c <= 57 else { return nil }
            n = n * 10 + Int(c - 48)
        }
        switch unit {
        case UInt8(ascii: "H"): return n * 3_600_000
        case UInt8(ascii: "M"): return n * 60_000
        case UInt8(ascii: "S"): return n * 1_000
        case UInt8(ascii: "m"): return n
        case UInt8(ascii: "u"): return (n + 999) / 1_000
        case UInt8(ascii: "n"): return (n + 999_999) / 1_000_000
        default: return nil
        }
    }

    /// Envoy's mapping of its local replies: no route is UNIMPLEMENTED, a timeout
    /// DEADLINE_EXCEEDED, everything an upstream failure causes UNAVAILABLE.
    static func status(for reply: LocalReply) -> Int {
        switch reply.status {
        case 404: return 12
        case 504: return 4
        case 400: return 13
        default: return 14
        }
    }

    /// grpc-message is percent-encoded outside printable ASCII (and "%" itself).
    static func encodeMessage(_ s: StaticString) -> String {
        var out = ""
        s.withUTF8Buffer { b in
            for c in b {
                if c >= 0x20 && c <= 0x7e && c != UInt8(ascii: "%") {
                    out.unicodeScalars.append(Unicode.Scalar(c))
                } else {
                    out += "%" + String(c, radix: 16, uppercase: true).leftPadded(to: 2)
                }
            }
        }
        return out
    }

    /// The trailers-only reply's fields for a local reply.
    static func replyFields(_ reply: LocalReply) -> [(String, String)] {
        [("content-type", "application/grpc"), ("grpc-status", String(status(for: reply))),
         ("grpc-message", encodeMessage(reply.body.utf8CodeUnitCount > 0 ? reply.body : reply.flag))]
    }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
