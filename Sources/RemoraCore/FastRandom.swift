/// A per-thread xorshift generator for load balancing and request ids: no locks,
/// no syscalls on the request path. Not for anything secret.
public struct FastRandom {
    private var state: UInt64

    public init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    public init() {
        var s = UInt64(0)
        var g = SystemRandomNumberGenerator()
        s = g.next()
        self.init(seed: s)
    }

    @inline(__always) public mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    @inline(__always) public mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next() >> 32) }
}
