import XCTest
import Foundation
import RemoraCore
import RemoraHTTP1
@testable import RemoraProxy

final class HeadWriterTests: XCTestCase {
    /// Parses `raw` as a request head and serialises it for the upstream.
    private func forward(_ raw: String, peer: String = "10.0.0.7", edge: Bool = false) -> String {
        var bytes = Array(raw.utf8)
        var head = RequestHead()
        var scan = 0
        return bytes.withUnsafeMutableBytes { mb -> String in
            let buf = UnsafeRawBufferPointer(mb)
            guard HTTP1Parser.parseRequestHead(buf, into: &head, limits: HTTP1Limits(), scanFrom: &scan) == .complete else {
                XCTFail("did not parse: \(raw)")
                return ""
            }
            let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: 80)
            let out = ByteBuffer()
            var rng = FastRandom(seed: 1)
            let ctx = HeadWriter.RequestContext(peerIP: peer, forwardedProto: "http", edge: edge,
                                                path: req.pathRange, hostFallback: head.hostIndex == nil ? "fallback.local" : nil)
            HeadWriter.writeRequest(head, buf: buf, ctx: ctx, into: out, random: &rng)
            return String(decoding: out.bytes, as: UTF8.self)
        }
    }

    private func lines(_ s: String) -> [String] { s.components(separatedBy: "\r\n") }

    func testHopByHopAndConnectionNamedHeadersAreDropped() {
        let out = forward("GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Keep: yes\r\n\r\n")
        let l = lines(out)
        XCTAssertEqual(l[0], "GET /x HTTP/1.1")
        XCTAssertTrue(l.contains("Host: a"))
        XCTAssertTrue(l.contains("X-Keep: yes"))
        for gone in ["Connection", "X-Secret", "Keep-Alive", "TE"] {
            XCTAssertFalse(l.contains { $0.lowercased().hasPrefix(gone.lowercased() + ":") }, "\(gone) forwarded:\n\(out)")
        }
        XCTAssertTrue(out.hasSuffix("\r\n\r\n"))
    }

    func testForwardedForAppendsPeerAndRequestIDIsAddedOnce() {
        let out = forward("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n")
        let l = lines(out)
        XCTAssertEqual(l.filter { $0.lowercased().hasPrefix("x-forwarded-for:") }, ["x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.7"])
        let ids = l.filter { $0.hasPrefix("x-request-id: ") }
        XCTAssertEqual(ids.count, 1)
        let id = String(ids[0].dropFirst("x-request-id: ".count))
        XCTAssertEqual(id.count, 36)
        XCTAssertNotNil(UUID(uuidString: id), "not a UUID: \(id)")
        XCTAssertTrue(l.contains("x-forwarded-proto: http"))
    }

    func testClientRequestIDIsKept() {
        let out = forward("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc\r\n\r\n")
        XCTAssertEqual(lines(out).filter { $0.lowercased().hasPrefix("x-request-id") }, ["X-Request-Id: abc"])
    }

    func testForwardedProtoIsOursAtTheEdge() {
        let mesh = lines(forward("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n"))
        XCTAssertTrue(mesh.contains("X-Forwarded-Proto: https"))
        let edge = lines(forward("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n", edge: true))
        XCTAssertFalse(edge.contains("X-Forwarded-Proto: https"))
        XCTAssertTrue(edge.contains("x-forwarded-proto: http"))
    }

    func testChunkedRequestIsReframedAndExpectIsAnsweredByTheProxy() {
        let out = lines(forward("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"))
        XCTAssertEqual(out.filter { $0.lowercased().hasPrefix("transfer-encoding") }, ["transfer-encoding: chunked"])
        XCTAssertFalse(out.contains { $0.lowercased().hasPrefix("expect") })
    }

    func testUpgradeKeepsUpgradeHeaders() {
        let out = lines(forward("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
        XCTAssertTrue(out.contains("connection: upgrade"))
        XCTAssertTrue(out.contains("upgrade: websocket"))
    }

    func testAbsoluteFormBecomesOriginFormAndNamesTheAuthority() {
        var bytes = Array("GET http://svc.example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n".utf8)
        var head = RequestHead()
        var scan = 0
        bytes.withUnsafeMutableBytes { mb in
            let buf = UnsafeRawBufferPointer(mb)
            XCTAssertEqual(HTTP1Parser.parseRequestHead(buf, into: &head, limits: HTTP1Limits(), scanFrom: &scan), .complete)
            let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: 80)
            XCTAssertEqual(req.authority, "svc.example:8080")
            XCTAssertEqual(req.path, "/p?q=1")
        }
        let out = forward("GET http://svc.example/p HTTP/1.1\r\nHost: svc.example\r\n\r\n")
        XCTAssertEqual(lines(out)[0], "GET /p HTTP/1.1")
    }

    func testHTTP10WithoutHostGetsOne() {
        let out = lines(forward("GET / HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(out[0], "GET / HTTP/1.1")
        XCTAssertTrue(out.contains("host: fallback.local"))
    }

    func testHeaderLookupIsCaseInsensitiveAndJoinsRepeats() {
        var bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nUserID: u1\r\nCookie: a=1\r\ncookie: b=2\r\n\r\n".utf8)
        var head = RequestHead()
        var scan = 0
        bytes.withUnsafeMutableBytes { mb in
            let buf = UnsafeRawBufferPointer(mb)
            _ = HTTP1Parser.parseRequestHead(buf, into: &head, limits: HTTP1Limits(), scanFrom: &scan)
            let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: 80)
            XCTAssertEqual(req.header("userid"), "u1")
            XCTAssertEqual(req.header("cookie"), "a=1; b=2")
            XCTAssertNil(req.header("absent"))
        }
    }
}

final class LocalReplyTests: XCTestCase {
    func testReplyIsWellFormed() {
        let out = ByteBuffer()
        LocalReply.noHealthyUpstream.write(into: out, close: true)
        let s = String(decoding: out.bytes, as: UTF8.self)
        XCTAssertTrue(s.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        XCTAssertTrue(s.contains("content-length: 19\r\n"))
        XCTAssertTrue(s.contains("connection: close\r\n"))
        XCTAssertTrue(s.hasSuffix("\r\n\r\nno healthy upstream"))
    }

    func testHeadRequestGetsNoBody() {
        let out = ByteBuffer()
        LocalReply.upstreamTimeout.write(into: out, close: false, headRequest: true)
        let s = String(decoding: out.bytes, as: UTF8.self)
        XCTAssertTrue(s.hasPrefix("HTTP/1.1 504 "))
        XCTAssertTrue(s.hasSuffix("\r\n\r\n"))
        XCTAssertFalse(s.contains("connection: close"))
    }
}

final class FramingNormalisationTests: XCTestCase {
    func testRepeatedEqualContentLengthIsForwardedOnce() {
        var bytes = Array("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n".utf8)
        var head = RequestHead()
        var scan = 0
        bytes.withUnsafeMutableBytes { mb in
            let buf = UnsafeRawBufferPointer(mb)
            XCTAssertEqual(HTTP1Parser.parseRequestHead(buf, into: &head, limits: HTTP1Limits(), scanFrom: &scan), .complete)
            let out = ByteBuffer()
            var rng = FastRandom(seed: 3)
            let ctx = HeadWriter.RequestContext(peerIP: "1.2.3.4", forwardedProto: "http", edge: false,
                                                path: head.target, hostFallback: nil)
            HeadWriter.writeRequest(head, buf: buf, ctx: ctx, into: out, random: &rng)
            let lines = String(decoding: out.bytes, as: UTF8.self).components(separatedBy: "\r\n")
            XCTAssertEqual(lines.filter { $0.lowercased().hasPrefix("content-length") }, ["content-length: 5"])
        }
    }
}
