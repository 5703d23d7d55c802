#if canImport(Glibc)
import Glibc
#endif

/// One received field: ranges into `H2HeaderView.bytes`.
public struct H2Field: Sendable {
    public var name: Range<Int>
    public var value: Range<Int>
    public init(name: Range<Int>, value: Range<Int>) {
        self.name = name
        self.value = value
    }
}

/// What a received header block is, from the role and the block's place in the stream.
/// Server: the first block of a stream is `.request`, a later one `.trailers`.
/// Client: `:status` 1xx is `.informational`, another `:status` `.response`, a block
/// without `:status` `.trailers`.
public enum H2HeadersKind: Sendable { case request, response, informational, trailers }

/// One received header block, valid only during the delegate call (copy what you keep).
public struct H2HeaderView {
    public let bytes: UnsafeRawBufferPointer
    /// Arrival order; pseudo-headers (":method", ":status", …) included as fields.
    public let fields: UnsafeBufferPointer<H2Field>
    /// The block exceeded maxHeaderListBytes or maxHeaders; `fields` is then empty.
    public let oversized: Bool

    public init(bytes: UnsafeRawBufferPointer, fields: UnsafeBufferPointer<H2Field>, oversized: Bool) {
        self.bytes = bytes
        self.fields = fields
        self.oversized = oversized
    }

    /// The value of the first field with this (lowercase) name.
    public func value(_ name: String) -> UnsafeRawBufferPointer? {
        var name = name
        return name.withUTF8 { n -> UnsafeRawBufferPointer? in
            for f in fields where f.name.count == n.count {
                if n.count == 0 || memcmp(bytes.baseAddress! + f.name.lowerBound, n.baseAddress!, n.count) == 0 {
                    return UnsafeRawBufferPointer(rebasing: bytes[f.value])
                }
            }
            return nil
        }
    }

    public func string(_ r: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[r]), as: UTF8.self)
    }
}
