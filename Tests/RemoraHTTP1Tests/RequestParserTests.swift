import XCTest
@testable import RemoraHTTP1

/// Valid requests: what is extracted, and that it does not depend on how the bytes arrive.
final class RequestParserTests: XCTestCase {
    static let examples: [String] = [
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET /path?q=1&r=%20 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
        "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\u{e9}\r\nX-Tab:\tv1 \t v2\t \r\nX-Empty:\r\nX-Spaces:    \r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a.example/b?c HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        "DELETE /r/1 HTTP/1.1\r\nhOsT: a\r\nx-request-id: 42\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nCookie: a=b\r\n\r\n",
        "PURGE /cache HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private, x-other\r\nX-Private: 1\r\nX-Other: 2\r\nX-Public: 3\r\n\r\n",
        "PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]

    func testEveryExampleAtEverySplitPoint() {
        for ex in Self.examples {
            assertSplitInvariant(bytes(ex))
            XCTAssertEqual(parseRequest(ex).result, .complete, ex)
        }
    }

    func testSimpleGet() {
        let s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
        let r = parseRequest(s + "trailing bytes")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.method, "GET")
        XCTAssertEqual(r.methodKind, .get)
        XCTAssertEqual(r.target, "/index.html")
        XCTAssertEqual(r.minorVersion, 1)
        XCTAssertEqual(r.headers, [
            FieldSummary(name: "Host", value: "example.com", token: .host, hopByHop: false),
            FieldSummary(name: "Accept", value: "*/*", token: .other, hopByHop: false),
        ])
        XCTAssertEqual(r.hostIndex, 0)
        XCTAssertEqual(r.framing, BodyFraming.none)
        XCTAssertTrue(r.keepAlive)
        XCTAssertFalse(r.expectContinue)
        XCTAssertFalse(r.upgrade)
        XCTAssertEqual(r.headBytes, s.utf8.count)
    }

