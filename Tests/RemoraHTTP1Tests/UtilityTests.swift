import XCTest
@testable import RemoraHTTP1

final class UtilityTests: XCTestCase {
    func testTcharMatchesTheRFCSet() {
        let tchars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in 0...255 { XCTAssertEqual(isTchar(UInt8(b)), tchars.contains(UInt8(b)), "byte \(b)") }
    }

    func testFieldAndTargetByteClasses() {
        for b in 0...255 {
            let u = UInt8(b)
            XCTAssertEqual(isFieldByte(u), u == 9 || (u >= 0x20 && u != 0x7F), "byte \(b)")
            XCTAssertEqual(isTargetByte(u), u >= 0x21 && u <= 0x7E, "byte \(b)")
            let hex = Int(String(UnicodeScalar(u)), radix: 16)
            XCTAssertEqual(hexValue(u) == 0xFF ? nil : Int(hexValue(u)), b < 128 ? hex : nil, "byte \(b)")
        }
    }

    func testHostByteClass() {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:[]".utf8)
        for b in 0...255 { XCTAssertEqual(isHostByte(UInt8(b)), allowed.contains(UInt8(b)), "byte \(b)") }
    }

    func testWriteChunkHeader() {
        var out = [UInt8](repeating: 0, count: 18)
        let cases: [(Int, String)] = [(0, "0"), (1, "1"), (15, "f"), (16, "10"), (255, "ff"), (4096, "1000"), (65_535, "ffff"),
                                      (Int.max, "7fffffffffffffff"), (-1, "ffffffffffffffff")]
        for (n, hex) in cases {
            let len = out.withUnsafeMutableBytes { HTTP1Parser.writeChunkHeader(size: n, to: $0.baseAddress!) }
            XCTAssertEqual(String(decoding: out[0..<len], as: UTF8.self), hex + "\r\n")
            XCTAssertLessThanOrEqual(len, 18)
        }
        // Round trip through the decoder.
        for n in [1, 9, 10, 17, 300, 4097] {
            let len = out.withUnsafeMutableBytes { HTTP1Parser.writeChunkHeader(size: n, to: $0.baseAddress!) }
            let wire = Array(out[0..<len]) + [UInt8](repeating: 0x61, count: n) + bytes("\r\n0\r\n\r\n")
            let d = decodeBody(wire, framing: .chunked)
            XCTAssertNil(d.error)
            XCTAssertEqual(d.data.count, n)
            XCTAssertTrue(d.complete)
        }
    }

    func testReasonPhrase() {
        XCTAssertEqual(HTTP1Parser.reasonPhrase(200).description, "OK")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(400).description, "Bad Request")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(414).description, "URI Too Long")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(431).description, "Request Header Fields Too Large")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(502).description, "Bad Gateway")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(505).description, "HTTP Version Not Supported")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(299).description, "Unknown")
        XCTAssertEqual(HTTP1Parser.reasonPhrase(-1).description, "Unknown")
    }

    func testErrorDescription() {
        let e = HTTP1Error(status: 400, reason: "bare LF")
        XCTAssertTrue(e.description.contains("400"))
        XCTAssertTrue(e.description.contains("bare LF"))
    }
}

final class HeaderTokenTests: XCTestCase {
    static let known: [(String, HeaderToken)] = [
        ("te", .te), ("host", .host), ("date", .date), ("cookie", .cookie), ("expect", .expect), ("server", .server),
        ("upgrade", .upgrade), ("trailer", .trailer), ("connection", .connection), ("keep-alive", .keepAlive),
        ("content-type", .contentType), ("x-request-id", .xRequestId), ("content-length", .contentLength),
        ("x-forwarded-for", .xForwardedFor), ("proxy-connection", .proxyConnection), ("transfer-encoding", .transferEncoding),
        ("x-forwarded-proto", .xForwardedProto), ("proxy-authenticate", .proxyAuthenticate),
        ("proxy-authorization", .proxyAuthorization),
    ]

    func recognise(_ name: [UInt8]) -> HeaderToken {
        name.withUnsafeBufferPointer { HeaderToken.recognise($0.baseAddress!, $0.count) }
    }

    /// Every known name in every case mix is recognised; replacing any single byte with any other tchar
    /// (other than its case twin) is not. This pins down the word-compare-with-case-bit trick exactly.
    func testRecognitionIsExact() {
        let tchars = Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        var rng = SeededRandom(seed: 11)
        for (name, token) in Self.known {
            let lowerName = Array(name.utf8)
            XCTAssertEqual(recognise(lowerName), token, name)
            XCTAssertEqual(recognise(Array(name.uppercased().utf8)), token, name)
            for _ in 0..<20 {
                let mixed = lowerName.map { Bool.random(using: &rng) ? UInt8(ascii: Character(UnicodeScalar($0)).uppercased().unicodeScalars.first!) : $0 }
                XCTAssertEqual(recognise(mixed), token, String(decoding: mixed, as: UTF8.self))
            }
            for i in lowerName.indices {
                for t in tchars where t != lowerName[i] && lower(t) != lowerName[i] {
                    var v = lowerName
                    v[i] = t
                    if let other = Self.known.first(where: { Array($0.0.utf8) == v.map(lower) }) {
                        XCTAssertEqual(recognise(v), other.1)
                    } else {
                        XCTAssertEqual(recognise(v), .other, String(decoding: v, as: UTF8.self))
                    }
                }
            }
            XCTAssertEqual(recognise(lowerName + [0x78]), .other)
            XCTAssertEqual(recognise(Array(lowerName.dropLast())), .other)
        }
    }
}
