import XCTest
import RemoraCore
import RemoraH2
import RemoraHTTP1
@testable import RemoraProxy

/// HTTP/2 header blocks ↔ the proxy's heads, and the HTTP/2 request and response lists.
final class H2TranslationTests: XCTestCase {
    /// Calls `body` with a header view of `fields` as nghttp2 would deliver them.
    private func withView<T>(_ fields: [(String, String)], _ body: (H2HeaderView) -> T) -> T {
        var bytes: [UInt8] = []
        var ranges: [H2Field] = []
        for (n, v) in fields {
            let ns = bytes.count
            bytes += Array(n.utf8)
            let vs = bytes.count
            bytes += Array(v.utf8)
            ranges.append(H2Field(name: ns..<vs, value: vs..<bytes.count))
        }
        return bytes.withUnsafeBytes { b in
            ranges.withUnsafeBufferPointer { r in body(H2HeaderView(bytes: b, fields: r, oversized: false)) }
        }
    }

    private func field(_ head: RequestHead, _ buf: UnsafeRawBufferPointer, _ name: String) -> [String] {
        head.headers.filter { String(decoding: UnsafeRawBufferPointer(rebasing: buf[$0.name]), as: UTF8.self).lowercased() == name }
            .map { String(decoding: UnsafeRawBufferPointer(rebasing: buf[$0.value]), as: UTF8.self) }
    }

    func testRequestBlockBecomesAHeadWithHostFromAuthority() {
        let store = ByteBuffer()
        var head = RequestHead()
        withView([(":method", "POST"), (":scheme", "http"), (":authority", "adservice"), (":path", "/a?b=1"),
                  ("userid", "alice"), ("cookie", "a=1"), ("cookie", "b=2"), ("content-length", "12"), ("te", "trailers")]) {
            H2Heads.request($0, endStream: false, store: store, into: &head)
        }
        let buf = store.readable
        XCTAssertEqual(head.methodKind, .post)
        XCTAssertEqual(String(decoding: UnsafeRawBufferPointer(rebasing: buf[head.target]), as: UTF8.self), "/a?b=1")
        XCTAssertEqual(head.framing, .contentLength(12))
        XCTAssertEqual(field(head, buf, "host"), ["adservice"])
        XCTAssertEqual(field(head, buf, "cookie"), ["a=1; b=2"], "split cookies are joined for HTTP/1.1 (RFC 9113 §8.2.3)")
        XCTAssertEqual(field(head, buf, "userid"), ["alice"])
        XCTAssertTrue(head.headers.first { $0.token == .te }!.hopByHop)
        let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: 15001)
        XCTAssertEqual(req.authority, "adservice")
        XCTAssertEqual(req.path, "/a?b=1")
        XCTAssertEqual(req.header("userid"), "alice")
    }

    func testFramingWithoutLengthFollowsEndStream() {
        let store = ByteBuffer()
        var head = RequestHead()
        withView([(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]) {
            H2Heads.request($0, endStream: true, store: store, into: &head)
        }
        XCTAssertEqual(head.framing, .none)
        withView([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")]) {
            H2Heads.request($0, endStream: false, store: store, into: &head)
        }
        XCTAssertEqual(head.framing, .chunked, "a body of unknown length is chunked towards HTTP/1.1")
    }

    func testResponseBlock() {
        var rh = ResponseHead()
        withView([(":status", "200"), ("content-type", "application/grpc"), ("content-length", "5")]) {
            H2Heads.response($0, endStream: false, headRequest: false, into: &rh)
        }
        XCTAssertEqual(rh.status, 200)
        XCTAssertEqual(rh.framing, .contentLength(5))
        XCTAssertEqual(rh.headers.count, 2)
        withView([(":status", "200"), ("grpc-status", "14")]) {
            H2Heads.response($0, endStream: true, headRequest: false, into: &rh)
        }
        XCTAssertEqual(rh.framing, .contentLength(0), "trailers-only: HTTP/1.1 must see length 0")
        withView([(":status", "200"), ("content-length", "5")]) {
            H2Heads.response($0, endStream: false, headRequest: true, into: &rh)
        }
        XCTAssertEqual(rh.framing, .none, "no body follows a HEAD request")
    }

    /// An HTTP/1.1 request forwarded to an HTTP/2 upstream.
    func testRequestListForHTTP2Upstream() {
        let raw = Array("POST /p HTTP/1.1\r\nHost: Svc\r\nX-Forwarded-For: 1.2.3.4\r\nTE: trailers\r\nConnection: keep-alive\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var head = RequestHead()
        var scan = 0
        var list = H2FieldList()
        raw.withUnsafeBytes { buf in
            XCTAssertEqual(HTTP1Parser.parseRequestHead(buf, into: &head, limits: HTTP1Limits(), scanFrom: &scan), .complete)
            let req = ParsedRequest(head: head, buf: buf, scheme: "http", port: 80)
            var rng = FastRandom(seed: 1)
            let ctx = HeadWriter.RequestContext(peerIP: "10.0.0.9", forwardedProto: "http", edge: false,
                                                path: req.pathRange, hostFallback: nil)
            H2HeadWriter.request(head, buf: buf, ctx: ctx, into: &list, random: &rng)
        }
        let fields = (0..<list.count).map { list[$0] }
        XCTAssertEqual(fields.prefix(4).map(\.name), [":method", ":scheme", ":authority", ":path"])
        XCTAssertEqual(fields[2].value, "Svc")
        let byName = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(byName["content-type"], "application/grpc", "names are lowercased")
        XCTAssertEqual(byName["te"], "trailers", "te: trailers is the one TE HTTP/2 allows (gRPC needs it)")
        XCTAssertEqual(byName["x-forwarded-for"], "1.2.3.4, 10.0.0.9")
        XCTAssertNotNil(byName["x-request-id"])
        for gone in ["host", "connection", "transfer-encoding", "content-length"] {
            XCTAssertNil(byName[gone], "\(gone) must not reach an HTTP/2 upstream")
        }
    }

    func testGrpcTimeoutParsing() {
        XCTAssertEqual(Grpc.parseTimeout("100m"), 100)
        XCTAssertEqual(Grpc.parseTimeout("5S"), 5_000)
        XCTAssertEqual(Grpc.parseTimeout("2M"), 120_000)
        XCTAssertEqual(Grpc.parseTimeout("1H"), 3_600_000)
        XCTAssertEqual(Grpc.parseTimeout("1500u"), 2)
        XCTAssertEqual(Grpc.parseTimeout("1n"), 1)
        for bad in ["", "m", "10", "10x", "123456789S", "-1S", "1.5S"] { XCTAssertNil(Grpc.parseTimeout(bad), bad) }
    }

    func testGrpcStatusOfLocalReplies() {
        XCTAssertEqual(Grpc.status(for: .noRoute), 12)
        XCTAssertEqual(Grpc.status(for: .upstreamTimeout), 4)
        XCTAssertEqual(Grpc.status(for: .noHealthyUpstream), 14)
        XCTAssertEqual(Grpc.status(for: .connectFailure), 14)
        XCTAssertEqual(Grpc.encodeMessage("50% off\n"), "50%25 off%0A")
    }

    func testPrefaceDetection() {
        func m(_ s: String) -> H2Preface.Match { Array(s.utf8).withUnsafeBytes { H2Preface.match($0) } }
        XCTAssertEqual(m("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"), .yes)
        XCTAssertEqual(m("PRI * HT"), .partial)
        XCTAssertEqual(m("GET / HTTP/1.1\r\n"), .no)
        XCTAssertEqual(m("PRIX"), .no)
    }
}
