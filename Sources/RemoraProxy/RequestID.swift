import RemoraCore

/// Writes a random UUID v4 (36 bytes, lowercase) for `x-request-id`, straight into a
/// buffer, from the worker's own generator: no allocation, no syscall.
enum RequestID {
    static let length = 36
    private static let hex: StaticString = "0123456789abcdef"

    /// The same as a String (for a request id shared with mirrors).
    static func string(random: inout FastRandom) -> String {
        let b = ByteBuffer(capacity: 64)
        write(into: b, random: &random)
        return String(decoding: b.readable, as: UTF8.self)
    }

    static func write(into out: ByteBuffer, random: inout FastRandom) {
        var hi = random.next()
        var lo = random.next()
        hi = (hi & ~0xF000) | 0x4000                           // version 4
        lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000 // variant 10
        let p = out.reserve(length)
        let digits = hex.utf8Start
        var pos = 0
        func put(_ v: UInt64, _ nibbles: Int) {
            for i in stride(from: nibbles - 1, through: 0, by: -1) {
                p.storeBytes(of: digits[Int((v >> (UInt64(i) * 4)) & 0xF)], toByteOffset: pos, as: UInt8.self)
                pos += 1
            }
        }
        func dash() { p.storeBytes(of: UInt8(ascii: "-"), toByteOffset: pos, as: UInt8.self); pos += 1 }
        put(hi >> 32, 8); dash()
        put((hi >> 16) & 0xFFFF, 4); dash()
        put(hi & 0xFFFF, 4); dash()
        put(lo >> 48, 4); dash()
        put(lo & 0xFFFF_FFFF_FFFF, 12)
        out.commit(length)
    }
}
