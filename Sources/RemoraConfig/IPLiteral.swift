/// IP address literals, checked without the network (configuration is pure).
public enum IPLiteral {
    /// Dotted-quad IPv4: four decimal parts 0...255.
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCIIDigit) && Int(p)! <= 255
        }
    }

    /// RFC 4291 text form: eight groups of 1–4 hex digits, one `::` for a run of zero
    /// groups, an IPv4 tail allowed. No zone (`%eth0`).
    public static func isIPv6(_ s: String) -> Bool {
        guard s.contains(":") else { return false }
        let halves = splitOnDoubleColon(s)
        guard halves.count <= 2 else { return false }
        var groups = 0
        for (i, half) in halves.enumerated() where !half.isEmpty {
            let parts = half.split(separator: ":", omittingEmptySubsequences: false)
            for (j, p) in parts.enumerated() {
                if j == parts.count - 1 && i == halves.count - 1 && p.contains(".") {
                    guard isIPv4(String(p)) else { return false }
                    groups += 2
                } else {
                    guard !p.isEmpty, p.count <= 4, p.allSatisfy(\.isASCIIHexDigit) else { return false }
                    groups += 1
                }
            }
        }
        return halves.count == 2 ? groups <= 7 : groups == 8
    }

    public static func isIP(_ s: String) -> Bool { isIPv4(s) || isIPv6(s) }

    private static func splitOnDoubleColon(_ s: String) -> [String] {
        var out: [String] = []
        var current = ""
        var previousColon = false
        for c in s {
            if c == ":" && previousColon {
                current.removeLast()
                out.append(current)
                current = ""
                previousColon = false
                continue
            }
            current.append(c)
            previousColon = c == ":"
        }
        out.append(current)
        return out
    }

    /// "10.0.0.1", "10.0.0.1:5353", "::1", "[::1]", "[::1]:5353" → address and port (nil: none given).
    public static func parseHostPort(_ s: String) -> (address: String, port: Int?)? {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let address = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            guard isIPv6(address) else { return nil }
            if rest.isEmpty { return (address, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return (address, port)
        }
        if isIPv6(s) { return (s, nil) }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard isIPv4(String(parts[0])) else { return nil }
        if parts.count == 1 { return (s, nil) }
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return (String(parts[0]), port)
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
    var isASCIIHexDigit: Bool { isASCIIDigit || ("a"..."f").contains(self) || ("A"..."F").contains(self) }
}
