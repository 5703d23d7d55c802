import XCTest
@testable import RemoraHTTP1

final class BodyDecoderTests: XCTestCase {
    func testNoneAndZeroLengthAreCompleteAtOnce() {
        XCTAssertTrue(BodyDecoder(framing: .none).isComplete)
        XCTAssertTrue(BodyDecoder(framing: .contentLength(0)).isComplete)
        XCTAssertFalse(BodyDecoder(framing: .contentLength(1)).isComplete)
        XCTAssertFalse(BodyDecoder(framing: .chunked).isComplete)
        XCTAssertFalse(BodyDecoder(framing: .untilClose).isComplete)
        // Nothing is consumed once complete: the bytes belong to the next message.
        let d = decodeBody(bytes("GET / HTTP/1.1\r\n"), framing: .none)
        XCTAssertEqual(d.consumed, 0)
        XCTAssertTrue(d.complete)
    }

    func testContentLengthStopsAtTheLengthWhateverTheSplitAndBudget() {
        let body = bytes(String(repeating: "0123456789", count: 50))
        let wire = body + bytes("NEXT REQUEST")
        var rng = SeededRandom(seed: 1)
        for maxData in [1, 2, 3, 7, 64, 499, 500, 501, Int.max] {
            for _ in 0..<10 {
                let arrivals = (0..<20).map { _ in Int.random(in: 0...40, using: &rng) }
                let d = decodeBody(wire, framing: .contentLength(500), arrivals: arrivals, maxData: maxData)
                XCTAssertNil(d.error)
                XCTAssertEqual(d.data, body)
                XCTAssertEqual(d.consumed, 500)
                XCTAssertTrue(d.complete)
                XCTAssertEqual(d.trailers, [])
            }
        }
    }

    func testContentLengthIncomplete() {
        let d = decodeBody(bytes("abc"), framing: .contentLength(10))
        XCTAssertEqual(d.data, bytes("abc"))
        XCTAssertFalse(d.complete)
        var dec = BodyDecoder(framing: .contentLength(10))
        XCTAssertFalse(dec.finishAtEOF(), "a close before Content-Length bytes is a truncated body")
    }

    func testUntilCloseTakesEverythingAndEndsAtEOF() {
        let wire = bytes(String(repeating: "x", count: 1000))
        let d = decodeBody(wire, framing: .untilClose, arrivals: [1, 10, 100], maxData: 33)
        XCTAssertEqual(d.data, wire)
        XCTAssertEqual(d.consumed, 1000)
        XCTAssertFalse(d.complete)
        var dec = BodyDecoder(framing: .untilClose)
        XCTAssertTrue(dec.finishAtEOF())
        XCTAssertTrue(dec.isComplete)
    }

    func testMaxDataIsRespected() throws {
        var dec = BodyDecoder(framing: .chunked)
        let wire = chunked(["hello", "world!"])
        var got: [UInt8] = []
        let n = try wire.withUnsafeBytes { try dec.decode($0, maxData: 3, onData: { got += $0 }, onTrailers: { _ in }) }
        XCTAssertEqual(got, bytes("hel"))
        XCTAssertEqual(n, 3 + 3, "size line and three data bytes")
        let zero = try wire[n...].withUnsafeBytes { try dec.decode($0, maxData: 0, onData: { got += $0 }, onTrailers: { _ in }) }
        XCTAssertEqual(zero, 0, "no budget, no data")
    }

    func testChunkedAcrossArbitrarySplitsAndBudgets() {
        let pieces = ["a", "hello world", String(repeating: "z", count: 300), "\r\n\r\n", "0", "end"]
        let expected = bytes(pieces.joined())
        let trailer = "X-Checksum: abc\r\nX-Other:\tv \r\n"
        let wire = chunked(pieces, trailers: trailer)
        let extra = bytes("GET /next HTTP/1.1\r\n")
        var rng = SeededRandom(seed: 2)
        for maxData in [1, 2, 5, 16, 1000] {
            for _ in 0..<30 {
                let arrivals = (0..<30).map { _ in Int.random(in: 0...25, using: &rng) }
                let d = decodeBody(wire + extra, framing: .chunked, arrivals: arrivals, maxData: maxData)
                XCTAssertNil(d.error)
                XCTAssertEqual(d.data, expected)
                XCTAssertEqual(d.trailers, [bytes(trailer)])
                XCTAssertEqual(d.consumed, wire.count)
                XCTAssertTrue(d.complete)
            }
        }
    }

    func testChunkedByteAtATime() {
        let wire = chunked(["hello", "", "world"], trailers: "T: 1\r\n")
        let d = decodeBody(wire, framing: .chunked, arrivals: Array(repeating: 1, count: wire.count), maxData: 1)
        XCTAssertNil(d.error)
        XCTAssertEqual(d.data, bytes("helloworld"))
        XCTAssertEqual(d.trailers, [bytes("T: 1\r\n")])
        XCTAssertEqual(d.consumed, wire.count)
        XCTAssertTrue(d.complete)
    }

