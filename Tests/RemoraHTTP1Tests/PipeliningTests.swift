import XCTest
@testable import RemoraHTTP1

/// Several messages back to back in one buffer are delimited by headBytes and the body decoder's
/// consumed count alone, as a keep-alive connection reads them.
final class PipeliningTests: XCTestCase {
    struct Message: Equatable { var method: String; var target: String; var body: [UInt8]; var trailers: [[UInt8]] }

    /// Reads every request in `wire`, decoding bodies with the given budget per call.
    func readAll(_ wire: [UInt8], maxData: Int) throws -> [Message] {
        var out: [Message] = []
        var offset = 0
        while offset < wire.count {
            var head = RequestHead()
            var scan = 0
            let r = wire[offset...].withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }
            guard r == .complete else { XCTFail("\(r) at \(offset)"); return out }
            let base = Array(wire[offset...])
            var msg = Message(method: text(base, head.method), target: text(base, head.target), body: [], trailers: [])
            XCTAssertTrue(head.keepAlive)
            offset += head.headBytes
            var dec = BodyDecoder(framing: head.framing)
            while !dec.isComplete {
                let n = try wire[offset...].withUnsafeBytes {
                    try dec.decode($0, maxData: maxData, onData: { msg.body += $0 }, onTrailers: { msg.trailers.append(Array($0)) })
                }
                XCTAssertGreaterThan(n, 0)
                if n == 0 { return out }
                offset += n
            }
            out.append(msg)
        }
        return out
    }

    static let wire = bytes(
        "GET /one HTTP/1.1\r\nHost: a\r\n\r\n" +
        "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world" +
        "PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n" +
        "\r\nGET /four HTTP/1.1\r\nHost: a\r\n\r\n")

    func testThreeAndMoreRequestsBackToBack() throws {
        let expected = [
            Message(method: "GET", target: "/one", body: [], trailers: []),
            Message(method: "POST", target: "/two", body: bytes("hello world"), trailers: []),
            Message(method: "PUT", target: "/three", body: bytes("Wikipedia"), trailers: [bytes("X-T: 1\r\n")]),
            Message(method: "GET", target: "/four", body: [], trailers: []),
        ]
        for maxData in [1, 3, 1 << 20] {
            XCTAssertEqual(try readAll(Self.wire, maxData: maxData), expected, "maxData \(maxData)")
        }
    }

    /// The same stream arriving in random pieces into one accumulating buffer, with scanFrom carried
    /// between calls, as the event loop would drive it.
    func testPipelinedStreamArrivingInPieces() throws {
        var rng = SeededRandom(seed: 3)
        for _ in 0..<50 {
            var buffer: [UInt8] = []
            var fed = 0
            var head = RequestHead()
            var scan = 0
            var dec: BodyDecoder? = nil
            var targets: [String] = []
            var bodies: [[UInt8]] = []
            var body: [UInt8] = []
            while fed < Self.wire.count || !buffer.isEmpty {
                let take = min(Int.random(in: 1...9, using: &rng), Self.wire.count - fed)
                buffer += Self.wire[fed..<fed + take]
                fed += take
                var progress = true
                while progress && !buffer.isEmpty {
                    progress = false
                    if var d = dec {
                        let n = try buffer.withUnsafeBytes {
                            try d.decode($0, maxData: Int.random(in: 1...4, using: &rng), onData: { body += $0 }, onTrailers: { _ in })
                        }
                        buffer.removeFirst(n)
                        progress = n > 0
                        if d.isComplete { bodies.append(body); body = []; dec = nil; progress = true } else { dec = d }
                    } else {
                        let r = buffer.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }
                        if r == .complete {
                            targets.append(text(buffer, head.target))
                            buffer.removeFirst(head.headBytes)
                            scan = 0
                            dec = BodyDecoder(framing: head.framing)
                            progress = true
                        } else {
                            XCTAssertEqual(r, .incomplete)
                        }
                    }
                }
                if fed == Self.wire.count && !progress { break }
            }
            if let d = dec, d.isComplete { bodies.append(body) }
            XCTAssertEqual(targets, ["/one", "/two", "/three", "/four"])
            XCTAssertEqual(bodies, [[], bytes("hello world"), bytes("Wikipedia"), []])
            XCTAssertTrue(buffer.isEmpty)
        }
    }

    func testResponsesBackToBack() throws {
        let wire = bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" +
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\n" +
                         "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n" +
                         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ng")
        var offset = 0
        var bodies: [String] = []
        while offset < wire.count {
            var head = ResponseHead()
            var scan = 0
            let r = wire[offset...].withUnsafeBytes {
                HTTP1Parser.parseResponseHead($0, into: &head, limits: HTTP1Limits(), requestMethod: .get, scanFrom: &scan)
            }
            XCTAssertEqual(r, .complete)
            XCTAssertTrue(head.keepAlive)
            offset += head.headBytes
            var dec = BodyDecoder(framing: head.framing)
            var body: [UInt8] = []
            while !dec.isComplete {
                let n = try wire[offset...].withUnsafeBytes { try dec.decode($0, maxData: 2, onData: { body += $0 }, onTrailers: { _ in }) }
                guard n > 0 else { XCTFail("stuck"); return }
                offset += n
            }
            bodies.append(String(decoding: body, as: UTF8.self))
        }
        XCTAssertEqual(bodies, ["abc", "def", "", "g"])
    }
}
