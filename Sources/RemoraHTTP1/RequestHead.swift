/// A parsed request head. Meant to be kept per connection and reused: the header array keeps its capacity.
public struct RequestHead: Sendable {
    public var method: Range<Int>
    public var methodKind: Method
    /// request-target as sent.
    public var target: Range<Int>
    /// 0 or 1.
    public var minorVersion: UInt8
    /// The parser does removeAll(keepingCapacity: true) then appends.
    public var headers: [HeaderField]
    public var framing: BodyFraming
    /// HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
    public var keepAlive: Bool
    /// "Expect: 100-continue" (case-insensitive) in an HTTP/1.1 request (RFC 9110 §10.1.1: ignored in 1.0).
    public var expectContinue: Bool
    /// Upgrade header present AND Connection lists "upgrade", HTTP/1.1 only, never for CONNECT.
    public var upgrade: Bool
    /// Index in `headers` of the (single) Host header.
    public var hostIndex: Int?
    /// Bytes consumed by the head: leading empty lines, start line, header lines and the final empty line.
    public var headBytes: Int

    public init() {
        method = 0..<0
        methodKind = .other
        target = 0..<0
        minorVersion = 1
        headers = []
        framing = .none
        keepAlive = false
        expectContinue = false
        upgrade = false
        hostIndex = nil
        headBytes = 0
    }
}
