/// Request methods the proxy treats specially; everything else is `.other` and forwarded as sent.
public enum Method: UInt8, Sendable {
    case get, head, post, put, delete, connect, options, trace, patch, other

    /// Methods are case-sensitive (RFC 9110 §9.1), so "get" is `.other`.
    @inline(__always)
    static func recognise(_ p: UnsafePointer<UInt8>, _ len: Int) -> Method {
        switch len {
        case 3:
            if equalsExactly(p, 3, "GET") { return .get }
            if equalsExactly(p, 3, "PUT") { return .put }
        case 4:
            if equalsExactly(p, 4, "POST") { return .post }
            if equalsExactly(p, 4, "HEAD") { return .head }
        case 5:
            if equalsExactly(p, 5, "PATCH") { return .patch }
            if equalsExactly(p, 5, "TRACE") { return .trace }
        case 6:
            if equalsExactly(p, 6, "DELETE") { return .delete }
        case 7:
            if equalsExactly(p, 7, "CONNECT") { return .connect }
            if equalsExactly(p, 7, "OPTIONS") { return .options }
        default:
            break
        }
        return .other
    }
}
