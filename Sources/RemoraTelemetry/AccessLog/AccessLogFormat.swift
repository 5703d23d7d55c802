/// The access log's line format: one JSON object per line, with the keys Envoy's JSON
/// access logs use (Istio's default JSON encoding) where one exists.
///
/// A line is composed in scratch memory sized for the worst case (every byte escaped)
/// and appended to the caller's buffer in one copy: no Foundation, no intermediate
/// Strings, no per-field bounds checks or uniqueness checks.
public enum AccessLogFormat {
    public static func write(_ e: AccessLogEntry, into out: inout [UInt8]) {
        // On the stack when small enough; long lines may take a heap block here. Workers
        // go through `AccessLogBuffer`, whose scratch memory is reused instead.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxLineBytes(e)) { scratch in
            compose(e, scratch.baseAddress!, into: &out)
        }
    }

    static func write(_ e: AccessLogEntry, into out: inout [UInt8], scratch: LineScratch) {
        compose(e, scratch.reserve(maxLineBytes(e)), into: &out)
    }

    /// The worst case: fixed text (keys, numbers, timestamp, flags) stays well under
    /// 1 KiB, and each string byte becomes at most 6 ("\u00XX").
    @inline(__always) static func maxLineBytes(_ e: AccessLogEntry) -> Int {
        let textBytes = e.method.utf8.count + e.authority.utf8.count + e.path.utf8.count + e.protocol.utf8.count
            + (e.upstreamHost?.utf8.count ?? 0) + (e.upstreamCluster?.utf8.count ?? 0)
            + (e.routeName?.utf8.count ?? 0) + (e.requestID?.utf8.count ?? 0) + (e.downstreamPeer?.utf8.count ?? 0)
        return 1024 + textBytes * 6
    }

    /// Composes the line in `scratch` (at least `maxLineBytes(e)`) and appends it in one copy.
    private static func compose(_ e: AccessLogEntry, _ scratch: UnsafeMutablePointer<UInt8>, into out: inout [UInt8]) {
        var w = LineWriter(scratch)
        w.raw(#"{"start_time":""#)
        RFC3339.write(seconds: e.startTime.seconds, nanos: e.startTime.nanos, into: &w)
        w.raw(#"","method":"#)
        w.string(e.method)
        w.raw(#","path":"#)
        w.string(e.path)
        w.raw(#","protocol":"#)
        w.string(e.protocol)
        w.raw(#","response_code":"#)
        w.int(e.status)
        w.raw(#","response_flags":""#)
        w.flags(e.flags)
        w.raw(#"","bytes_received":"#)
        w.int(e.bytesReceived)
        w.raw(#","bytes_sent":"#)
        w.int(e.bytesSent)
        w.raw(#","duration":"#)
        w.int(e.durationMs)
        w.raw(#","upstream_host":"#)
        w.optional(e.upstreamHost)
        w.raw(#","upstream_cluster":"#)
        w.optional(e.upstreamCluster)
        w.raw(#","x_request_id":"#)
        w.optional(e.requestID)
        w.raw(#","authority":"#)
        w.string(e.authority)
        w.raw(#","route_name":"#)
        w.optional(e.routeName)
        w.raw(#","grpc_status":"#)
        if e.grpcStatus >= 0 { w.int(e.grpcStatus) } else { w.raw("null") }
        w.raw(#","downstream_remote_address":"#)
        w.optional(e.downstreamPeer)
        w.raw("}\n")
        out.append(contentsOf: UnsafeBufferPointer(start: scratch, count: w.count))
    }

    /// A quoted JSON string.
    public static func appendJSONString(_ s: String, into out: inout [UInt8]) {
        var s = s  // withUTF8 is mutating (it may make a bridged string native); a native one is not copied
        s.withUTF8 { appendJSONString(bytes: UnsafeRawBufferPointer($0), into: &out) }
    }

    /// A quoted JSON string from raw bytes (e.g. a header value straight from the read
    /// buffer): quotes, backslashes and control characters escaped, invalid UTF-8
    /// replaced by U+FFFD, so the line stays one valid JSON object whatever a client sent.
    public static func appendJSONString(bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count * 6 + 2) { scratch in
            var w = LineWriter(scratch.baseAddress!)
            w.string(bytes.bindMemory(to: UInt8.self))
            out.append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress, count: w.count))
        }
    }

    /// Decimal digits without building a String.
    static func appendInt(_ v: Int, into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { scratch in
            var w = LineWriter(scratch.baseAddress!)
            w.int(v)
            out.append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress, count: w.count))
        }
    }
}

/// Writes into memory the caller sized for the worst case, so it checks nothing.
struct LineWriter {
    let base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0

    init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    @inline(__always) mutating func byte(_ b: UInt8) {
        base[count] = b
        count &+= 1
    }

    @inline(__always) mutating func raw(_ s: StaticString) {
        (base + count).update(from: s.utf8Start, count: s.utf8CodeUnitCount)
        count &+= s.utf8CodeUnitCount
    }

    mutating func int(_ v: Int) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits = 1
        var t = m
        while t >= 10 { t /= 10; digits &+= 1 }
        var i = count &+ digits
        count = i
        repeat {
            i &-= 1
            base[i] = UInt8(truncatingIfNeeded: m % 10) &+ 0x30
            m /= 10
        } while m != 0
    }

    /// Zero-padded to `width` digits (a wider number is written in full).
    mutating func padded(_ v: Int, _ width: Int) {
        if v >= 0 {
            var digits = 1
            var t = v
            while t >= 10 { t /= 10; digits &+= 1 }
            while digits < width { byte(UInt8(ascii: "0")); digits &+= 1 }
        }
        int(v)
    }

    mutating func flags(_ f: ResponseFlags) {
        var bits = f.rawValue
        var first = true
        while bits != 0 {
            let bit = bits.trailingZeroBitCount
            bits &= bits &- 1
            guard bit < ResponseFlags.shortNames.count else { continue }
            if !first { byte(UInt8(ascii: ",")) }
            first = false
            raw(ResponseFlags.shortNames[bit])
        }
        if first { byte(UInt8(ascii: "-")) }
    }

    @inline(__always) mutating func optional(_ s: String?) {
        if let s { string(s) } else { raw("null") }
    }

    @inline(__always) mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string($0) }
    }

    /// Quoted and escaped; invalid UTF-8 becomes U+FFFD (at most 6 bytes per input byte).
    /// Runs of bytes that need nothing are copied at once.
    mutating func string(_ p: UnsafeBufferPointer<UInt8>) {
        byte(UInt8(ascii: "\""))
        let n = p.count
        var i = 0
        var run = 0
        while i < n {
            let b = p[i]
            if b >= 0x20 && b < 0x80 && b != 0x22 && b != 0x5C { i &+= 1; continue }
            if b >= 0x80 {
                let len = LineWriter.validUTF8Length(p, at: i)
                if len > 0 { i &+= len; continue }
            }
            copy(p, run, i)
            switch b {
            case 0x22, 0x5C: byte(0x5C); byte(b)
            case 0x0A: byte(0x5C); byte(UInt8(ascii: "n"))
            case 0x0D: byte(0x5C); byte(UInt8(ascii: "r"))
            case 0x09: byte(0x5C); byte(UInt8(ascii: "t"))
            case 0x08: byte(0x5C); byte(UInt8(ascii: "b"))
            case 0x0C: byte(0x5C); byte(UInt8(ascii: "f"))
            case 0x80...: byte(0xEF); byte(0xBF); byte(0xBD)  // invalid UTF-8: U+FFFD
            default:
                raw("\\u00")
                byte(LineWriter.hexDigit(b >> 4))
                byte(LineWriter.hexDigit(b & 0xF))
            }
            i &+= 1
            run = i
        }
        copy(p, run, n)
        byte(UInt8(ascii: "\""))
    }

    @inline(__always) private mutating func copy(_ p: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) {
        guard to > from else { return }
        (base + count).update(from: p.baseAddress! + from, count: to &- from)
        count &+= to &- from
    }

    /// Length of the well-formed UTF-8 sequence starting at `i` (Unicode Table 3-7), or 0.
    @inline(__always) static func validUTF8Length(_ p: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let b0 = p[i]
        let n = p.count - i
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            k < n && p[i + k] >= lo && p[i + k] <= hi
        }
        switch b0 {
        case 0xC2...0xDF: return cont(1) ? 2 : 0
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : 0
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0  // no surrogates
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : 0
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0
        default: return 0
        }
    }

    @inline(__always) static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? 0x30 &+ v : 0x61 &+ v &- 10
    }
}

/// RFC 3339 timestamps in UTC with milliseconds ("2026-11-22T08:00:00.123Z"), computed
/// arithmetically (days-to-civil) rather than through a formatter or the C library's
/// locale-aware calls.
enum RFC3339 {
    static func write(seconds: Int, nanos: Int, into w: inout LineWriter) {
        // Normalise so that nanos is in 0..<1e9 and days round towards -infinity.
        var secs = seconds + nanos / 1_000_000_000
        var ns = nanos % 1_000_000_000
        if ns < 0 { ns += 1_000_000_000; secs -= 1 }
        var days = secs / 86_400
        var secOfDay = secs % 86_400
        if secOfDay < 0 { secOfDay += 86_400; days -= 1 }
        let (y, m, d) = civil(fromDays: days)
        w.padded(y, 4); w.byte(UInt8(ascii: "-"))
        w.padded(m, 2); w.byte(UInt8(ascii: "-"))
        w.padded(d, 2); w.byte(UInt8(ascii: "T"))
        w.padded(secOfDay / 3600, 2); w.byte(UInt8(ascii: ":"))
        w.padded(secOfDay / 60 % 60, 2); w.byte(UInt8(ascii: ":"))
        w.padded(secOfDay % 60, 2); w.byte(UInt8(ascii: "."))
        w.padded(ns / 1_000_000, 3); w.byte(UInt8(ascii: "Z"))
    }

    static func write(seconds: Int, nanos: Int, into out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { scratch in
            var w = LineWriter(scratch.baseAddress!)
            write(seconds: seconds, nanos: nanos, into: &w)
            out.append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress, count: w.count))
        }
    }

    /// Howard Hinnant's days-from-civil inverse: days since 1970-01-01 → (year, month, day).
    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
