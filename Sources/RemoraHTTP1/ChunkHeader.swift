extension HTTP1Parser {
    /// Writes "HEX\r\n" for a chunk of `size` bytes at `to` (needs at most 18 bytes), returns the length written.
    /// Lower-case hex, no leading zeros. A negative size (a caller bug) is written as its bit pattern rather than trapping.
    @inlinable
    public static func writeChunkHeader(size: Int, to: UnsafeMutableRawPointer) -> Int {
        let v = UInt64(bitPattern: Int64(size))
        // Number of hex digits: one per started nibble, at least one (for size 0).
        let digits = v == 0 ? 1 : (64 &- v.leadingZeroBitCount &+ 3) >> 2
        let out = to.assumingMemoryBound(to: UInt8.self)
        var k = digits
        var x = v
        while k > 0 {
            k &-= 1
            let d = UInt8(truncatingIfNeeded: x & 0xF)
            out[k] = d < 10 ? 0x30 &+ d : 0x57 &+ d   // '0'... or 'a'... (0x57 + 10 == 0x61)
            x >>= 4
        }
        out[digits] = 0x0D
        out[digits &+ 1] = 0x0A
        return digits &+ 2
    }
}
