// Byte classes from RFC 9110/9112, as branch-light predicates over UInt8 (no tables to
// initialise, no bounds checks), plus the few byte-string comparisons the parser needs.

@usableFromInline let cr: UInt8 = 0x0D
@usableFromInline let lf: UInt8 = 0x0A
@usableFromInline let sp: UInt8 = 0x20
@usableFromInline let htab: UInt8 = 0x09
@usableFromInline let colon: UInt8 = 0x3A
@usableFromInline let comma: UInt8 = 0x2C
@usableFromInline let semicolon: UInt8 = 0x3B

/// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
/// Two 64-bit masks (bytes 0-63 and 64-127); bytes >= 128 are never tchar.
@inline(__always) @usableFromInline
func isTchar(_ b: UInt8) -> Bool {
    let mask: UInt64 = b < 64 ? 0x03ff_6cfa_0000_0000 : 0x57ff_ffff_c7ff_fffe
    return b < 128 && (mask >> UInt64(b & 63)) & 1 != 0
}

/// Bytes allowed in a Host value (RFC 9110 §7.2, RFC 3986 host [":" port]): unreserved, pct-encoded,
/// sub-delims, ":" and the brackets of an IP-literal. No userinfo "@", no "/", "?", "#", "\\" or spaces.
@inline(__always) @usableFromInline
func isHostByte(_ b: UInt8) -> Bool {
    let mask: UInt64 = b < 64 ? 0x2fff_7ff2_0000_0000 : 0x47ff_fffe_afff_fffe
    return b < 128 && (mask >> UInt64(b & 63)) & 1 != 0
}

/// Bytes allowed in a field value or reason phrase: HTAB, SP, VCHAR, obs-text. Not NUL, CR, LF, other CTLs or DEL.
@inline(__always) @usableFromInline
func isFieldByte(_ b: UInt8) -> Bool {
    b >= 0x20 ? b != 0x7F : b == htab
}

/// Bytes allowed in a request-target: visible ASCII only (no SP, CTL, DEL or obs-text).
@inline(__always) @usableFromInline
func isTargetByte(_ b: UInt8) -> Bool {
    b &- 0x21 < 0x5E
}

@inline(__always) @usableFromInline
func isOWS(_ b: UInt8) -> Bool { b == sp || b == htab }

/// Value of a hex digit, or 0xFF.
@inline(__always) @usableFromInline
func hexValue(_ b: UInt8) -> UInt8 {
    if b &- 0x30 < 10 { return b &- 0x30 }
    let l = b | 0x20
    if l &- 0x61 < 6 { return l &- 0x61 &+ 10 }
    return 0xFF
}

/// ASCII lower-casing of one byte (only A-Z change).
@inline(__always) @usableFromInline
func lower(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }

/// `p[0..<len]` equals `lit` (which must be lower-case ASCII) ignoring ASCII case.
@inline(__always) @usableFromInline
func equalsCaseInsensitive(_ p: UnsafePointer<UInt8>, _ len: Int, _ lit: StaticString) -> Bool {
    if len != lit.utf8CodeUnitCount { return false }
    let q = lit.utf8Start
    var k = 0
    while k < len {
        if lower(p[k]) != q[k] { return false }
        k &+= 1
    }
    return true
}

/// `p[0..<len]` equals `lit` exactly (methods and the HTTP-name are case-sensitive).
@inline(__always) @usableFromInline
func equalsExactly(_ p: UnsafePointer<UInt8>, _ len: Int, _ lit: StaticString) -> Bool {
    if len != lit.utf8CodeUnitCount { return false }
    let q = lit.utf8Start
    var k = 0
    while k < len {
        if p[k] != q[k] { return false }
        k &+= 1
    }
    return true
}

/// Two byte strings equal ignoring ASCII case (header names named by Connection).
@inline(__always) @usableFromInline
func equalsCaseInsensitive(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ len: Int) -> Bool {
    var k = 0
    while k < len {
        if lower(a[k]) != lower(b[k]) { return false }
        k &+= 1
    }
    return true
}

/// Iterates the elements of a comma-separated list (RFC 9110 §5.6.1) in `p[start..<end]`,
/// each trimmed of OWS. Empty elements are passed too (as empty ranges) so callers can
/// decide whether they are allowed. Returns false as soon as `body` does.
@inline(__always) @usableFromInline
func forEachListElement(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                        _ body: (Int, Int) -> Bool) -> Bool {
    var i = start
    while true {
        var s = i
        while i < end && p[i] != comma { i &+= 1 }
        var e = i
        while s < e && isOWS(p[s]) { s &+= 1 }
        while e > s && isOWS(p[e &- 1]) { e &-= 1 }
        if !body(s, e) { return false }
        if i >= end { return true }
        i &+= 1 // past the comma
    }
}

// SWAR (8 bytes per step) skips for the long runs of a head: field values and request targets.
// Each word test is exact as a yes/no ("some byte in these 8 is special"); the byte loop then
// finds which one, so the result is identical to a plain byte loop.

@usableFromInline let ones: UInt64 = 0x0101_0101_0101_0101
@usableFromInline let highs: UInt64 = 0x8080_8080_8080_8080

@inline(__always) @usableFromInline
func load8(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt64 {
    UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
}

/// Some byte of `x` is below `n` (n <= 128).
@inline(__always) @usableFromInline
func anyByteBelow(_ x: UInt64, _ n: UInt8) -> Bool {
    (x &- ones &* UInt64(n)) & ~x & highs != 0
}

/// Some byte of `x` equals `b`.
@inline(__always) @usableFromInline
func anyByteEquals(_ x: UInt64, _ b: UInt8) -> Bool {
    let y = x ^ (ones &* UInt64(b))
    return (y &- ones) & ~y & highs != 0
}

/// Some byte of `x` is 0x7F or above.
@inline(__always) @usableFromInline
func anyByteAbove7E(_ x: UInt64) -> Bool {
    ((x &+ ones) | x) & highs != 0
}

/// First index at or after `i` whose byte is not a field byte (HTAB, SP, VCHAR, obs-text), or `end`.
@inline(__always) @usableFromInline
func skipFieldBytes(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int {
    var i = start
    while true {
        while i &+ 8 <= end {
            let x = load8(p, i)
            if anyByteBelow(x, 0x20) || anyByteEquals(x, 0x7F) { break }
            i &+= 8
        }
        // Byte steps through the word that stopped the fast loop (a HTAB is fine and goes on).
        let stop = min(end, i &+ 8)
        while i < stop && isFieldByte(p[i]) { i &+= 1 }
        if i < stop || i >= end { return i }
    }
}

/// First index at or after `i` whose byte is not visible ASCII (0x21-0x7E), or `end`.
@inline(__always) @usableFromInline
func skipTargetBytes(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int {
    var i = start
    while i &+ 8 <= end {
        let x = load8(p, i)
        if anyByteBelow(x, 0x21) || anyByteAbove7E(x) { break }
        i &+= 8
    }
    while i < end && isTargetByte(p[i]) { i &+= 1 }
    return i
}
