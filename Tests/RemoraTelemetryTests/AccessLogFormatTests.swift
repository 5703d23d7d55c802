import XCTest
import Foundation
@testable import RemoraTelemetry

final class AccessLogFormatTests: XCTestCase {
    func line(_ e: AccessLogEntry) -> String {
        var out: [UInt8] = []
        AccessLogFormat.write(e, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func json(_ e: AccessLogEntry) throws -> [String: Any] {
        let text = line(e)
        XCTAssertTrue(text.hasSuffix("}\n"))
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, "one line per entry")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func stamp(_ seconds: Int, _ nanos: Int) -> String {
        var out: [UInt8] = []
        RFC3339.write(seconds: seconds, nanos: nanos, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func testKnownTimestamps() {
        XCTAssertEqual(stamp(1_795_334_400, 123_456_789), "2026-11-22T08:00:00.123Z")
        XCTAssertEqual(stamp(0, 0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(stamp(951_868_799, 999_999_999), "2000-02-29T23:59:59.999Z")
        XCTAssertEqual(stamp(-1, 0), "1969-12-31T23:59:59.000Z")
        XCTAssertEqual(stamp(0, -1), "1969-12-31T23:59:59.999Z")
        XCTAssertEqual(stamp(1_795_334_399, 1_000_000_000), "2026-11-22T08:00:00.000Z")
    }

    /// Agrees with the C library's gmtime_r over a spread of instants.
    func testTimestampsMatchGmtime() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let t = Int.random(in: -2_208_988_800...32_503_680_000, using: &rng)  // 1900…3000
            var tt = time_t(t)
            var tm = tm()
            gmtime_r(&tt, &tm)
            let want = String(format: "%04d-%02d-%02dT%02d:%02d:%02d.042Z", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                              Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
            XCTAssertEqual(stamp(t, 42_000_000), want)
        }
    }

    func testKeysAndValues() throws {
        let e = AccessLogEntry(startTime: (1_795_334_400, 5_000_000), method: "POST", authority: "adservice:8080",
                               path: "/hipstershop.AdService/GetAds", protocol: "HTTP/2", status: 200, grpcStatus: 14,
                               flags: [.upstreamConnectionFailure, .noHealthyUpstream], bytesReceived: 12, bytesSent: 3456,
                               durationMs: 17, upstreamHost: "10.0.0.1:8080",
                               upstreamCluster: "outbound|8080||adservice.default.svc.cluster.local",
                               routeName: "ads", requestID: "3f2c-11", downstreamPeer: "10.0.0.9:41000")
        let o = try json(e)
        XCTAssertEqual(Set(o.keys), ["start_time", "method", "path", "protocol", "response_code", "response_flags",
                                     "bytes_received", "bytes_sent", "duration", "upstream_host", "upstream_cluster",
                                     "x_request_id", "authority", "route_name", "grpc_status",
                                     "downstream_remote_address"])
        XCTAssertEqual(o["start_time"] as? String, "2026-11-22T08:00:00.005Z")
        XCTAssertEqual(o["method"] as? String, "POST")
        XCTAssertEqual(o["path"] as? String, "/hipstershop.AdService/GetAds")
        XCTAssertEqual(o["protocol"] as? String, "HTTP/2")
        XCTAssertEqual(o["response_code"] as? Int, 200)
        XCTAssertEqual(o["response_flags"] as? String, "UH,UF")
        XCTAssertEqual(o["bytes_received"] as? Int, 12)
        XCTAssertEqual(o["bytes_sent"] as? Int, 3456)
        XCTAssertEqual(o["duration"] as? Int, 17)
        XCTAssertEqual(o["upstream_host"] as? String, "10.0.0.1:8080")
        XCTAssertEqual(o["upstream_cluster"] as? String, "outbound|8080||adservice.default.svc.cluster.local")
        XCTAssertEqual(o["x_request_id"] as? String, "3f2c-11")
        XCTAssertEqual(o["authority"] as? String, "adservice:8080")
        XCTAssertEqual(o["route_name"] as? String, "ads")
        XCTAssertEqual(o["grpc_status"] as? Int, 14)
        XCTAssertEqual(o["downstream_remote_address"] as? String, "10.0.0.9:41000")
    }

    func testMissingValuesAreNull() throws {
        let text = line(AccessLogEntry(method: "GET", path: "/", status: 0, flags: .downstreamConnectionTermination))
        XCTAssertTrue(text.contains(#""upstream_host":null"#))
        XCTAssertTrue(text.contains(#""grpc_status":null"#))
        XCTAssertTrue(text.contains(#""response_flags":"DC""#))
        XCTAssertTrue(text.contains(#""response_code":0"#))
        let o = try json(AccessLogEntry())
        XCTAssertTrue(o["route_name"] is NSNull)
        XCTAssertEqual(o["response_flags"] as? String, "-")
    }

    func testEscaping() throws {
        let nasty = "a\"b\\c\nd\re\tf\u{01}g\u{1F}h\u{7F}i/é€😀"
        var e = AccessLogEntry(method: "GET", path: nasty)
        e.requestID = "\u{0}"
        e.authority = "x\u{8}\u{C}"
        let text = line(e)
        XCTAssertTrue(text.contains(#""path":"a\"b\\c\nd\re\tf\u0001g\u001fh"#))
        XCTAssertTrue(text.contains(#""x_request_id":"\u0000""#))
        XCTAssertTrue(text.contains(#""authority":"x\b\f""#))
        let o = try json(e)
        XCTAssertEqual(o["path"] as? String, nasty)
        XCTAssertEqual(o["x_request_id"] as? String, "\u{0}")
    }

    func testInvalidUTF8IsReplaced() throws {
        let cases: [([UInt8], String)] = [
            ([0x61, 0xFF, 0x62], "a\u{FFFD}b"),
            ([0xC3], "\u{FFFD}"),                          // truncated 2-byte sequence
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),            // overlong
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),  // surrogate
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),  // above U+10FFFF
            ([0xE2, 0x82, 0xAC, 0x22], "€\""),
            ([0xF0, 0x9F, 0x98, 0x80], "😀"),
        ]
        for (bytes, want) in cases {
            var out: [UInt8] = []
            bytes.withUnsafeBytes { AccessLogFormat.appendJSONString(bytes: $0, into: &out) }
            let parsed = try JSONSerialization.jsonObject(with: Data(out), options: .fragmentsAllowed) as? String
            XCTAssertEqual(parsed, want, "\(bytes)")
        }
    }

    func testIntegers() {
        for v in [0, 7, 10, 99, 1234567890, -1, -987, Int.max, Int.min] {
            var out: [UInt8] = []
            AccessLogFormat.appendInt(v, into: &out)
            XCTAssertEqual(String(decoding: out, as: UTF8.self), String(v))
        }
    }

    /// Random strings (control characters, quotes, astral characters) survive a JSON round trip.
    func testRandomStringsRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let pool: [Unicode.Scalar] = ["\0", "\u{1}", "\u{1F}", "\n", "\r", "\t", "\"", "\\", "/", "a", "Z", "~",
                                      "\u{7F}", "\u{80}", "é", "\u{2028}", "€", "\u{FFFD}", "\u{FFFF}", "😀", "\u{10FFFF}"]
        for _ in 0..<2000 {
            var s = ""
            for _ in 0..<Int.random(in: 0...40, using: &rng) { s.unicodeScalars.append(pool.randomElement(using: &rng)!) }
            var out: [UInt8] = []
            AccessLogFormat.appendJSONString(s, into: &out)
            let parsed = try JSONSerialization.jsonObject(with: Data(out), options: .fragmentsAllowed) as? String
            XCTAssertEqual(parsed, s)
        }
    }

    /// Random bytes always give valid JSON, and valid UTF-8 comes back unchanged.
    func testRandomBytesAlwaysValidJSON() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var out: [UInt8] = []
            bytes.withUnsafeBytes { AccessLogFormat.appendJSONString(bytes: $0, into: &out) }
            let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out), options: .fragmentsAllowed) as? String)
            if let valid = String(validatingUTF8: bytes.map { CChar(bitPattern: $0) } + [0]), !bytes.contains(0) {
                XCTAssertEqual(parsed, valid)
            }
        }
    }

    /// A worker's buffer composes lines in reused scratch memory; a line far longer than
    /// any before (every byte escaped) must come out whole and identical.
    func testBufferMatchesFormatForLongLines() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let entries = [
            AccessLogEntry(method: "GET", path: "/short"),
            AccessLogEntry(method: "GET", path: String(repeating: "\u{1}", count: 20_000), requestID: "r"),
            AccessLogEntry(method: "GET", path: "/short/again", upstreamHost: String(repeating: "\"", count: 3000)),
        ]
        var want: [UInt8] = []
        for e in entries { AccessLogFormat.write(e, into: &want) }
        // Read as the writer writes (the pipe holds only 64 KiB).
        let reader = Thread { [fd = fds[0]] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            var all: [UInt8] = []
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n <= 0 { break }
                all.append(contentsOf: chunk[0..<n])
            }
            PipeBox.shared.bytes = all
            PipeBox.shared.done.signal()
        }
        reader.start()
        do {
            let sink = AccessLogSink(fd: fds[1], capacityBytes: 64 << 20, closeOnDeinit: true)
            let buffer = AccessLogBuffer(sink: sink, batchBytes: 1 << 30)
            for e in entries { buffer.append(e) }
            buffer.drain()
            sink.flush()
        }  // the sink's deinit closes the write end: the reader sees EOF
        XCTAssertEqual(PipeBox.shared.done.wait(timeout: .now() + 10), .success)
        let got = PipeBox.shared.bytes
        XCTAssertEqual(got.count, want.count)
        XCTAssertTrue(got == want)
        let lines = got.split(separator: 0x0A)
        XCTAssertEqual(lines.count, 3)
        let second = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[1])) as? [String: Any])
        XCTAssertEqual((second["path"] as? String)?.unicodeScalars.count, 20_000)
    }
}

final class PipeBox: @unchecked Sendable {
    static let shared = PipeBox()
    var bytes: [UInt8] = []
    let done = DispatchSemaphore(value: 0)
}
