/// Picks a listener's certificate by SNI: an exact host first, then the longest
/// `*.suffix`, then `*`, then the first entry (also when SNI is absent). Hosts are
/// compared case-insensitively, without a trailing dot.
struct HostSelector: Sendable {
    private var exact: [String: Int] = [:]
    /// (".example.com", entry), longest suffix first.
    private var suffixes: [(String, Int)] = []
    private var any: Int?

    init(_ hosts: [[String]]) {
        for (i, list) in hosts.enumerated() {
            for h in list {
                let name = HostSelector.normalize(h)
                if name == "*" {
                    if any == nil { any = i }
                } else if name.hasPrefix("*.") {
                    let s = String(name.dropFirst())
                    if !suffixes.contains(where: { $0.0 == s }) { suffixes.append((s, i)) }
                } else if exact[name] == nil {
                    exact[name] = i
                }
            }
        }
        // Stable: among equal lengths the earlier entry wins.
        suffixes = suffixes.enumerated().sorted {
            $0.element.0.count != $1.element.0.count ? $0.element.0.count > $1.element.0.count : $0.offset < $1.offset
        }.map(\.element)
    }

    static func normalize(_ h: String) -> String {
        var s = h.lowercased()
        if s.hasSuffix(".") && s.count > 1 { s.removeLast() }
        return s
    }

    func select(_ sni: String?) -> Int {
        guard let sni, !sni.isEmpty else { return 0 }
        let name = HostSelector.normalize(sni)
        if let i = exact[name] { return i }
        // "*.example.com" covers any name below example.com, not example.com itself.
        for (s, i) in suffixes where name.count > s.count && name.hasSuffix(s) { return i }
        return any ?? 0
    }
}
