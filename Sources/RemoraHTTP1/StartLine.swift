// Request line and status line (RFC 9112 §3, §4), read byte by byte in order so that the
// first bad byte decides the error whatever the split of the input.

/// Outcome of reading a start line: where the header section begins, or why not.
@usableFromInline
enum StartLine {
    case done(next: Int)
    case starved
    case invalid(HTTP1Error)
}

/// Up to this many empty lines before a request line are skipped (RFC 9112 §2.2 asks for at
/// least one). Bounded so a stream of CRLFs cannot hold the connection or cost quadratic rescans.
@usableFromInline let maxLeadingEmptyLines = 8

/// Skips up to `maxLeadingEmptyLines + 1` empty lines before a request line and returns the offset
/// after them; the parser reports an error if that is more than allowed, or if a CR there is bare.
@inline(__always) @usableFromInline
func skipLeadingEmptyLines(_ p: UnsafePointer<UInt8>, _ end: Int) -> Int {
    var i = 0
    var n = 0
    while n <= maxLeadingEmptyLines && i &+ 1 < end && p[i] == cr && p[i &+ 1] == lf {
        i &+= 2
        n &+= 1
    }
    return i
}

@inline(__always) @usableFromInline
func requestError(_ status: Int, _ reason: String) -> StartLine { .invalid(HTTP1Error(status: status, reason: reason)) }

/// `method SP request-target SP HTTP/1.x CRLF` starting at `start`. Any byte of the line at
/// `start + maxLine` or later (other than the CR ending it) -> 414, checked by position so the
/// result does not depend on how much has arrived.
@inline(__always) @usableFromInline
func readRequestLine(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxLine: Int,
                     into head: inout RequestHead) -> StartLine {
    let maxLine = max(maxLine, 0)
    let lineCap = maxLine > end &- start ? end &+ 1 : start &+ maxLine   // saturating start + maxLine
    let lim = min(end, lineCap)
    var i = start

    // method = token
    while i < lim && isTchar(p[i]) { i &+= 1 }
    if i == lim { return i == lineCap ? requestError(414, "request line too long") : .starved }
    if p[i] != sp || i == start {
        return requestError(400, p[i] == lf ? "bare LF" : "invalid method or request line")
    }
    let methodEnd = i
    i &+= 1

    // request-target: visible ASCII. Its form (origin, absolute, authority, asterisk) is the proxy's business.
    let targetStart = i
    i = skipTargetBytes(p, i, lim)
    if i == lim { return i == lineCap ? requestError(414, "request line too long") : .starved }
    if p[i] != sp || i == targetStart {
        return requestError(400, i == targetStart ? "empty request target" : "invalid character in request target")
    }
    let targetEnd = i
    i &+= 1

    // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
    var k = 0
    while k < 8 {
        let q = i &+ k
        if q >= lineCap { return requestError(414, "request line too long") }
        if q >= end { return .starved }
        let b = p[q]
        let ok: Bool
        switch k {
        case 5, 7: ok = b &- 0x30 < 10
        case 6: ok = b == 0x2E
        default: ok = b == ("HTTP/" as StaticString).utf8Start[k]
        }
        if !ok { return requestError(400, "malformed HTTP version") }
        k &+= 1
    }
    let major = p[i &+ 5] &- 0x30
    let minor = p[i &+ 7] &- 0x30
    if major != 1 || minor > 1 { return requestError(505, "HTTP version not supported") }
    i &+= 8
    // The CR may sit exactly at lineCap (the limit counts the line without its CRLF).
    if i > lineCap { return requestError(414, "request line too long") }
    if i >= end { return .starved }
    if p[i] != cr { return requestError(400, p[i] == lf ? "bare LF" : "malformed request line") }
    if i &+ 1 >= end { return .starved }
    if p[i &+ 1] != lf { return requestError(400, "bare CR") }

    head.method = start..<methodEnd
    head.methodKind = Method.recognise(p + start, methodEnd &- start)
    head.target = targetStart..<targetEnd
    head.minorVersion = minor
    return .done(next: i &+ 2)
}

@inline(__always) @usableFromInline
func responseError(_ reason: String) -> StartLine { .invalid(HTTP1Error(status: 502, reason: reason)) }

/// `HTTP/1.x SP 3DIGIT [SP reason-phrase] CRLF` at offset 0. A missing reason phrase (and its SP)
/// is tolerated: common in the wild and harmless, since the proxy regenerates it if empty.
@inline(__always) @usableFromInline
func readStatusLine(_ p: UnsafePointer<UInt8>, _ end: Int, into head: inout ResponseHead) -> StartLine {
    // "HTTP/" DIGIT "." DIGIT SP DIGIT DIGIT DIGIT: 12 fixed bytes.
    var k = 0
    while k < 12 {
        if k >= end { return .starved }
        let b = p[k]
        let ok: Bool
        switch k {
        case 5, 7, 9, 10, 11: ok = b &- 0x30 < 10
        case 6: ok = b == 0x2E
        case 8: ok = b == sp
        default: ok = b == ("HTTP/" as StaticString).utf8Start[k]
        }
        if !ok { return responseError(k < 8 ? "malformed HTTP version" : "malformed status code") }
        if k == 7 && (p[5] != 0x31 || b > 0x31) { return responseError("HTTP version not supported") }
        k &+= 1
    }
    let status = Int(p[9] &- 0x30) &* 100 &+ Int(p[10] &- 0x30) &* 10 &+ Int(p[11] &- 0x30)
    // RFC 9110 §15: values outside 100...599 are invalid.
    if status < 100 || status > 599 { return responseError("invalid status code") }
    var i = 12
    if i >= end { return .starved }
    var reasonStart = i
    if p[i] == sp {
        i &+= 1
        reasonStart = i
        i = skipFieldBytes(p, i, end)
        if i >= end { return .starved }
    }
    if p[i] != cr {
        return responseError(p[i] == lf ? "bare LF" : "invalid character in status line")
    }
    if i &+ 1 >= end { return .starved }
    if p[i &+ 1] != lf { return responseError("bare CR") }

    head.status = status
    head.reason = reasonStart..<i
    head.minorVersion = p[7] &- 0x30
    return .done(next: i &+ 2)
}
