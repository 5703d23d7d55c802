// Message semantics decided once the whole head is read: body framing (RFC 9112 §6.3),
// persistence (§9.3), Host, Expect, Upgrade, and Connection-nominated hop-by-hop fields.
// This is where request smuggling is stopped, so ambiguity is an error, not a guess.

/// What the framing-relevant fields of a head say, gathered in one pass over the parsed fields.
@usableFromInline
struct HeadFacts {
    var hostCount = 0
    var hostIndex = 0
    var clPresent = false
    var clValue: UInt64 = 0
    var clHasValue = false
    var clError: String? = nil
    var tePresent = false
    var chunkedCount = 0
    var lastIsChunked = false
    var close = false
    var keepAlive = false
    var upgradeToken = false
    var nominatesOthers = false     // Connection lists names other than close/keep-alive/upgrade
    var upgradeHeader = false
    var expectContinue = false

    /// Content-Length is never sent as a negative, signed, hex or larger-than-Int64 number; a list of
    /// identical values (repeated fields or "5, 5") counts as one (RFC 9110 §8.6), differing ones are fatal.
    @inline(__always)
    mutating func addContentLength(_ p: UnsafePointer<UInt8>, _ v: Range<Int>) {
        clPresent = true
        if clError != nil { return }
        let limit = UInt64(Int64.max)
        _ = forEachListElement(p, v.lowerBound, v.upperBound) { s, e in
            if s == e { clError = "invalid Content-Length"; return false }
            var n: UInt64 = 0
            var k = s
            while k < e {
                let d = p[k] &- 0x30
                if d >= 10 { clError = "invalid Content-Length"; return false }
                if n > (limit &- UInt64(d)) / 10 { clError = "Content-Length too large"; return false }
                n = n &* 10 &+ UInt64(d)
                k &+= 1
            }
            if clHasValue && n != clValue { clError = "conflicting Content-Length values"; return false }
            clValue = n
            clHasValue = true
            return true
        }
    }

    /// Transfer-Encoding may be split over fields and commas; only the order of codings matters.
    @inline(__always)
    mutating func addTransferEncoding(_ p: UnsafePointer<UInt8>, _ v: Range<Int>) {
        tePresent = true
        _ = forEachListElement(p, v.lowerBound, v.upperBound) { s, e in
            if s == e { return true }   // empty list elements are allowed and mean nothing
            if equalsCaseInsensitive(p + s, e &- s, "chunked") {
                chunkedCount &+= 1
                lastIsChunked = true
            } else {
                lastIsChunked = false
            }
            return true
        }
    }

    @inline(__always)
    mutating func addConnection(_ p: UnsafePointer<UInt8>, _ v: Range<Int>) {
        _ = forEachListElement(p, v.lowerBound, v.upperBound) { s, e in
            switch e &- s {
            case 0: break
            case 5 where equalsCaseInsensitive(p + s, 5, "close"): close = true
            case 10 where equalsCaseInsensitive(p + s, 10, "keep-alive"): keepAlive = true
            case 7 where equalsCaseInsensitive(p + s, 7, "upgrade"): upgradeToken = true
            default: nominatesOthers = true
            }
            return true
        }
    }

    @inline(__always)
    static func gather(_ p: UnsafePointer<UInt8>, _ headers: [HeaderField]) -> HeadFacts {
        var f = HeadFacts()
        var idx = 0
        for h in headers {
            switch h.token {
            case .host:
                f.hostCount &+= 1
                f.hostIndex = idx
            case .contentLength: f.addContentLength(p, h.value)
            case .transferEncoding: f.addTransferEncoding(p, h.value)
            case .connection: f.addConnection(p, h.value)
            case .upgrade: f.upgradeHeader = true
            case .expect:
                if equalsCaseInsensitive(p + h.value.lowerBound, h.value.count, "100-continue") { f.expectContinue = true }
            default: break
            }
            idx &+= 1
        }
        return f
    }
}

