import XCTest
@testable import RemoraHTTP1

final class ResponseParserTests: XCTestCase {
    static let examples: [(String, Method)] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi", .get),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nServer: x\r\n\r\n2\r\nhi\r\n0\r\n\r\n", .get),
        ("HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n", .delete),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", .get),
        ("HTTP/1.0 200 OK\r\n\r\nbody until close", .get),
        ("HTTP/1.1 100 Continue\r\n\r\n", .post),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", .head),
        ("HTTP/1.1 200 Connection established\r\n\r\n", .connect),
        ("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", .get),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .get),
        ("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", .get),
        ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", .get),
        ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", .get),
        ("HTTP/1.1 500 \r\nContent-Length: 0\r\nX-Caf\u{e9}-Free: caf\u{e9}\r\n\r\n", .get),
        ("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n", .get),
    ]

    func testEveryExampleAtEverySplitPoint() {
        for (ex, method) in Self.examples {
            XCTAssertNotEqual(parseResponse(ex, method: method).result, .incomplete, ex)
            assertResponseSplitInvariant(bytes(ex), method: method)
        }
    }

    func testStatusLine() {
        let s = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        let r = parseResponse(s + "HTTP/1.1 200 OK\r\n")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(r.reason, "Not Found")
        XCTAssertEqual(r.minorVersion, 1)
        XCTAssertEqual(r.headBytes, s.utf8.count)
        XCTAssertTrue(r.keepAlive)
        let noReason = parseResponse("HTTP/1.0 200\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(noReason.status, 200)
        XCTAssertEqual(noReason.reason, "")
        XCTAssertEqual(noReason.minorVersion, 0)
        XCTAssertFalse(noReason.keepAlive)
    }

    func testFramingRules() {
        func framing(_ s: String, _ m: Method = .get) -> BodyFraming? {
            let r = parseResponse(s, method: m)
            return r.result == .complete ? r.framing : nil
        }
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .head), BodyFraming.none)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .head), BodyFraming.none)
        XCTAssertEqual(framing("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"), BodyFraming.none)
        XCTAssertEqual(framing("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), BodyFraming.none)
        XCTAssertEqual(framing("HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n"), BodyFraming.none)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .connect), .untilClose)
        XCTAssertEqual(framing("HTTP/1.1 299 OK\r\n\r\n", .connect), .untilClose)
        XCTAssertEqual(framing("HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n", .connect), .contentLength(5))
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), .chunked)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), .chunked)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), .untilClose)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), .chunked)
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"), .contentLength(5))
        XCTAssertEqual(framing("HTTP/1.1 200 OK\r\n\r\n"), .untilClose)
    }

    func testKeepAlive() {
        XCTAssertTrue(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").keepAlive)
        XCTAssertFalse(parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keepAlive)
        XCTAssertFalse(parseResponse("HTTP/1.1 200 OK\r\n\r\n").keepAlive, "until close cannot be reused")
        XCTAssertFalse(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").keepAlive)
        XCTAssertFalse(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n").keepAlive,
                       "TE with CL is suspicious: do not reuse")
        XCTAssertTrue(parseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keepAlive)
        XCTAssertFalse(parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keepAlive)
        XCTAssertTrue(parseResponse("HTTP/1.1 204 No Content\r\n\r\n").keepAlive)
    }

    func testBadResponsesAre502() {
        let bad: [String] = [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1,2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 Odd\r\n\r\n",
            "HTTP/1.1 600 Odd\r\n\r\n",
            "HTTP/1.1  200 OK\r\n\r\n",
            "http/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\n\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
            "HTTP/1.1 200 O\u{0}K\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: \u{0}\r\n\r\n",
            "\r\nHTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\r\n\r\n",
        ]
        for s in bad {
            let r = parseResponse(s)
            guard case .error(let e) = r.result else { XCTFail("accepted: \(s.debugDescription)"); continue }
            XCTAssertEqual(e.status, 502, s.debugDescription)
            assertResponseSplitInvariant(bytes(s))
        }
        let tooBig = parseResponse("HTTP/1.1 200 OK\r\nX: \(String(repeating: "a", count: 300))\r\n\r\n",
                                   limits: HTTP1Limits(maxHeadBytes: 128, maxHeaders: 10))
        XCTAssertEqual(tooBig.result, .error(HTTP1Error(status: 502, reason: "response head too large")))
        let tooMany = parseResponse("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: HTTP1Limits(maxHeadBytes: 128, maxHeaders: 2))
        XCTAssertEqual(tooMany.result, .error(HTTP1Error(status: 502, reason: "too many header fields")))
        // Incomplete and under the limit: wait.
        XCTAssertEqual(parseResponse("HTTP/1.1 200 OK\r\nX: a").result, .incomplete)
    }

    func testInterimThenFinalResponseInOneBuffer() {
        let s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        let buf = bytes(s)
        var head = ResponseHead()
        var scan = 0
        XCTAssertEqual(buf.withUnsafeBytes { HTTP1Parser.parseResponseHead($0, into: &head, limits: HTTP1Limits(), requestMethod: .post, scanFrom: &scan) }, .complete)
        XCTAssertEqual(head.status, 100)
        let rest = Array(buf[head.headBytes...])
        let final = parseResponse(rest, method: .post)
        XCTAssertEqual(final.status, 201)
        XCTAssertEqual(final.framing, .contentLength(2))
        XCTAssertEqual(final.headBytes, rest.count - 2)
    }
}
