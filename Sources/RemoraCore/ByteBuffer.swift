/// A growable byte buffer with a read index and a write index over one allocation.
///
/// Bytes are consumed from the front; the space is reclaimed by compacting when a write
/// needs room at the tail. A buffer made with a `BufferPool` holds storage only while it
/// holds bytes: consuming its last byte gives the block back, and the next write takes
/// one again. That is what keeps an idle keep-alive connection at a few hundred bytes.
public final class ByteBuffer {
    public private(set) var base: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    public private(set) var readIndex = 0
    public private(set) var writeIndex = 0
    private let pool: BufferPool?
    private let initialCapacity: Int
    /// `base` is a block of `pool` (as opposed to an allocation of our own).
    private var pooled = false

    /// Stands in for storage while a buffer has none (never written to).
    private static let noStorage = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)

    /// A buffer that allocates `capacity` bytes at once.
    public init(capacity: Int = 16 * 1024) {
        let cap = max(capacity, 64)
        self.capacity = cap
        initialCapacity = cap
        pool = nil
        base = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
    }

    /// A buffer that takes storage from `pool` only while it holds bytes.
    public init(pool: BufferPool) {
        self.pool = pool
        initialCapacity = pool.blockSize
        capacity = 0
        base = ByteBuffer.noStorage
    }

    deinit { releaseStorage() }

    private func releaseStorage() {
        guard capacity > 0 else { return }
        if pooled, let pool { pool.give(base) } else { base.deallocate() }
        base = ByteBuffer.noStorage
        capacity = 0
        pooled = false
    }

    /// Gives storage back when empty, for pooled buffers.
    @inline(__always) private func emptied() {
        readIndex = 0
        writeIndex = 0
        if pool != nil { releaseStorage() }
    }

    @inline(__always) public var count: Int { writeIndex - readIndex }
    @inline(__always) public var isEmpty: Bool { writeIndex == readIndex }

    /// The unread bytes. Valid until the next mutation.
    @inline(__always) public var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex)
    }

    @inline(__always) public func consume(_ n: Int) {
        precondition(n >= 0 && n <= count)
        readIndex += n
        if readIndex == writeIndex { emptied() }
    }

    public func clear() { emptied() }

    /// Free space at the tail after compacting, without growing.
    public var tailSpace: Int { capacity - writeIndex }

    /// Makes at least `n` bytes writable at the tail (compacting first, growing if needed)
    /// and returns the tail pointer; call `commit` with what was written.
    public func reserve(_ n: Int) -> UnsafeMutableRawPointer {
        if capacity - writeIndex < n {
            if capacity == 0 {
                if let pool, n <= pool.blockSize {
                    base = pool.take()
                    capacity = pool.blockSize
                    pooled = true
                } else {
                    var cap = initialCapacity
                    while cap < n { cap *= 2 }
                    base = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
                    capacity = cap
                }
                return base + writeIndex
            }
            if readIndex > 0 {
                let live = count
                if live > 0 { base.copyMemory(from: base + readIndex, byteCount: live) }
                readIndex = 0
                writeIndex = live
            }
            if capacity - writeIndex < n {
                var newCap = capacity * 2
                while newCap - writeIndex < n { newCap *= 2 }
                let nb = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
                if writeIndex > 0 { nb.copyMemory(from: base, byteCount: writeIndex) }
                if pooled, let pool { pool.give(base) } else { base.deallocate() }
                pooled = false
                base = nb
                capacity = newCap
            }
        }
        return base + writeIndex
    }

    /// Compacts so that the tail has all the free space, without growing.
    public func compact() {
        guard readIndex > 0 else { return }
        let live = count
        if live > 0 { base.copyMemory(from: base + readIndex, byteCount: live) }
        readIndex = 0
        writeIndex = live
    }

    @inline(__always) public func commit(_ n: Int) {
        precondition(n >= 0 && writeIndex + n <= capacity)
        writeIndex += n
    }

    /// Shrinks back to `capacity` bytes when empty and grown beyond it (a big head once
    /// must not pin memory for the connection's life). Pooled buffers need not: they hold
    /// nothing when empty.
    public func shrinkIfEmpty(to cap: Int) {
        guard isEmpty, capacity > cap, pool == nil else { return }
        base.deallocate()
        base = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
        capacity = cap
        readIndex = 0
        writeIndex = 0
    }

    @inline(__always) public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let p = reserve(bytes.count)
        p.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writeIndex += bytes.count
    }

    @inline(__always) public func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public func append(_ s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) public func append(byte: UInt8) {
        let p = reserve(1)
        p.storeBytes(of: byte, as: UInt8.self)
        writeIndex += 1
    }

    /// Appends a non-negative decimal integer without building a String.
    public func append(decimal v: Int) {
        var v = v
        if v < 0 { append(byte: UInt8(ascii: "-")); v = -v }
        let p = reserve(20)
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let n = withUnsafeMutableBytes(of: &tmp) { t -> Int in
            var i = 0
            repeat {
                t[i] = UInt8(48 + v % 10)
                v /= 10
                i += 1
            } while v > 0
            for j in 0..<i { p.storeBytes(of: t[i - 1 - j], toByteOffset: j, as: UInt8.self) }
            return i
        }
        writeIndex += n
    }

    /// A copy of the readable bytes (tests and logs only).
    public var bytes: [UInt8] { Array(readable) }
}
