/// One header line, as offsets into the caller's buffer (no copies, no Strings).
public struct HeaderField: Sendable {
    /// Byte offsets into the buffer given to the parser.
    public var name: Range<Int>
    /// Leading/trailing OWS (SP/HTAB) trimmed.
    public var value: Range<Int>
    public var token: HeaderToken
    /// Must not be forwarded: a hop-by-hop header by definition, or named in a Connection header.
    public var hopByHop: Bool

    @inline(__always)
    public init(name: Range<Int>, value: Range<Int>, token: HeaderToken, hopByHop: Bool) {
        self.name = name
        self.value = value
        self.token = token
        self.hopByHop = hopByHop
    }
}
