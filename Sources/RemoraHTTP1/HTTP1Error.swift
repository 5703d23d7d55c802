/// A parse failure, already carrying the status the proxy should answer with.
///
/// Request errors use 400, 414, 431, 505; every response-head error is 502 (the upstream
/// is at fault). Body (chunked) errors are 400 and the caller maps them to 502 for responses.
public struct HTTP1Error: Error, Equatable, Sendable, CustomStringConvertible {
    public let status: Int
    /// Short, for logs. Built from literals only, so creating an error does not allocate.
    public let reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "HTTP/1.1 parse error \(status): \(reason)" }

    @inline(__always) static func bad(_ reason: String) -> HTTP1Error { HTTP1Error(status: 400, reason: reason) }
}
