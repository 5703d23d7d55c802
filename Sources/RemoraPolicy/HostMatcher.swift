import RemoraConfig

/// Envoy's virtual-host selection: an exact name (dictionary lookup) first, then the longest
/// matching `*.suffix` wildcard, then `*`. The first level that matches decides; there is no
/// fall-through to a less specific level when its rules do not match (as in Envoy/Istio).
struct HostTable<Value: Sendable>: Sendable {
    private(set) var exact: [String: Value] = [:]
    /// Suffixes without the `*` ("."-prefixed for `*.example.com`), longest first.
    private(set) var suffixes: [(suffix: String, value: Value)] = []
    private(set) var star: Value?

    init(exact: [String: Value], wildcards: [String: Value], star: Value?) {
        self.exact = exact
        self.suffixes = wildcards.map { (String($0.key.dropFirst()), $0.value) }
            .sorted { $0.suffix.count != $1.suffix.count ? $0.suffix.count > $1.suffix.count : $0.suffix < $1.suffix }
        self.star = star
    }

    /// `host` must be normalized (lowercase, port stripped).
    func lookup(_ host: String) -> Value? {
        if let v = exact[host] { return v }
        // Byte comparison: Character counts and hasSuffix walk grapheme clusters (both sides are normalized).
        let h = host.utf8
        for (suffix, v) in suffixes {
            let sfx = suffix.utf8
            if h.count > sfx.count && h.reversed().starts(with: sfx.reversed()) { return v }
        }
        return star
    }

    var isEmpty: Bool { exact.isEmpty && suffixes.isEmpty && star == nil }
}

/// Collects domains → ordered values while a listener's table is built.
struct HostTableBuilder<Value> {
    var exact: [String: [Value]] = [:]
    var wildcards: [String: [Value]] = [:]
    var star: [Value] = []
    /// Insertion order of domains, to keep the output deterministic.
    private(set) var order: [String] = []

    mutating func add(_ domain: String, _ value: Value, same: (Value, Value) -> Bool) {
        func append(_ list: inout [Value]) -> Bool {
            if let last = list.last, same(last, value) { return false }
            list.append(value)
            return true
        }
        if domain == "*" {
            _ = append(&star)
        } else if domain.hasPrefix("*") {
            var l = wildcards[domain] ?? []
            if append(&l) { if wildcards[domain] == nil { order.append(domain) }; wildcards[domain] = l }
        } else {
            var l = exact[domain] ?? []
            if append(&l) { if exact[domain] == nil { order.append(domain) }; exact[domain] = l }
        }
    }
}

enum HostPatterns {
    /// Whether pattern `p` covers `q` (q may itself be a wildcard): `*` covers all,
    /// `*.x` covers `a.x` and `*.a.x`.
    static func covers(_ p: String, _ q: String) -> Bool {
        p == q || HostNames.wildcardMatches(pattern: p, host: q)
    }

    /// Istio's intersection of a VirtualService host with a Gateway server host: the more specific
    /// of the two when one covers the other, nothing otherwise.
    static func intersect(_ vsHost: String, _ serverHost: String) -> String? {
        if covers(serverHost, vsHost) { return vsHost }
        if covers(vsHost, serverHost) { return serverHost }
        return nil
    }
}
