import XCTest
@testable import RemoraHTTP1

final class HopByHopTests: XCTestCase {
    func hop(_ r: RequestSummary) -> [String: Bool] {
        Dictionary(r.headers.map { ($0.name, $0.hopByHop) }, uniquingKeysWith: { a, b in a && b })
    }

    func testDefinedHopByHopHeaders() {
        let r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\n" +
                             "TE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Authorization: Basic x\r\n" +
                             "Proxy-Authenticate: Basic\r\nAccept: */*\r\nCookie: a=b\r\n\r\n")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(hop(r), ["Host": false, "Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "TE": true,
                                "Trailer": true, "Upgrade": true, "Proxy-Authorization": true, "Proxy-Authenticate": true,
                                "Accept": false, "Cookie": false])
        XCTAssertTrue(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").headers[1].hopByHop)
    }

    func testHeadersNamedInConnectionAreHopByHop() {
        let r = parseRequest("GET / HTTP/1.1\r\nX-Foo: 1\r\nHost: a\r\nConnection: close, X-Foo\r\nX-Bar: 2\r\nx-baz: 3\r\n" +
                             "Connection: X-BAZ ,, \r\nX-Foo-Bar: 4\r\n\r\n")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.headers.map(\.hopByHop), [true, false, true, false, true, true, false])
        XCTAssertFalse(r.keepAlive)
    }

    func testConnectionNamesInResponses() {
        let r = parseResponse("HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: 1\r\nX-Public: 2\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(r.headers.map(\.hopByHop), [true, true, false, false])
    }

    func testOrdinaryConnectionTokensMarkNothingElse() {
        let r = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nClose: 1\r\nX-A: 2\r\n\r\n")
        XCTAssertEqual(r.headers.map(\.hopByHop), [false, true, false, false])
    }
}

extension HopByHopTests {
    /// "Connection: content-length" must not make the proxy drop the length of a body it still forwards
    /// (the body would be read upstream as a second request), nor "Connection: host" strip Host.
    func testConnectionCannotNominateFramingOrHost() {
        let r = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nConnection: Content-Length, host, x-a\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello")
        XCTAssertEqual(r.result, .complete)
        XCTAssertEqual(r.framing, .contentLength(5))
        XCTAssertEqual(r.headers.map(\.hopByHop), [false, true, false, true])
        let s = parseResponse("HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nhi")
        XCTAssertEqual(s.headers.map(\.hopByHop), [true, false])
    }
}
