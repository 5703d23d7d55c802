/// A parsed response head. Meant to be kept per upstream connection and reused.
public struct ResponseHead: Sendable {
    public var status: Int
    /// Reason phrase as sent (possibly empty).
    public var reason: Range<Int>
    public var minorVersion: UInt8
    public var headers: [HeaderField]
    public var framing: BodyFraming
    /// False whenever the body is delimited by close, or the peer asked to close.
    public var keepAlive: Bool
    /// Bytes consumed by the status line, header lines and the final empty line.
    public var headBytes: Int

    public init() {
        status = 0
        reason = 0..<0
        minorVersion = 1
        headers = []
        framing = .none
        keepAlive = false
        headBytes = 0
    }
}
