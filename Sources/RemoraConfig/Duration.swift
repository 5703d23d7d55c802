/// A Go/protobuf style duration ("10s", "0.5s", "100ms", "1m30s", "1h"), as Istio writes them.
/// Kept in nanoseconds so round-tripping small units is exact.
public struct ConfigDuration: Sendable, Hashable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(milliseconds: Int) { self.nanoseconds = Int64(milliseconds) * 1_000_000 }

    /// Rounded up so that a sub-millisecond duration is never turned into "no timeout".
    public var milliseconds: Int { Int((nanoseconds + 999_999) / 1_000_000) }
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public var description: String {
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)us" }
        return "\(nanoseconds)ns"
    }

    /// Parses Go's time.ParseDuration syntax; negative durations are rejected (Istio rejects them).
    public static func parse(_ text: String) -> ConfigDuration? {
        let s = Array(text.unicodeScalars)
        if s.isEmpty { return nil }
        if text == "0" { return ConfigDuration(nanoseconds: 0) }
        var i = 0
        if s[0] == "+" { i = 1 }
        if i >= s.count { return nil }
        var total: Double = 0
        while i < s.count {
            var whole = ""
            var frac = ""
            while i < s.count, ("0"..."9").contains(s[i]) { whole.unicodeScalars.append(s[i]); i += 1 }
            if i < s.count, s[i] == "." {
                i += 1
                while i < s.count, ("0"..."9").contains(s[i]) { frac.unicodeScalars.append(s[i]); i += 1 }
            }
            if whole.isEmpty && frac.isEmpty { return nil }
            var unit = ""
            while i < s.count, !("0"..."9").contains(s[i]), s[i] != "." { unit.unicodeScalars.append(s[i]); i += 1 }
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            guard let v = Double((whole.isEmpty ? "0" : whole) + (frac.isEmpty ? "" : "." + frac)) else { return nil }
            total += v * scale
            if total > Double(Int64.max / 2) { return nil }
        }
        return ConfigDuration(nanoseconds: Int64(total.rounded()))
    }
}
