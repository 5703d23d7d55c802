/// Bounds on what the parser accepts, so a peer cannot make the proxy buffer or scan without limit.
public struct HTTP1Limits: Sendable {
    /// Start line + all header lines + CRLFs (and leading empty lines); also bounds a chunked trailer section.
    public var maxHeadBytes: Int
    /// Header fields in one head; also bounds the lines of a trailer section.
    public var maxHeaders: Int
    /// Request line without its CRLF; longer -> 414. Checked before `maxHeadBytes` so a huge URI gets 414, not 431.
    public var maxRequestLineBytes: Int = 8 * 1024

    public init(maxHeadBytes: Int = 60 * 1024, maxHeaders: Int = 100) {
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaders = maxHeaders
    }
}
