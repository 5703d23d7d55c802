// libFuzzer target for RemoraHTTP1, compiled together with the module's sources (see run.sh).
//
// Besides "never crash or trap" (out-of-bounds reads under ASan, integer overflow, exclusivity,
// preconditions), it checks properties the proxy relies on, and traps if they fail:
//  - a head parsed in two pieces (prefix, then everything) gives the same result as in one piece;
//  - every range the parser returns lies inside the head, and headBytes within the input;
//  - a body decoded in small pieces with small budgets gives the same data, trailers, consumed
//    count and error as decoded in one go, and never exceeds its budget or the input.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    // Small limits some of the time, so the limit paths are reached by small inputs.
    let seed = size > 0 ? data[size &- 1] : 0
    var limits = HTTP1Limits()
    if seed & 3 == 1 {
        limits = HTTP1Limits(maxHeadBytes: 64 + Int(seed), maxHeaders: Int(seed >> 4))
        limits.maxRequestLineBytes = 16 + Int(seed >> 1)
    } else if seed & 7 == 3 {
        // Nonsense configuration (zero or negative limits) must not trap either.
        limits = HTTP1Limits(maxHeadBytes: Int(seed) - 128, maxHeaders: Int(seed >> 4) - 4)
        limits.maxRequestLineBytes = Int(seed) - 200
    }

    // Request head, then its body.
    var req = RequestHead()
    var scan = 0
    let r = HTTP1Parser.parseRequestHead(input, into: &req, limits: limits, scanFrom: &scan)
    checkSplit(input, limits: limits, expected: r, head: req)
    if r == .complete {
        precondition(req.headBytes > 0 && req.headBytes <= size)
        for h in req.headers {
            precondition(!h.name.isEmpty && h.name.upperBound <= h.value.lowerBound && h.value.upperBound <= req.headBytes)
        }
        precondition(req.method.upperBound < req.target.lowerBound && req.target.upperBound < req.headBytes)
        if let i = req.hostIndex { precondition(req.headers[i].token == .host) }
        checkBody(UnsafeRawBufferPointer(rebasing: input[req.headBytes...]), framing: req.framing, seed: seed)
    }

    // The same bytes as a response head, for a method picked from the input.
    let method = Method(rawValue: UInt8(size % 10)) ?? .get
    var res = ResponseHead()
    scan = 0
    let s = HTTP1Parser.parseResponseHead(input, into: &res, limits: limits, requestMethod: method, scanFrom: &scan)
    if case .error(let e) = s { precondition(e.status == 502) }
    if s == .complete {
        precondition(res.headBytes > 0 && res.headBytes <= size && res.status >= 100 && res.status <= 599)
        precondition(res.reason.upperBound < res.headBytes)
        if res.framing == .untilClose { precondition(!res.keepAlive) }
        checkBody(UnsafeRawBufferPointer(rebasing: input[res.headBytes...]), framing: res.framing, seed: seed &+ 1)
    }

    // The chunk-size writer, on a size taken from the input.
    if size >= 8 {
        let n = Int(bitPattern: UInt(input.loadUnaligned(as: UInt64.self)))
        withUnsafeTemporaryAllocation(byteCount: 18, alignment: 1) { out in
            let len = HTTP1Parser.writeChunkHeader(size: n, to: out.baseAddress!)
            precondition(len >= 3 && len <= 18 && out[len &- 2] == 13 && out[len &- 1] == 10)
        }
    }
    _ = HTTP1Parser.reasonPhrase(Int(seed) &* 3)
    return 0
}

