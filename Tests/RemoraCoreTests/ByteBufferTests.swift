import XCTest
@testable import RemoraCore

final class ByteBufferTests: XCTestCase {
    func testAppendConsumeAndCompact() {
        let b = ByteBuffer(capacity: 64)
        b.append("hello ")
        b.append("world")
        XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), "hello world")
        b.consume(6)
        XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), "world")
        // Needs compaction (read index at 6) but not growth.
        let before = b.capacity
        _ = b.reserve(before - 5)
        XCTAssertEqual(b.capacity, before)
        XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), "world")
    }

    func testGrowsKeepingContent() {
        let b = ByteBuffer(capacity: 64)
        let chunk = [UInt8](repeating: 7, count: 1000)
        for _ in 0..<10 { chunk.withUnsafeBytes { b.append($0) } }
        XCTAssertEqual(b.count, 10_000)
        XCTAssertGreaterThanOrEqual(b.capacity, 10_000)
        XCTAssertTrue(b.bytes.allSatisfy { $0 == 7 })
    }

    func testConsumingEverythingResetsIndices() {
        let b = ByteBuffer(capacity: 64)
        b.append("abc")
        b.consume(3)
        XCTAssertTrue(b.isEmpty)
        XCTAssertEqual(b.readIndex, 0)
        XCTAssertEqual(b.writeIndex, 0)
    }

    func testDecimal() {
        let b = ByteBuffer()
        for v in [0, 7, 10, 404, 1_048_576, Int(Int32.max), -12] {
            b.clear()
            b.append(decimal: v)
            XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), String(v))
        }
    }

    func testShrinkIfEmpty() {
        let b = ByteBuffer(capacity: 64)
        _ = b.reserve(100_000)
        XCTAssertGreaterThan(b.capacity, 64)
        b.shrinkIfEmpty(to: 64)
        XCTAssertEqual(b.capacity, 64)
        b.append("x")
        b.shrinkIfEmpty(to: 32)   // not empty: untouched
        XCTAssertEqual(b.capacity, 64)
    }

    func testFastRandomIsNotConstant() {
        var r = FastRandom(seed: 42)
        let values = (0..<100).map { _ in r.next() }
        XCTAssertEqual(Set(values).count, 100)
    }
}

final class PooledByteBufferTests: XCTestCase {
    func testHoldsStorageOnlyWhileItHoldsBytes() {
        let pool = BufferPool(blockSize: 1024, maxFree: 8)
        let b = ByteBuffer(pool: pool)
        XCTAssertEqual(b.capacity, 0, "a new pooled buffer holds nothing")
        b.append("hello")
        XCTAssertEqual(b.capacity, 1024)
        b.consume(2)
        XCTAssertEqual(b.capacity, 1024, "still holds bytes")
        b.consume(3)
        XCTAssertEqual(b.capacity, 0, "emptied: the block went back")
        XCTAssertEqual(pool.freeBlocks, 1)
        b.append("again")
        XCTAssertEqual(pool.freeBlocks, 0, "the block was reused, not allocated anew")
        XCTAssertEqual(String(decoding: b.bytes, as: UTF8.self), "again")
        b.clear()
        XCTAssertEqual(pool.freeBlocks, 1)
    }

    func testGrowingBeyondABlockKeepsContentAndReturnsTheBlock() {
        let pool = BufferPool(blockSize: 64, maxFree: 8)
        let b = ByteBuffer(pool: pool)
        let data = (0..<500).map { UInt8($0 % 251) }
        for chunk in stride(from: 0, to: data.count, by: 50) {
            data[chunk..<min(chunk + 50, data.count)].withUnsafeBytes { b.append($0) }
        }
        XCTAssertEqual(b.bytes, data)
        XCTAssertEqual(pool.freeBlocks, 1, "the outgrown block went back to the pool")
        b.consume(500)
        XCTAssertEqual(b.capacity, 0)
        XCTAssertEqual(pool.freeBlocks, 1, "an own allocation is freed, not pooled")
    }

    func testAReserveLargerThanABlockAllocatesItsOwn() {
        let pool = BufferPool(blockSize: 64, maxFree: 8)
        let b = ByteBuffer(pool: pool)
        _ = b.reserve(1000)
        XCTAssertGreaterThanOrEqual(b.capacity, 1000)
        XCTAssertEqual(pool.freeBlocks, 0)
    }

    func testPoolKeepsAtMostMaxFree() {
        let pool = BufferPool(blockSize: 64, maxFree: 2)
        let buffers = (0..<5).map { _ in ByteBuffer(pool: pool) }
        for b in buffers { b.append("x") }
        for b in buffers { b.clear() }
        XCTAssertEqual(pool.freeBlocks, 2)
    }
}
