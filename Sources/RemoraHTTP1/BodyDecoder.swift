/// A chunk-size line (size, extensions, CRLF) longer than this is refused: real ones are a few bytes,
/// and the bound keeps a peer from making us rescan an endless line.
@usableFromInline let maxChunkLineBytes = 4 * 1024

/// Streams a message body: Content-Length, chunked (with trailers) or until-close. Never buffers the body.
///
/// Data is handed out as slices of the caller's input; framing elements that have not fully
/// arrived (a chunk-size line, the chunk's CRLF, the trailer section) are left unconsumed and
/// re-presented by the caller on the next call. A resume offset remembers how much of such an
/// element was already scanned, so one arriving byte by byte still costs O(n).
public struct BodyDecoder: Sendable {
    @usableFromInline
    enum State: Sendable {
        case done
        case length(remaining: UInt64)
        case untilClose
        case chunkSize
        case chunkData(remaining: UInt64)
        case chunkDataEnd
        case trailers
        case failed(HTTP1Error)
    }

    @usableFromInline var state: State
    /// Bytes at the start of the next input already scanned for the end of the pending element.
    @usableFromInline var pendingScanned = 0
    @usableFromInline let maxTrailerBytes: Int
    @usableFromInline let maxTrailerFields: Int

    public init(framing: BodyFraming) {
        self.init(framing: framing, limits: HTTP1Limits())
    }