    func testEmptyTrailerSectionIsDeliveredOnce() {
        let d = decodeBody(bytes("0\r\n\r\n"), framing: .chunked)
        XCTAssertEqual(d.trailers, [[]])
        XCTAssertTrue(d.complete)
        XCTAssertEqual(d.consumed, 5)
        XCTAssertEqual(d.data, [])
    }

    func testIncompleteFramingIsLeftUnconsumed() throws {
        var dec = BodyDecoder(framing: .chunked)
        var n = try bytes("1f").withUnsafeBytes { try dec.decode($0, maxData: 100, onData: { _ in XCTFail() }, onTrailers: { _ in XCTFail() }) }
        XCTAssertEqual(n, 0, "partial size line")
        var trailersSeen = 0
        var dec1 = BodyDecoder(framing: .chunked)
        n = try bytes("0\r\nX: a\r\n").withUnsafeBytes { try dec1.decodeOnce($0) }
        XCTAssertEqual(n, 3, "last-chunk consumed, partial trailer section left")
        var dec2 = BodyDecoder(framing: .chunked)
        n = try bytes("0\r\nX: a\r\n").withUnsafeBytes { try dec2.decode($0, maxData: 1, onData: { _ in }, onTrailers: { _ in trailersSeen += 1 }) }
        XCTAssertEqual(n, 3)
        n = try bytes("X: a\r\n\r\nrest").withUnsafeBytes { try dec2.decode($0, maxData: 1, onData: { _ in }, onTrailers: { t in
            XCTAssertEqual(Array(t), bytes("X: a\r\n"))
            trailersSeen += 1
        }) }
        XCTAssertEqual(n, 8)
        XCTAssertEqual(trailersSeen, 1)
        XCTAssertTrue(dec2.isComplete)
        XCTAssertTrue(dec2.finishAtEOF())
    }

    func testChunkedEOFBeforeTheEndIsNotLegitimate() throws {
        var dec = BodyDecoder(framing: .chunked)
        _ = try bytes("5\r\nhello\r\n").withUnsafeBytes { try dec.decode($0, maxData: 100, onData: { _ in }, onTrailers: { _ in }) }
        XCTAssertFalse(dec.finishAtEOF())
    }

    func testHugeChunkSizeStreamsWithoutTrapping() throws {
        var dec = BodyDecoder(framing: .chunked)
        var got = 0
        let n = try bytes("ffffffffffffffff\r\nabcdef").withUnsafeBytes {
            try dec.decode($0, maxData: Int.max, onData: { got += $0.count }, onTrailers: { _ in })
        }
        XCTAssertEqual(n, 24)
        XCTAssertEqual(got, 6)
        XCTAssertFalse(dec.isComplete)
    }

    func testErrorsAreFinal() throws {
        var dec = BodyDecoder(framing: .chunked)
        XCTAssertThrowsError(try bytes("zz\r\n").withUnsafeBytes { try dec.decode($0, maxData: 10, onData: { _ in }, onTrailers: { _ in }) }) {
            XCTAssertEqual(($0 as? HTTP1Error)?.status, 400)
        }
        XCTAssertThrowsError(try bytes("0\r\n\r\n").withUnsafeBytes { try dec.decode($0, maxData: 10, onData: { _ in }, onTrailers: { _ in }) })
        XCTAssertFalse(dec.finishAtEOF())
    }

    func testTrailerLimits() {
        let limits = HTTP1Limits(maxHeadBytes: 64, maxHeaders: 2)
        let fine = decodeBody(bytes("0\r\nA: 1\r\nB: 2\r\n\r\n"), framing: .chunked, limits: limits)
        XCTAssertNil(fine.error)
        XCTAssertEqual(fine.trailers, [bytes("A: 1\r\nB: 2\r\n")])
        let many = decodeBody(bytes("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), framing: .chunked, limits: limits)
        XCTAssertEqual(many.error?.status, 400)
        let big = "0\r\nA: \(String(repeating: "x", count: 100))\r\n\r\n"
        XCTAssertEqual(decodeBody(bytes(big), framing: .chunked, limits: limits).error?.status, 400)
        // Arriving slowly, the size limit is noticed before the section ends.
        XCTAssertEqual(decodeBody(bytes(big), framing: .chunked, arrivals: Array(repeating: 3, count: 200), limits: limits).error?.status, 400)
    }

    /// A trailer section arriving one byte at a time is rescanned from a resume point, not from its start.
    func testSlowTrailersAreLinear() {
        let big = "0\r\nA: \(String(repeating: "x", count: 55_000))\r\n\r\n"
        let start = ContinuousClock.now
        let d = decodeBody(bytes(big), framing: .chunked, arrivals: Array(repeating: 1, count: big.utf8.count))
        XCTAssertNil(d.error)
        XCTAssertTrue(d.complete)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(3))
    }
}

extension BodyDecoder {
    /// One decode call with a generous budget, for tests that only care about the consumed count.
    mutating func decodeOnce(_ input: UnsafeRawBufferPointer) throws -> Int {
        try decode(input, maxData: 1 << 20, onData: { _ in }, onTrailers: { _ in })
    }
}
