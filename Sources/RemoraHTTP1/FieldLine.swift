/// One line of a header or trailer section, read in a single forward pass (RFC 9112 §5, §2.2).
@usableFromInline
enum FieldLine {
    /// "name: value" CRLF; the name starts where reading started. `valueEnd` is already OWS-trimmed.
    case field(nameEnd: Int, valueStart: Int, valueEnd: Int, next: Int)
    /// The empty line that ends the section.
    case blank(next: Int)
    /// The line does not end before `end`: wait for more bytes.
    case starved
    case invalid(String)
}

/// Reads the line starting at `i`. Every byte is checked in order, so the first offending byte
/// decides the error whatever the split of the input, and a prefix never yields an error the
/// whole input would not.
@inline(__always) @usableFromInline
func readFieldLine(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> FieldLine {
    var i = start
    if i >= end { return .starved }
    let first = p[i]
    if first == cr {
        if i &+ 1 >= end { return .starved }
        return p[i &+ 1] == lf ? .blank(next: i &+ 2) : .invalid("bare CR")
    }
    // A line starting with whitespace is obs-fold (or whitespace before the first field):
    // RFC 9112 §5.2 lets us reject it, and accepting it is a classic smuggling vector.
    if isOWS(first) { return .invalid("obs-fold or leading whitespace in header line") }

    while i < end && isTchar(p[i]) { i &+= 1 }
    if i >= end { return .starved }
    let c = p[i]
    if c != colon {
        if c == lf { return .invalid("bare LF") }
        if i == start { return .invalid("invalid header name") }
        if isOWS(c) { return .invalid("whitespace between header name and colon") }
        if c == cr { return .invalid("header line without colon") }
        return .invalid("invalid character in header name")
    }
    if i == start { return .invalid("empty header name") }
    let nameEnd = i
    i &+= 1
    while i < end && isOWS(p[i]) { i &+= 1 }
    let valueStart = i
    i = skipFieldBytes(p, i, end)
    if i >= end { return .starved }
    let v = p[i]
    if v != cr { return .invalid(v == lf ? "bare LF" : "invalid character in header value") }
    if i &+ 1 >= end { return .starved }
    if p[i &+ 1] != lf { return .invalid("bare CR") }
    var valueEnd = i
    while valueEnd > valueStart && isOWS(p[valueEnd &- 1]) { valueEnd &-= 1 }
    return .field(nameEnd: nameEnd, valueStart: valueStart, valueEnd: valueEnd, next: i &+ 2)
}

/// Finds the empty line ending a header/trailer section without parsing it, resuming at `from`
/// (bytes before it were already scanned). Used when a head or trailer section arrives in pieces,
/// so the full parse runs once, when it can succeed or fail, and total work stays O(n).
///
/// `sectionStart` is where the first line of the section begins: an empty line there ends
/// the section too (an empty trailer section). Returns `.found` also on a bare CR or bare LF
/// (the full parse then reports it), otherwise `.needMore` with the offset to resume from.
@usableFromInline
enum SectionScan { case found, needMore(resume: Int) }

@inline(__always) @usableFromInline
func scanForSectionEnd(_ p: UnsafePointer<UInt8>, sectionStart: Int, from: Int, end: Int) -> SectionScan {
    var i = from
    while i < end {
        // Skip words with no byte below 0x0E (so no CR, no LF), then look at single bytes.
        while i &+ 8 <= end && !anyByteBelow(load8(p, i), 0x0E) { i &+= 8 }
        if i >= end { break }
        let b = p[i]
        if b > cr { i &+= 1; continue }          // the common case: not CR, not LF
        if b == lf { return .found }             // a LF not eaten as part of CRLF below: bare LF
        if b == cr {
            if i &+ 1 >= end { return .needMore(resume: i) }   // re-check this CR when its LF arrives
            if p[i &+ 1] != lf { return .found }              // bare CR
            // CRLF at i. An empty line if it starts the section or follows another CRLF.
            if i == sectionStart { return .found }
            if i &- 2 >= sectionStart && p[i &- 1] == lf && p[i &- 2] == cr { return .found }
            i &+= 2
            continue
        }
        i &+= 1
    }
    return .needMore(resume: i)
}