    /// `limits.maxHeadBytes` / `maxHeaders` bound the trailer section of a chunked body.
    public init(framing: BodyFraming, limits: HTTP1Limits) {
        switch framing {
        case .none, .contentLength(0): state = .done
        case .contentLength(let n): state = .length(remaining: n)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
        maxTrailerBytes = max(limits.maxHeadBytes, 0)
        maxTrailerFields = limits.maxHeaders
    }

    /// True at once for .none and .contentLength(0).
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes bytes of `input` (which starts right after what the previous call consumed). Calls `onData` for each run of
    /// body bytes (a slice of `input`), at most `maxData` body bytes in this call (back-pressure: the caller passes how much
    /// it can take). For chunked, the decoded data only (framing stripped); the trailer section is delivered once, complete
    /// and validated like header lines, to `onTrailers` as the raw bytes of its lines ("Name: value\r\n"..., without the final
    /// empty line; possibly empty when there are none). Incomplete framing elements (a partial chunk-size line, a partial
    /// trailer section) are left unconsumed for the next call. Returns the number of bytes of `input` consumed.
    /// Framing after the data (a chunk's CRLF, the next size line, the last chunk and trailers) is consumed even when the
    /// data budget is spent, so completion is seen as early as possible. Errors are status 400 and final.
    public mutating func decode(_ input: UnsafeRawBufferPointer, maxData: Int,
                                onData: (UnsafeRawBufferPointer) -> Void,
                                onTrailers: (UnsafeRawBufferPointer) -> Void) throws(HTTP1Error) -> Int {
        let count = input.count
        guard let base = input.baseAddress, count > 0 else {
            if case .failed(let e) = state { throw e }
            return 0
        }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var budget = max(maxData, 0)
        var i = 0

        while true {
            switch state {
            case .done:
                return i

            case .length(let remaining):
                let n = Int(clamping: min(remaining, UInt64(min(count &- i, budget))))
                if n > 0 {
                    onData(UnsafeRawBufferPointer(start: base + i, count: n))
                    i &+= n
                }
                let left = remaining &- UInt64(n)
                state = left == 0 ? .done : .length(remaining: left)
                return i

            case .untilClose:
                let n = min(count &- i, budget)
                if n > 0 {
                    onData(UnsafeRawBufferPointer(start: base + i, count: n))
                    i &+= n
                }
                return i

            case .chunkData(let remaining):
                let n = Int(clamping: min(remaining, UInt64(min(count &- i, budget))))
                if n > 0 {
                    onData(UnsafeRawBufferPointer(start: base + i, count: n))
                    i &+= n
                    budget &-= n
                }
                let left = remaining &- UInt64(n)
                if left > 0 {
                    state = .chunkData(remaining: left)
                    return i
                }
                state = .chunkDataEnd

            case .chunkDataEnd:
                // Chunk data must be followed by exactly CRLF.
                if i >= count { return i }
                if p[i] != cr { try fail("missing CRLF after chunk data") }
                if i &+ 1 >= count { return i }
                if p[i &+ 1] != lf { try fail("missing CRLF after chunk data") }
                i &+= 2
                state = .chunkSize

            case .chunkSize:
                switch try readChunkSizeLine(p, i, count) {
                case .needMore:
                    return i
                case .size(let size, let next):
                    i = next
                    state = size == 0 ? .trailers : .chunkData(remaining: size)
                }

            case .trailers:
                guard let next = try readTrailers(p, i, count, onTrailers: onTrailers) else { return i }
                i = next
                state = .done

            case .failed(let e):
                throw e
            }
        }
    }

    /// The peer closed: returns true if that legitimately ends the body (.untilClose, or already complete).
    public mutating func finishAtEOF() -> Bool {
        switch state {
        case .done: return true
        case .untilClose:
            state = .done
            return true
        default:
            return false
        }
    }

    @usableFromInline
    mutating func fail(_ reason: String) throws(HTTP1Error) -> Never {
        let e = HTTP1Error.bad(reason)
        state = .failed(e)
        throw e
    }

    @usableFromInline
    enum SizeLine { case needMore, size(UInt64, next: Int) }

    /// chunk-size [ chunk-ext ] CRLF, starting at `start`. Extensions (`;name[=value]`, with BWS) are
    /// skipped, not interpreted; they may only hold field bytes. At most 16 hex digits, so no overflow.
    @usableFromInline
    mutating func readChunkSizeLine(_ p: UnsafePointer<UInt8>, _ start: Int, _ count: Int) throws(HTTP1Error) -> SizeLine {
        // Find the LF, resuming where the previous call stopped.
        let limit = min(count, start &+ maxChunkLineBytes)
        var j = start &+ pendingScanned
        if j > limit { j = start }                // the caller did not re-present the same bytes
        while j < limit && p[j] != lf { j &+= 1 }
        if j >= limit {
            if limit &- start >= maxChunkLineBytes { try fail("chunk size line too long") }
            pendingScanned = j &- start
            return .needMore
        }
        pendingScanned = 0
        let lfAt = j
        if lfAt == start || p[lfAt &- 1] != cr { try fail("bare LF in chunked framing") }
        let crAt = lfAt &- 1

        var i = start
        var size: UInt64 = 0
        while i < crAt {
            let h = hexValue(p[i])
            if h == 0xFF { break }
            if i &- start >= 16 { try fail("chunk size too large") }
            size = size << 4 | UInt64(h)
            i &+= 1
        }
        if i == start { try fail("missing chunk size") }
        // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ); whitespace alone is not an extension.
        var k = i
        while k < crAt && isOWS(p[k]) { k &+= 1 }
        if k < crAt {
            if p[k] != semicolon { try fail("invalid chunk size") }
            while k < crAt {
                if !isFieldByte(p[k]) { try fail(p[k] == cr ? "bare CR in chunked framing" : "invalid chunk extension") }
                k &+= 1
            }
        } else if k > i {
            try fail("invalid chunk size")
        }
        return .size(size, next: lfAt &+ 1)
    }

    /// The trailer section starting at `start`, once complete and valid: delivers its lines and returns
    /// the offset after its final empty line; nil to wait for more.
    @usableFromInline
    mutating func readTrailers(_ p: UnsafePointer<UInt8>, _ start: Int, _ count: Int,
                               onTrailers: (UnsafeRawBufferPointer) -> Void) throws(HTTP1Error) -> Int? {
        let limit = min(count, start &+ min(maxTrailerBytes, Int.max &- start))
        var from = start &+ pendingScanned
        if from > limit { from = start }
        if case .needMore(let resume) = scanForSectionEnd(p, sectionStart: start, from: from, end: limit) {
            if count &- start >= maxTrailerBytes { try fail("trailer section too large") }
            pendingScanned = resume &- start
            return nil
        }
        // Found the end (or a bare CR/LF): validate every line in order, as for a head.
        var i = start
        var fields = 0
        while true {
            switch readFieldLine(p, i, limit) {
            case .field(_, _, _, let next):
                fields &+= 1
                if fields > maxTrailerFields { try fail("too many trailer fields") }
                i = next
            case .blank(let next):
                pendingScanned = 0
                onTrailers(UnsafeRawBufferPointer(start: UnsafeRawPointer(p + start), count: i &- start))
                return next
            case .starved:
                // Only reachable at the size limit.
                try fail("trailer section too large")
            case .invalid(let reason):
                try fail(reason)
            }
        }
    }
}
