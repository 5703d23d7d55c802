import XCTest
@testable import RemoraHTTP1

/// Deterministic generator so failures reproduce (SplitMix64).
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func text(_ buf: [UInt8], _ r: Range<Int>) -> String { String(decoding: buf[r], as: UTF8.self) }

/// Everything a parse produced, as plain values, so two parses can be compared with ==.
struct FieldSummary: Equatable, CustomStringConvertible {
    var name: String, value: String, token: HeaderToken, hopByHop: Bool
    var description: String { "\(name): \(value) [\(token)\(hopByHop ? ", hop" : "")]" }
}

struct RequestSummary: Equatable {
    var result: HeadParseResult
    var method = "", methodKind = Method.other, target = "", minorVersion: UInt8 = 0
    var headers: [FieldSummary] = []
    var framing = BodyFraming.none
    var keepAlive = false, expectContinue = false, upgrade = false
    var hostIndex: Int? = nil
    var headBytes = 0

    init(_ result: HeadParseResult, _ head: RequestHead, _ buf: [UInt8]) {
        self.result = result
        guard result == .complete else { return }
        method = text(buf, head.method)
        methodKind = head.methodKind
        target = text(buf, head.target)
        minorVersion = head.minorVersion
        headers = head.headers.map { FieldSummary(name: text(buf, $0.name), value: text(buf, $0.value), token: $0.token, hopByHop: $0.hopByHop) }
        framing = head.framing
        keepAlive = head.keepAlive
        expectContinue = head.expectContinue
        upgrade = head.upgrade
        hostIndex = head.hostIndex
        headBytes = head.headBytes
    }
}

struct ResponseSummary: Equatable {
    var result: HeadParseResult
    var status = 0, reason = "", minorVersion: UInt8 = 0
    var headers: [FieldSummary] = []
    var framing = BodyFraming.none
    var keepAlive = false
    var headBytes = 0

    init(_ result: HeadParseResult, _ head: ResponseHead, _ buf: [UInt8]) {
        self.result = result
        guard result == .complete else { return }
        status = head.status
        reason = text(buf, head.reason)
        minorVersion = head.minorVersion
        headers = head.headers.map { FieldSummary(name: text(buf, $0.name), value: text(buf, $0.value), token: $0.token, hopByHop: $0.hopByHop) }
        framing = head.framing
        keepAlive = head.keepAlive
        headBytes = head.headBytes
    }
}

/// Parses `buf[0..<count]` with a fresh head and scanFrom 0.
func parseRequest(_ buf: [UInt8], limits: HTTP1Limits = HTTP1Limits()) -> RequestSummary {
    var head = RequestHead()
    var scan = 0
    let r = buf.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: limits, scanFrom: &scan) }
    return RequestSummary(r, head, buf)
}

func parseRequest(_ s: String, limits: HTTP1Limits = HTTP1Limits()) -> RequestSummary { parseRequest(bytes(s), limits: limits) }

func parseResponse(_ buf: [UInt8], method: Method = .get, limits: HTTP1Limits = HTTP1Limits()) -> ResponseSummary {
    var head = ResponseHead()
    var scan = 0
    let r = buf.withUnsafeBytes {
        HTTP1Parser.parseResponseHead($0, into: &head, limits: limits, requestMethod: method, scanFrom: &scan)
    }
    return ResponseSummary(r, head, buf)
}

func parseResponse(_ s: String, method: Method = .get, limits: HTTP1Limits = HTTP1Limits()) -> ResponseSummary {
    parseResponse(bytes(s), method: method, limits: limits)
}

/// Feeds growing prefixes `buf[0..<cuts[0]]`, `buf[0..<cuts[1]]`, ..., then the whole buffer, to one head with
/// one scanFrom, as a connection would, stopping at the first result that is not .incomplete.
func feedRequest(_ buf: [UInt8], cuts: [Int], limits: HTTP1Limits) -> RequestSummary {
    var head = RequestHead()
    var scan = 0
    var r = HeadParseResult.incomplete
    for k in cuts + [buf.count] {
        r = buf.withUnsafeBytes {
            HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: $0[0..<k]), into: &head, limits: limits, scanFrom: &scan)
        }
        if r != .incomplete { break }
        XCTAssertTrue(scan >= 0 && scan <= k, "scanFrom \(scan) out of range for \(k) bytes")
    }
    return RequestSummary(r, head, buf)
}

