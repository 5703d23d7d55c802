/// How the message body is delimited (RFC 9112 §6).
public enum BodyFraming: Equatable, Sendable {
    case none
    case contentLength(UInt64)
    case chunked
    /// Response read until the connection closes (no length, or a tunnel after CONNECT).
    case untilClose
}

/// Outcome of one call to a head parser.
public enum HeadParseResult: Equatable, Sendable {
    case incomplete
    case complete
    case error(HTTP1Error)
}
