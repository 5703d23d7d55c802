/// The HTTP/1.1 head parsers (RFC 9112). Pure functions over the caller's bytes: no Strings,
/// no allocation beyond the reused header array.
///
/// Incremental use: the caller keeps every byte of the head in one buffer and calls again when
/// more arrive. The first call (`scanFrom == 0`) parses directly, which is the whole job when a
/// head arrives in one read. If it runs short, `scanFrom` records how far the bytes were checked;
/// later calls only scan the new bytes for the end of the head (or a bare CR/LF, or the size
/// limit) and run the full parse once, when it can finish. Total work is O(n) however the head
/// is split, and the final result equals that of parsing the whole buffer at once. Errors found
/// early (in the first call) are also exactly those the whole buffer would give.
public enum HTTP1Parser {
    /// `buf` holds every byte received so far for this head (the caller accumulates; it starts at the first byte of the head).
    /// `scanFrom` is a resume hint owned by the caller (start at 0; the parser advances it) so that a head arriving one byte
    /// at a time costs O(n) in total, not O(n^2). On .incomplete with buf.count >= limits.maxHeadBytes, return error 431.
    /// On .complete and .error, `scanFrom` is reset to 0, ready for the next head.
    public static func parseRequestHead(_ buf: UnsafeRawBufferPointer, into head: inout RequestHead,
                                        limits: HTTP1Limits, scanFrom: inout Int) -> HeadParseResult {
        let count = buf.count
        guard count > 0, let base = buf.baseAddress else { return starved(count, 0, limits, 431, &scanFrom) }
        let p = base.assumingMemoryBound(to: UInt8.self)
        // Bytes past the limit cannot belong to an acceptable head; never look at them.
        let end = min(count, max(limits.maxHeadBytes, 0))

        if scanFrom > 0 && scanFrom <= end {
            let requestLineStart = skipLeadingEmptyLines(p, end)
            if case .needMore(let resume) = scanForSectionEnd(p, sectionStart: requestLineStart, from: scanFrom, end: end),
               count < limits.maxHeadBytes {
                scanFrom = resume
                return .incomplete
            }
        }

        head.headers.removeAll(keepingCapacity: true)
        head.hostIndex = nil
        var i = skipLeadingEmptyLines(p, end)
        if i > 2 &* maxLeadingEmptyLines { return fail(.bad("too many empty lines before request line"), &scanFrom) }
        if i < end && p[i] == cr {
            // Not followed by LF, or not yet: the pair would have been skipped otherwise.
            if i &+ 1 >= end { return starved(count, end, limits, 431, &scanFrom, p) }
            return fail(.bad("bare CR"), &scanFrom)
        }
        if i >= end { return starved(count, end, limits, 431, &scanFrom, p) }

        switch readRequestLine(p, i, end, maxLine: limits.maxRequestLineBytes, into: &head) {
        case .done(let next): i = next
        case .starved: return starved(count, end, limits, 431, &scanFrom, p)
        case .invalid(let e): return fail(e, &scanFrom)
        }

        switch readFields(p, i, end, count: count, limits: limits, tooLarge: 431, invalid: 400,
                          into: &head.headers, scanFrom: &scanFrom) {
        case .end(let headBytes):
            head.headBytes = headBytes
            if let e = finishRequest(p, &head) { return .error(e) }
            return .complete
        case .stop(let result):
            return result
        }
    }

    /// Same for a response; the request's method decides framing (HEAD -> .none; 2xx to CONNECT -> .untilClose).
    /// Every error is 502. No empty lines are skipped before a status line.
    public static func parseResponseHead(_ buf: UnsafeRawBufferPointer, into head: inout ResponseHead,
                                         limits: HTTP1Limits, requestMethod: Method, scanFrom: inout Int) -> HeadParseResult {
        let count = buf.count
        guard count > 0, let base = buf.baseAddress else { return starved(count, 0, limits, 502, &scanFrom) }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let end = min(count, max(limits.maxHeadBytes, 0))

        if scanFrom > 0 && scanFrom <= end {
            if case .needMore(let resume) = scanForSectionEnd(p, sectionStart: 0, from: scanFrom, end: end),
               count < limits.maxHeadBytes {
                scanFrom = resume
                return .incomplete
            }
        }

        head.headers.removeAll(keepingCapacity: true)
        let i: Int
        switch readStatusLine(p, end, into: &head) {
        case .done(let next): i = next
        case .starved: return starved(count, end, limits, 502, &scanFrom, p)
        case .invalid(let e): return fail(e, &scanFrom)
        }

        switch readFields(p, i, end, count: count, limits: limits, tooLarge: 502, invalid: 502,
                          into: &head.headers, scanFrom: &scanFrom) {
        case .end(let headBytes):
            head.headBytes = headBytes
            if let e = finishResponse(p, &head, requestMethod: requestMethod) { return .error(e) }
            return .complete
        case .stop(let result):
            return result
        }
    }

    private enum FieldsOutcome { case end(headBytes: Int), stop(HeadParseResult) }

    /// The header field lines up to the empty line, shared by requests and responses;
    /// `tooLarge` is the status for too many fields or a head past the limit.
    @inline(__always)
    private static func readFields(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, count: Int,
                                   limits: HTTP1Limits, tooLarge: Int, invalid: Int,
                                   into headers: inout [HeaderField], scanFrom: inout Int) -> FieldsOutcome {
        var i = start
        while true {
            switch readFieldLine(p, i, end) {
            case .field(let nameEnd, let valueStart, let valueEnd, let next):
                if headers.count >= limits.maxHeaders {
                    return .stop(fail(HTTP1Error(status: tooLarge, reason: "too many header fields"), &scanFrom))
                }
                let token = HeaderToken.recognise(p + i, nameEnd &- i)
                headers.append(HeaderField(name: i..<nameEnd, value: valueStart..<valueEnd,
                                           token: token, hopByHop: token.isHopByHop))
                i = next
            case .blank(let next):
                scanFrom = 0
                return .end(headBytes: next)
            case .starved:
                return .stop(starved(count, end, limits, tooLarge, &scanFrom, p))
            case .invalid(let reason):
                return .stop(fail(HTTP1Error(status: invalid, reason: reason), &scanFrom))
            }
        }
    }

    @inline(__always)
    static func fail(_ e: HTTP1Error, _ scanFrom: inout Int) -> HeadParseResult {
        scanFrom = 0
        return .error(e)
    }

    /// The head does not end within the bytes we may look at: too large, or wait for more.
    /// Resumes at the last byte if it is a CR whose LF has not arrived yet.
    @inline(__always)
    static func starved(_ count: Int, _ end: Int, _ limits: HTTP1Limits, _ status: Int, _ scanFrom: inout Int,
                        _ p: UnsafePointer<UInt8>? = nil) -> HeadParseResult {
        if count >= limits.maxHeadBytes {
            scanFrom = 0
            return .error(HTTP1Error(status: status, reason: status == 431 ? "request head too large" : "response head too large"))
        }
        if let p, end > 0 {
            scanFrom = p[end &- 1] == cr ? end &- 1 : end
        } else {
            scanFrom = 0
        }
        return .incomplete
    }
}