    func testHeadBytesStopsAtTheEndOfTheHead() {
        let s = "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n"
        let r = parseRequest(s)
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.headBytes, s.utf8.count - "helloGET / HTTP/1.1\r\n".utf8.count)
        XCTAssertEqual(r.framing, .contentLength(5))
    }

    func testLeadingEmptyLinesAreSkippedAndCounted() {
        let r = parseRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.method, "GET")
        XCTAssertEqual(r.headBytes, 4 + 16 + 9 + 2)
        let eight = String(repeating: "\r\n", count: 8) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        XCTAssertEqual(parseRequest(eight).result, .complete)
    }

    func testMethodsAreRecognisedCaseSensitively() {
        let cases: [(String, Method)] = [("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put),
                                         ("DELETE", .delete), ("CONNECT", .connect), ("OPTIONS", .options),
                                         ("TRACE", .trace), ("PATCH", .patch), ("get", .other), ("PROPFIND", .other),
                                         ("GETS", .other), ("M-SEARCH", .other)]
        for (m, kind) in cases {
            let r = parseRequest("\(m) / HTTP/1.1\r\nHost: a\r\n\r\n")
            XCTAssertEqual(r.result, .complete, m)
            XCTAssertEqual(r.methodKind, kind, m)
            XCTAssertEqual(r.method, m)
        }
    }

    func testValuesAreTrimmedOfOWSOnly() {
        let r = parseRequest(RequestParserTests.examples[10])
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.headers.map(\.value), ["a", "caf\u{e9}", "v1 \t v2", "", ""])
    }

    func testHeaderTokensAreRecognisedCaseInsensitively() {
        let names: [(String, HeaderToken)] = [
            ("Host", .host), ("CONTENT-LENGTH", .contentLength), ("transfer-encoding", .transferEncoding),
            ("Connection", .connection), ("Keep-Alive", .keepAlive), ("Proxy-Connection", .proxyConnection),
            ("TE", .te), ("Trailer", .trailer), ("Upgrade", .upgrade), ("Expect", .expect),
            ("X-Request-ID", .xRequestId), ("X-Forwarded-For", .xForwardedFor), ("x-forwarded-proto", .xForwardedProto),
            ("Cookie", .cookie), ("Proxy-Authenticate", .proxyAuthenticate), ("Proxy-Authorization", .proxyAuthorization),
            ("Date", .date), ("Server", .server), ("Content-Type", .contentType),
            ("Hosts", .other), ("Hos", .other), ("Content_Length", .other), ("X-Forwarded-Fox", .other),
            ("Cookies", .other), ("Te", .te), ("Dat_", .other), ("Servers", .other), ("Expec", .other),
        ]
        for (name, token) in names {
            // Framing-relevant values are chosen so each line is valid on its own.
            let value = token == .contentLength ? "0" : token == .transferEncoding ? "chunked" : "v"
            let host = token == .host ? "" : "Host: a\r\n"
            let r = parseRequest("GET / HTTP/1.1\r\n\(host)\(name): \(value)\r\n\r\n")
            XCTAssertEqual(r.result, .complete, name)
            XCTAssertEqual(r.headers.last?.token, token, name)
            XCTAssertEqual(r.headers.last?.name, name)
        }
    }

    func testKeepAliveRules() {
        XCTAssertTrue(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keepAlive)
        XCTAssertFalse(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keepAlive)
        XCTAssertFalse(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n").keepAlive)
        XCTAssertFalse(parseRequest("GET / HTTP/1.0\r\n\r\n").keepAlive)
        XCTAssertTrue(parseRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
        XCTAssertFalse(parseRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").keepAlive)
        // "closed" is not "close".
        XCTAssertTrue(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n").keepAlive)
    }

    func testExpectContinue() {
        XCTAssertTrue(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expectContinue)
        XCTAssertTrue(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nexpect:  100-CONTINUE \r\nContent-Length: 1\r\n\r\n").expectContinue)
        XCTAssertFalse(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continued\r\nContent-Length: 1\r\n\r\n").expectContinue)
        XCTAssertFalse(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n").expectContinue)
        // RFC 9110 §10.1.1: ignored in HTTP/1.0.
        XCTAssertFalse(parseRequest("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expectContinue)
    }

    func testUpgradeNeedsBothHeaderAndConnectionToken() {
        XCTAssertTrue(parseRequest(RequestParserTests.examples[7]).upgrade)
        XCTAssertTrue(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\nUpgrade: h2c\r\n\r\n").upgrade)
        XCTAssertFalse(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade)
        XCTAssertFalse(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n").upgrade)
        XCTAssertFalse(parseRequest("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n").upgrade)
        XCTAssertFalse(parseRequest("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade)
    }

    func testFraming() {
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing, .contentLength(0))
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").framing, .contentLength(7))
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n").framing,
                       .contentLength(9_223_372_036_854_775_807))
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n\r\n").framing, .chunked)
        XCTAssertEqual(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n").framing, BodyFraming.none)
        XCTAssertEqual(parseRequest(RequestParserTests.examples[15]).framing, .contentLength(3))
    }

    func testHostIndex() {
        let r = parseRequest("GET / HTTP/1.1\r\nAccept: */*\r\nUser-Agent: x\r\nHOST: h.example:8080\r\n\r\n")
        XCTAssertEqual(r.hostIndex, 2)
        XCTAssertEqual(r.headers[2].value, "h.example:8080")
        XCTAssertNil(parseRequest("GET / HTTP/1.0\r\n\r\n").hostIndex)
    }

    func testHeadersArrayIsReusedWithItsCapacity() {
        var head = RequestHead()
        var scan = 0
        let big = bytes("GET / HTTP/1.1\r\nHost: a\r\n" + (0..<40).map { "X-\($0): v\r\n" }.joined() + "\r\n")
        XCTAssertEqual(big.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }, .complete)
        let capacity = head.headers.capacity
        XCTAssertEqual(head.headers.count, 41)
        let small = bytes("GET / HTTP/1.1\r\nHost: b\r\n\r\n")
        XCTAssertEqual(small.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }, .complete)
        XCTAssertEqual(head.headers.count, 1)
        XCTAssertEqual(head.headers.capacity, capacity)
        XCTAssertEqual(scan, 0, "reset for the next head")
    }

    func testIncompleteHeads() {
        XCTAssertEqual(parseRequest("").result, .incomplete)
        XCTAssertEqual(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n").result, .incomplete)
        XCTAssertEqual(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r").result, .incomplete)
        XCTAssertEqual(parseRequest("\r\n").result, .incomplete)
        XCTAssertEqual(parseRequest("\r").result, .incomplete)
        XCTAssertEqual(parseRequest("GET").result, .incomplete)
        XCTAssertEqual(parseRequest("GET / HTTP/1.").result, .incomplete)
    }

    /// A head arriving one byte at a time must cost O(n) in total. 60 KiB byte by byte would be ~1.8e9 byte
    /// visits if every call rescanned from the start (tens of seconds); linear is a few million.
    func testByteAtATimeIsLinear() {
        let cookie = String(repeating: "c", count: 55_000)
        let buf = bytes("GET / HTTP/1.1\r\nHost: a\r\nCookie: \(cookie)\r\nX-A: 1\r\n\r\n")
        var head = RequestHead()
        var scan = 0
        let start = ContinuousClock.now
        var result = HeadParseResult.incomplete
        buf.withUnsafeBytes { all in
            for k in 1...all.count {
                result = HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: all[0..<k]), into: &head,
                                                      limits: HTTP1Limits(), scanFrom: &scan)
                if result != .incomplete { XCTAssertEqual(k, all.count); break }
            }
        }
        XCTAssertEqual(result, .complete)
        XCTAssertEqual(head.headers.count, 3)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(3))
    }

    func testScanFromBeyondTheBufferIsHarmless() {
        var head = RequestHead()
        var scan = 10_000
        let buf = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        XCTAssertEqual(buf.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }, .complete)
        scan = 7   // a stale hint pointing into the middle of a finished head still gives the right answer
        XCTAssertEqual(buf.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: HTTP1Limits(), scanFrom: &scan) }, .complete)
    }
}
