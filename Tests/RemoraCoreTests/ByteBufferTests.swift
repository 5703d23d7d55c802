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
