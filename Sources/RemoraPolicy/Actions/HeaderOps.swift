import RemoraConfig

/// Header mutations of one level (Istio `headers.request`/`headers.response`: set, add, remove). Names lowercased.
///
/// Applied as: drop every incoming header for which `drops(name:)` is true, then write `set`, then `add`.
/// A route level and a destination level are flattened into one value (`merged(with:)`) with the effect
/// Envoy gives them when Istio puts both in one list: each level removes first, then sets/adds, and the
/// later level (the destination) overrides the earlier one.
public struct HeaderOps: Sendable {
    public var set: [(name: String, value: String)]
    public var add: [(name: String, value: String)]
    public var remove: [String]

    public init(set: [(name: String, value: String)] = [], add: [(name: String, value: String)] = [], remove: [String] = []) {
        self.set = set
        self.add = add
        self.remove = remove
    }

    public static let empty = HeaderOps()

    public var isEmpty: Bool { self.set.isEmpty && add.isEmpty && remove.isEmpty }

    /// True when an incoming header with this name (raw bytes, any case) must not be forwarded because it is removed or
    /// replaced by `set`. Called once per forwarded header on the hot path: no allocation, compare bytes case-insensitively.
    public func drops(name: UnsafeRawBufferPointer) -> Bool {
        for r in remove where HeaderOps.equalsIgnoringCase(r, name) { return true }
        for s in self.set where HeaderOps.equalsIgnoringCase(s.name, name) { return true }
        return false
    }

    /// `lower` is lowercase; `raw` may be in any case. Walks the String's UTF-8 view, which for native
    /// strings is a contiguous buffer: nothing is allocated.
    @inline(__always)
    static func equalsIgnoringCase(_ lower: String, _ raw: UnsafeRawBufferPointer) -> Bool {
        let u = lower.utf8
        guard u.count == raw.count else { return false }
        var i = 0
        for c in u {
            var b = raw[i]
            if b >= 0x41 && b <= 0x5A { b |= 0x20 }
            if b != c { return false }
            i += 1
        }
        return true
    }

    /// These ops followed by `later` (a more specific level), as one set of ops with the same effect.
    public func merged(with later: HeaderOps) -> HeaderOps {
        if later.isEmpty { return self }
        if isEmpty { return later }
        var out = self
        // The later level removes first: what the earlier one wrote under that name is gone too.
        for r in later.remove {
            out.set.removeAll { $0.name == r }
            out.add.removeAll { $0.name == r }
            if !out.remove.contains(r) { out.remove.append(r) }
        }
        // Then it sets (overwriting every earlier value of that name) and adds.
        for s in later.set {
            out.set.removeAll { $0.name == s.name }
            out.add.removeAll { $0.name == s.name }
            out.set.append(s)
        }
        out.add += later.add
        return out
    }

    /// Istio's translation of one `HeaderOperations`: names lowercased and sorted (Istio sorts them, the
    /// YAML map has no order); `:`-prefixed names and `host` dropped — Envoy cannot mutate them, and a
    /// `host`/`:authority` in `set` (else `add`) becomes the authority rewrite instead.
    static func compile(_ ops: HeaderOperations?) -> (ops: HeaderOps, authority: String?) {
        guard let ops else { return (.empty, nil) }
        func isInternal(_ n: String) -> Bool { n.hasPrefix(":") || n == "host" }
        func isAuthority(_ n: String) -> Bool { n == ":authority" || n == "host" }
        func list(_ m: [String: String]) -> [(name: String, value: String)] {
            m.map { (name: $0.key.lowercased(), value: $0.value) }
                .filter { !isInternal($0.name) }
                .sorted { $0.name < $1.name }
        }
        let setAuthority = ops.set.first { isAuthority($0.key.lowercased()) }?.value
        let addAuthority = ops.add.first { isAuthority($0.key.lowercased()) }?.value
        var remove: [String] = []
        for r in ops.remove.map({ $0.lowercased() }) where !isInternal(r) && !remove.contains(r) { remove.append(r) }
        return (HeaderOps(set: list(ops.set), add: list(ops.add), remove: remove), setAuthority ?? addAuthority)
    }
}