/// Parses `input[0..<cut]`, then all of `input`, with one head and one scanFrom, and compares with the one-shot parse.
func checkSplit(_ input: UnsafeRawBufferPointer, limits: HTTP1Limits, expected: HeadParseResult, head expectedHead: RequestHead) {
    guard input.count > 1 else { return }
    let cut = Int(input[0] ^ input[input.count / 2]) % input.count
    var head = RequestHead()
    var scan = 0
    var r = HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: input[..<cut]), into: &head, limits: limits, scanFrom: &scan)
    if r == .incomplete {
        precondition(scan >= 0 && scan <= cut)
        r = HTTP1Parser.parseRequestHead(input, into: &head, limits: limits, scanFrom: &scan)
    }
    if r == .incomplete, case .error = expected {
        // Allowed: after the first call, later calls only look for the end of the head (or a bare
        // CR/LF, or the limit) before parsing, so an error inside a head that has not ended yet is
        // reported when it ends. Once it ends, the error must be the one-shot one.
        precondition(scan >= 0 && scan <= input.count)
        let ended = Array(input) + [13, 10, 13, 10]
        r = ended.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, into: &head, limits: limits, scanFrom: &scan) }
    }
    precondition(r == expected, "split at \(cut): \(r) vs \(expected)")
    if r == .complete {
        precondition(head.headBytes == expectedHead.headBytes && head.framing == expectedHead.framing
                     && head.headers.count == expectedHead.headers.count && head.keepAlive == expectedHead.keepAlive
                     && head.hostIndex == expectedHead.hostIndex && head.upgrade == expectedHead.upgrade)
        for (a, b) in zip(head.headers, expectedHead.headers) {
            precondition(a.name == b.name && a.value == b.value && a.token == b.token && a.hopByHop == b.hopByHop)
        }
    }
}

struct BodyOutcome: Equatable {
    var data: [UInt8] = []
    var trailers: [[UInt8]] = []
    var consumed = 0
    var complete = false
    var error: HTTP1Error? = nil
}

/// Decodes `body` once in one call with no budget limit, and once as a slow connection would: bytes
/// arriving a few at a time, small budgets. Both must agree.
func checkBody(_ body: UnsafeRawBufferPointer, framing: BodyFraming, seed: UInt8) {
    let whole = decode(body, framing: framing, seed: nil)
    let slow = decode(body, framing: framing, seed: seed)
    precondition(whole == slow, "body decoded differently in pieces")
}

func decode(_ body: UnsafeRawBufferPointer, framing: BodyFraming, seed: UInt8?) -> BodyOutcome {
    var dec = BodyDecoder(framing: framing, limits: HTTP1Limits(maxHeadBytes: 256, maxHeaders: 8))
    var out = BodyOutcome()
    var state = UInt32(seed ?? 0) &* 2_654_435_761 &+ 1
    func next(_ bound: Int) -> Int {      // xorshift: small pseudo-random steps derived from the input
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        return 1 &+ Int(state % UInt32(bound))
    }
    var arrived = seed == nil ? body.count : 0
    var stuck = 0
    while !dec.isComplete {
        if arrived < body.count { arrived = min(body.count, arrived &+ next(7)) }
        let maxData = seed == nil ? Int.max : next(5)
        let window = UnsafeRawBufferPointer(rebasing: body[out.consumed..<arrived])
        var delivered = 0
        let n: Int
        do {
            n = try dec.decode(window, maxData: maxData, onData: { d in
                precondition(d.count > 0 && d.count <= window.count)
                delivered &+= d.count
                out.data.append(contentsOf: d)
            }, onTrailers: { t in out.trailers.append(Array(t)) })
        } catch {
            // A throwing call returns no count, so what it consumed before the error is unknown
            // (and irrelevant: the connection is dropped). Compare the error and the data only.
            out.error = error
            out.consumed = -1
            break
        }
        precondition(n >= 0 && n <= window.count && delivered <= maxData && delivered <= n)
        out.consumed &+= n
        if n == 0 {
            // No progress is only legitimate while waiting for bytes that have not arrived yet.
            if arrived == body.count { stuck &+= 1; if stuck > 1 { break } }
        } else {
            stuck = 0
        }
    }
    out.complete = dec.isComplete
    return out
}