/// Marks every field named in a Connection header's list as hop-by-hop (RFC 9110 §7.6.1).
/// Only runs when Connection names something unusual, so the common case costs nothing.
///
/// Except Content-Length and Host: a client must not be able to make the proxy drop them.
/// "Connection: content-length" would otherwise strip the length from a forwarded request whose
/// body is still forwarded (the request smuggles its body as a second request), and dropping
/// Host would change routing upstream. Neither has any hop-by-hop meaning.
@usableFromInline
func markConnectionNominated(_ p: UnsafePointer<UInt8>, _ headers: inout [HeaderField]) {
    let n = headers.count
    var c = 0
    while c < n {
        if headers[c].token == .connection {
            let v = headers[c].value
            _ = forEachListElement(p, v.lowerBound, v.upperBound) { s, e in
                let len = e &- s
                if len == 0 { return true }
                var j = 0
                while j < n {
                    let name = headers[j].name
                    let token = headers[j].token
                    if !headers[j].hopByHop && name.count == len && token != .contentLength && token != .host
                        && equalsCaseInsensitive(p + name.lowerBound, p + s, len) {
                        headers[j].hopByHop = true
                    }
                    j &+= 1
                }
                return true
            }
        }
        c &+= 1
    }
}

/// Request semantics. Returns the error to answer with, or nil with `head` completed.
@inline(__always) @usableFromInline
func finishRequest(_ p: UnsafePointer<UInt8>, _ head: inout RequestHead) -> HTTP1Error? {
    let f = HeadFacts.gather(p, head.headers)
    let http11 = head.minorVersion == 1

    if f.hostCount > 1 { return .bad("multiple Host headers") }
    if f.hostCount == 0 && http11 { return .bad("missing Host header") }
    if f.hostCount == 1 {
        // RFC 9112 §3.2: an invalid Host value is a 400, like a missing or repeated one; the proxy
        // routes on it, so "a@b", "a/b" or "a b" must never get that far. (Empty is valid.)
        let v = head.headers[f.hostIndex].value
        var k = v.lowerBound
        while k < v.upperBound {
            if !isHostByte(p[k]) { return .bad("invalid Host header") }
            k &+= 1
        }
        head.hostIndex = f.hostIndex
    } else {
        head.hostIndex = nil
    }

    // RFC 9112 §6.1/§6.3: both present is the textbook smuggling vector; refuse outright.
    if f.tePresent && f.clPresent { return .bad("both Content-Length and Transfer-Encoding") }
    if f.tePresent {
        if !http11 { return .bad("Transfer-Encoding in HTTP/1.0 request") }
        if f.chunkedCount > 1 { return .bad("chunked applied more than once") }
        if !f.lastIsChunked { return .bad("final transfer coding is not chunked") }
        head.framing = .chunked
    } else if f.clPresent {
        if let e = f.clError { return .bad(e) }
        head.framing = .contentLength(f.clValue)
    } else {
        head.framing = .none
    }

    head.keepAlive = http11 ? !f.close : (f.keepAlive && !f.close)
    head.expectContinue = f.expectContinue && http11
    head.upgrade = f.upgradeHeader && f.upgradeToken && http11 && head.methodKind != .connect
    if f.nominatesOthers { markConnectionNominated(p, &head.headers) }
    return nil
}

/// Response semantics (RFC 9112 §6.3). Errors are 502: the upstream is at fault.
@inline(__always) @usableFromInline
func finishResponse(_ p: UnsafePointer<UInt8>, _ head: inout ResponseHead, requestMethod: Method) -> HTTP1Error? {
    let f = HeadFacts.gather(p, head.headers)
    let status = head.status

    if requestMethod == .head || status < 200 || status == 204 || status == 304 {
        head.framing = .none
    } else if requestMethod == .connect && status < 300 {
        head.framing = .untilClose      // a tunnel
    } else if f.tePresent {
        if f.chunkedCount > 1 { return HTTP1Error(status: 502, reason: "chunked applied more than once") }
        head.framing = f.lastIsChunked ? .chunked : .untilClose
    } else if f.clPresent {
        if let e = f.clError { return HTTP1Error(status: 502, reason: e) }
        head.framing = .contentLength(f.clValue)
    } else {
        head.framing = .untilClose
    }

    var keepAlive = head.minorVersion == 1 ? !f.close : (f.keepAlive && !f.close)
    if head.framing == .untilClose { keepAlive = false }
    // TE overrides CL, but such a message "ought to be handled as an error" (§6.3): do not reuse the connection.
    if f.tePresent && f.clPresent { keepAlive = false }
    head.keepAlive = keepAlive
    if f.nominatesOthers { markConnectionNominated(p, &head.headers) }
    return nil
}
