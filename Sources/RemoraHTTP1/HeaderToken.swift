/// Well-known header names, recognised case-insensitively during parsing, so the proxy compares integers.
public enum HeaderToken: UInt8, Sendable {
    case other, host, contentLength, transferEncoding, connection, keepAlive, proxyConnection,
         te, trailer, upgrade, expect, xRequestId, xForwardedFor, xForwardedProto, cookie,
         proxyAuthenticate, proxyAuthorization, date, server, contentType

    /// Hop-by-hop by definition (RFC 9110 §7.6.1, plus the proxy-auth pair and Proxy-Connection):
    /// never forwarded, whatever Connection says.
    @inlinable
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade,
             .proxyAuthenticate, .proxyAuthorization:
            return true
        default:
            return false
        }
    }

    /// Recognises a header name, which must already be validated as tchar+ (the parser guarantees it).
    /// Dispatches on the length, then compares whole words with the ASCII case bit forced on: for tchar
    /// bytes, `b | 0x20` equals a lower-case letter or '-' only if `b` is that letter in either case or '-'.
    /// Loads overlap rather than read past the name.
    @inline(__always)
    static func recognise(_ p: UnsafePointer<UInt8>, _ len: Int) -> HeaderToken {
        switch len {
        case 2:
            let w0 = load16(p, 0) | 0x2020
            if w0 == 0x6574 { return .te }   // "te"
        case 4:
            let w0 = load32(p, 0) | 0x2020_2020
            if w0 == 0x7473_6f68 { return .host }   // "host"
            if w0 == 0x6574_6164 { return .date }   // "date"
        case 6:
            let w0 = load32(p, 0) | 0x2020_2020
            let w1 = load16(p, 4) | 0x2020
            if w0 == 0x6b6f_6f63 && w1 == 0x6569 { return .cookie }   // "cookie"
            if w0 == 0x6570_7865 && w1 == 0x7463 { return .expect }   // "expect"
            if w0 == 0x7672_6573 && w1 == 0x7265 { return .server }   // "server"
        case 7:
            let w0 = load32(p, 0) | 0x2020_2020
            let w1 = load32(p, 3) | 0x2020_2020
            if w0 == 0x7267_7075 && w1 == 0x6564_6172 { return .upgrade }   // "upgrade"
            if w0 == 0x6961_7274 && w1 == 0x7265_6c69 { return .trailer }   // "trailer"
        case 10:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 2) | 0x2020_2020_2020_2020
            if w0 == 0x6974_6365_6e6e_6f63 && w1 == 0x6e6f_6974_6365_6e6e { return .connection }   // "connection"
            if w0 == 0x696c_612d_7065_656b && w1 == 0x6576_696c_612d_7065 { return .keepAlive }   // "keep-alive"
        case 12:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 4) | 0x2020_2020_2020_2020
            if w0 == 0x2d74_6e65_746e_6f63 && w1 == 0x6570_7974_2d74_6e65 { return .contentType }   // "content-type"
            if w0 == 0x7365_7571_6572_2d78 && w1 == 0x6469_2d74_7365_7571 { return .xRequestId }   // "x-request-id"
        case 14:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 6) | 0x2020_2020_2020_2020
            if w0 == 0x2d74_6e65_746e_6f63 && w1 == 0x6874_676e_656c_2d74 { return .contentLength }   // "content-length"
        case 15:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 7) | 0x2020_2020_2020_2020
            if w0 == 0x7261_7772_6f66_2d78 && w1 == 0x726f_662d_6465_6472 { return .xForwardedFor }   // "x-forwarded-for"
        case 16:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 8) | 0x2020_2020_2020_2020
            if w0 == 0x6f63_2d79_786f_7270 && w1 == 0x6e6f_6974_6365_6e6e { return .proxyConnection }   // "proxy-connection"
        case 17:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 8) | 0x2020_2020_2020_2020
            let w2 = load64(p, 9) | 0x2020_2020_2020_2020
            if w0 == 0x7265_6673_6e61_7274 && w1 == 0x6e69_646f_636e_652d && w2 == 0x676e_6964_6f63_6e65 { return .transferEncoding }   // "transfer-encoding"
            if w0 == 0x7261_7772_6f66_2d78 && w1 == 0x746f_7270_2d64_6564 && w2 == 0x6f74_6f72_702d_6465 { return .xForwardedProto }   // "x-forwarded-proto"
        case 18:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 8) | 0x2020_2020_2020_2020
            let w2 = load64(p, 10) | 0x2020_2020_2020_2020
            if w0 == 0x7561_2d79_786f_7270 && w1 == 0x6163_6974_6e65_6874 && w2 == 0x6574_6163_6974_6e65 { return .proxyAuthenticate }   // "proxy-authenticate"
        case 19:
            let w0 = load64(p, 0) | 0x2020_2020_2020_2020
            let w1 = load64(p, 8) | 0x2020_2020_2020_2020
            let w2 = load64(p, 11) | 0x2020_2020_2020_2020
            if w0 == 0x7561_2d79_786f_7270 && w1 == 0x7461_7a69_726f_6874 && w2 == 0x6e6f_6974_617a_6972 { return .proxyAuthorization }   // "proxy-authorization"
        default:
            break
        }
        return .other
    }
}

@inline(__always) func load16(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt16 {
    UnsafeRawPointer(p + i).loadUnaligned(as: UInt16.self).littleEndian
}
@inline(__always) func load32(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt32 {
    UnsafeRawPointer(p + i).loadUnaligned(as: UInt32.self).littleEndian
}
@inline(__always) func load64(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt64 {
    UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self).littleEndian
}
