/// Fixed-size blocks reused by one thread's buffers, so an idle connection holds no
/// buffer memory and a busy one does not call malloc per read. Not thread-safe: one
/// per event loop.
public final class BufferPool {
    public let blockSize: Int
    private let maxFree: Int
    private var free: [UnsafeMutableRawPointer] = []

    public init(blockSize: Int = 16 * 1024, maxFree: Int = 1024) {
        self.blockSize = blockSize
        self.maxFree = maxFree
    }

    deinit { for p in free { p.deallocate() } }

    @inline(__always) func take() -> UnsafeMutableRawPointer {
        free.popLast() ?? UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
    }

    @inline(__always) func give(_ p: UnsafeMutableRawPointer) {
        if free.count < maxFree { free.append(p) } else { p.deallocate() }
    }

    public var freeBlocks: Int { free.count }
}
