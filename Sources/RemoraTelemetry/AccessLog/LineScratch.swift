/// Scratch memory for composing access log lines, kept by each worker's buffer so that
/// formatting a line never allocates; it grows only for a longer line than any before.
final class LineScratch {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    /// At least `n` bytes, valid until the next call.
    @inline(__always) func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if n > capacity {
            base.deallocate()
            capacity = max(n, capacity * 2)
            base = .allocate(capacity: capacity)
        }
        return base
    }
}
