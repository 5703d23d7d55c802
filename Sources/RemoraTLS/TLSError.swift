import COpenSSL

/// A TLS set-up or handshake failure, worded for the log: the file involved and
/// OpenSSL's reason. Never carries key material.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    public init(description: String) { self.description = description }
}

enum OpenSSLError {
    /// Every error queued on this thread, oldest first, joined; the queue is left empty,
    /// so a later failure (another connection's) never reports this one.
    static func drain() -> String {
        var parts: [String] = []
        var buf = [CChar](repeating: 0, count: 256)
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            ERR_error_string_n(e, &buf, buf.count)
            let s = String(cString: buf)
            if !parts.contains(s) { parts.append(s) }
        }
        ERR_clear_error()
        return parts.isEmpty ? "unknown OpenSSL error" : parts.joined(separator: "; ")
    }

    /// The reasons only ("certificate verify failed"), for per-connection messages.
    static func drainReasons() -> String {
        var parts: [String] = []
        while true {
            let e = ERR_get_error()
            if e == 0 { break }
            let s = ERR_reason_error_string(e).map { String(cString: $0) } ?? "error \(e)"
            if !parts.contains(s) { parts.append(s) }
        }
        ERR_clear_error()
        return parts.joined(separator: "; ")
    }
}