func feedResponse(_ buf: [UInt8], cuts: [Int], method: Method, limits: HTTP1Limits) -> ResponseSummary {
    var head = ResponseHead()
    var scan = 0
    var r = HeadParseResult.incomplete
    for k in cuts + [buf.count] {
        r = buf.withUnsafeBytes {
            HTTP1Parser.parseResponseHead(UnsafeRawBufferPointer(rebasing: $0[0..<k]), into: &head, limits: limits,
                                          requestMethod: method, scanFrom: &scan)
        }
        if r != .incomplete { break }
        XCTAssertTrue(scan >= 0 && scan <= k, "scanFrom \(scan) out of range for \(k) bytes")
    }
    return ResponseSummary(r, head, buf)
}

/// The split-invariance property: the one-shot result must equal the result of every single split point
/// (prefix then whole), of byte-at-a-time delivery, and of a few random multi-split deliveries.
func assertSplitInvariant(_ buf: [UInt8], limits: HTTP1Limits = HTTP1Limits(),
                          file: StaticString = #filePath, line: UInt = #line) {
    let whole = parseRequest(buf, limits: limits)
    XCTAssertNotEqual(whole.result, .incomplete, "example should be a complete head", file: file, line: line)
    for k in 0...buf.count {
        let r = feedRequest(buf, cuts: [k], limits: limits)
        if r != whole { XCTFail("split at \(k) of \(buf.count): \(r.result) vs \(whole.result)", file: file, line: line); return }
    }
    let byteAtATime = feedRequest(buf, cuts: Array(0..<buf.count), limits: limits)
    XCTAssertEqual(byteAtATime, whole, "byte at a time", file: file, line: line)
    var rng = SeededRandom(seed: UInt64(buf.count))
    for _ in 0..<20 {
        let cuts = (0..<Int.random(in: 1...6, using: &rng)).map { _ in Int.random(in: 0...buf.count, using: &rng) }.sorted()
        XCTAssertEqual(feedRequest(buf, cuts: cuts, limits: limits), whole, "cuts \(cuts)", file: file, line: line)
    }
}

func assertResponseSplitInvariant(_ buf: [UInt8], method: Method = .get, limits: HTTP1Limits = HTTP1Limits(),
                                  file: StaticString = #filePath, line: UInt = #line) {
    let whole = parseResponse(buf, method: method, limits: limits)
    XCTAssertNotEqual(whole.result, .incomplete, "example should be a complete head", file: file, line: line)
    for k in 0...buf.count {
        let r = feedResponse(buf, cuts: [k], method: method, limits: limits)
        if r != whole { XCTFail("split at \(k) of \(buf.count): \(r.result) vs \(whole.result)", file: file, line: line); return }
    }
    let byteAtATime = feedResponse(buf, cuts: Array(0..<buf.count), method: method, limits: limits)
    XCTAssertEqual(byteAtATime, whole, "byte at a time", file: file, line: line)
}

/// What decoding a body produced.
struct Decoded: Equatable {
    var data: [UInt8] = []
    var trailers: [[UInt8]] = []
    var consumed = 0
    var complete = false
    var error: HTTP1Error? = nil
}

/// Simulates a connection: `wire` arrives in pieces of the given sizes (the rest at the end); after each arrival
/// the decoder is called on the unconsumed bytes, with `maxData`, until it makes no progress.
func decodeBody(_ wire: [UInt8], framing: BodyFraming, arrivals: [Int] = [], maxData: Int = Int.max,
                limits: HTTP1Limits = HTTP1Limits()) -> Decoded {
    var dec = BodyDecoder(framing: framing, limits: limits)
    var out = Decoded()
    var arrived = 0
    var sizes = arrivals
    sizes.append(wire.count)
    for size in sizes {
        arrived = min(wire.count, arrived + size)
        while !dec.isComplete {
            let n: Int
            do {
                n = try wire[out.consumed..<arrived].withUnsafeBytes { input in
                    try dec.decode(input, maxData: maxData, onData: { d in
                        XCTAssertLessThanOrEqual(d.count, maxData)
                        out.data.append(contentsOf: d)
                    }, onTrailers: { t in out.trailers.append(Array(t)) })
                }
            } catch {
                out.error = error as? HTTP1Error
                XCTAssertNotNil(out.error, "decode threw \(error)")
                return out
            }
            XCTAssertLessThanOrEqual(n, arrived - out.consumed)
            out.consumed += n
            if n == 0 { break }
        }
    }
    out.complete = dec.isComplete
    return out
}

func chunked(_ pieces: [String], trailers: String = "") -> [UInt8] {
    var s = ""
    for p in pieces where !p.isEmpty { s += String(p.utf8.count, radix: 16) + "\r\n" + p + "\r\n" }
    s += "0\r\n" + trailers + "\r\n"
    return bytes(s)
}
