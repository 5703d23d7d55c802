/// A consistent-hash table over a cluster's hosts, built once per endpoint set and shared
/// (immutable) by every worker. Hosts are identified by their `EndpointDescriptor.key`
/// (`address:port`), hashed with xxHash64 as Envoy does, so the placement depends only on
/// the set of keys and weights, never on their order.
///
/// - Ring hash (Envoy's `RingHashLoadBalancer`): each host gets points `xxh64("KEY_i")`,
///   i = 0, 1, ..., in proportion to its weight, at least `minimumRingSize` points in all
///   (at most 8 M); a request hash goes to the first point at or after it (wrapping). Points
///   per weight unit are a power of two (see `ring`), so one host more or less moves only
///   that host's keys.
///   An ejected host is skipped by walking on to the next point — exactly what a ring built
///   without that host would answer, so only its keys move.
/// - Maglev (Envoy's `MaglevLoadBalancer`): a table of `tableSize` (prime, default 65537)
///   entries filled by each host's permutation `offset = xxh64(KEY) % M`,
///   `skip = xxh64(KEY, seed 1) % (M-1) + 1`, weighted; lookup `table[hash % M]`. An ejected
///   host's keys are re-hashed (`hash` mixed with a probe number) until they land on an
///   available host, so keys of available hosts never move.
public final class ConsistentHashTable: Sendable {
    public enum Kind: Sendable, Hashable { case ringHash, maglev }

    public let kind: Kind
    /// Ring: the sorted point hashes and, in parallel, their host indices.
    let ringHashes: [UInt64]
    let ringHosts: [Int32]
    /// Maglev: the lookup table of host indices.
    let table: [Int32]

    public static let defaultMinimumRingSize = 1024
    public static let maximumRingSize = 8 * 1024 * 1024
    public static let defaultMaglevTableSize = 65537

    /// Entries in the ring or table.
    public var size: Int { kind == .ringHash ? ringHashes.count : table.count }

    private init(kind: Kind, ringHashes: [UInt64], ringHosts: [Int32], table: [Int32]) {
        self.kind = kind
        self.ringHashes = ringHashes
        self.ringHosts = ringHosts
        self.table = table
    }

    /// The table for `algorithm` over `hosts`; nil for a non-hash algorithm or no hosts.
    public static func build(_ algorithm: LoadBalancerAlgorithm, hosts: HostSet) -> ConsistentHashTable? {
        let entries = hosts.hosts.map { ($0.key, $0.weight) }
        switch algorithm {
        case .ringHash(let minimum): return ring(entries, minimumRingSize: minimum)
        case .maglev(let size): return maglev(entries, tableSize: size)
        default: return nil
        }
    }

    /// A ring over `hosts` (key, weight); host index = position in `hosts`.
    ///
    /// Envoy gives each host `ceil(minimumRingSize × w/Σw)`-ish points, recomputed from the
    /// host count, so adding an 11th host to 10 also takes points away from the other ten and
    /// moves keys between old hosts (measured: 14.8 % of keys move instead of 9.1 %). Here the
    /// points per unit of weight are rounded up to a power of two, `k = 2^⌈log2(min/Σw)⌉`, so
    /// a host added or removed leaves every other host's points (and keys) where they were,
    /// unless the count crosses a power of two. The ring still has at least
    /// `minimumRingSize` points (at most `maximumRingSize`; past it, or with weights too large
    /// for whole points, Envoy's fractional scaling is used).
    public static func ring(_ hosts: [(key: String, weight: Int)], minimumRingSize: Int = defaultMinimumRingSize,
                            maximumRingSize: Int = maximumRingSize) -> ConsistentHashTable? {
        guard !hosts.isEmpty else { return nil }
        let weights = hosts.map { max(1, $0.weight) }
        let totalUnits = weights.reduce(0) { $0 &+ $1 }
        let minSize = max(1, minimumRingSize)
        let maxSize = max(1, maximumRingSize)
        var pointsPerHost: [Int]
        let perUnit = (minSize + totalUnits - 1) / totalUnits
        var k = 1
        while k < perUnit { k <<= 1 }
        if totalUnits > 0, totalUnits <= maxSize / k {
            pointsPerHost = weights.map { $0 * k }
        } else {
            // Envoy's scaling: normalized weights, the lightest host gets ceil(min × w_min) points.
            let total = Double(totalUnits)
            let normalized = weights.map { Double($0) / total }
            let minWeight = normalized.min()!
            let scale = min((minWeight * Double(minSize)).rounded(.up) / minWeight, Double(maxSize))
            var current = 0.0
            var target = 0.0
            pointsPerHost = normalized.map { w in
                target += scale * w
                var n = 0
                while current < target {
                    n += 1
                    current += 1
                }
                return n
            }
        }
        var points: [(UInt64, Int32)] = []
        points.reserveCapacity(pointsPerHost.reduce(0, +))
        var keyBytes: [UInt8] = []
        for (index, host) in hosts.enumerated() {
            for i in 0..<pointsPerHost[index] {
                keyBytes.removeAll(keepingCapacity: true)
                keyBytes.append(contentsOf: host.key.utf8)
                keyBytes.append(UInt8(ascii: "_"))
                keyBytes.append(contentsOf: String(i).utf8)
                points.append((XXHash64.hash(keyBytes), Int32(index)))
            }
        }
        points.sort { $0.0 < $1.0 || ($0.0 == $1.0 && hosts[Int($0.1)].key < hosts[Int($1.1)].key) }
        return ConsistentHashTable(kind: .ringHash, ringHashes: points.map(\.0), ringHosts: points.map(\.1), table: [])
    }

    /// A Maglev table over `hosts` (key, weight); `tableSize` is raised to a prime if it is not one.
    public static func maglev(_ hosts: [(key: String, weight: Int)], tableSize: Int = defaultMaglevTableSize) -> ConsistentHashTable? {
        guard !hosts.isEmpty else { return nil }
        let m = nextPrime(max(tableSize, hosts.count, 3))
        struct Entry { var index: Int32; var offset: UInt64; var skip: UInt64; var weight: Double; var target: Double; var next: UInt64 }
        let maxWeight = Double(hosts.map { max(1, $0.weight) }.max()!)
        // Order by key so the table does not depend on the order endpoints were listed in.
        var entries = hosts.enumerated().map { i, h in
            Entry(index: Int32(i), offset: XXHash64.hash(h.key) % UInt64(m), skip: XXHash64.hash(h.key, seed: 1) % UInt64(m - 1) + 1,
                  weight: Double(max(1, h.weight)) / maxWeight, target: 0, next: 0)
        }
        entries.sort { hosts[Int($0.index)].key < hosts[Int($1.index)].key }
        var table = [Int32](repeating: -1, count: m)
        var filled = 0
        var iteration = 1.0
        while filled < m {
            for e in entries.indices where filled < m {
                // A host of weight w (relative to the heaviest, 1) takes a slot every 1/w rounds.
                if iteration * entries[e].weight < entries[e].target { continue }
                entries[e].target += 1
                var c = Int((entries[e].offset &+ entries[e].skip &* entries[e].next) % UInt64(m))
                while table[c] >= 0 {
                    entries[e].next += 1
                    c = Int((entries[e].offset &+ entries[e].skip &* entries[e].next) % UInt64(m))
                }
                table[c] = entries[e].index
                entries[e].next += 1
                filled += 1
            }
            iteration += 1
        }
        return ConsistentHashTable(kind: .maglev, ringHashes: [], ringHosts: [], table: table)
    }

    /// The host for request hash `hash`, skipping hosts for which `isAvailable` is false.
    /// `attempt` > 0 (a retry looking for another host) moves on: the `attempt`-th next
    /// available ring point, or a re-hashed Maglev slot. nil only when nothing is available.
    public func lookup(_ hash: UInt64, attempt: Int = 0, isAvailable: (Int) -> Bool) -> Int? {
        switch kind {
        case .ringHash:
            let n = ringHashes.count
            guard n > 0 else { return nil }
            // First point with hash >= h (wrapping to 0).
            var lo = 0
            var hi = n
            while lo < hi {
                let mid = (lo &+ hi) >> 1
                if ringHashes[mid] < hash { lo = mid + 1 } else { hi = mid }
            }
            var p = lo == n ? 0 : lo
            var skipsLeft = max(0, attempt)
            for _ in 0..<n {
                let host = Int(ringHosts[p])
                if isAvailable(host) {
                    if skipsLeft == 0 { return host }
                    skipsLeft -= 1
                }
                p += 1
                if p == n { p = 0 }
            }
            // Fewer available points than `attempt`: the first available one.
            if attempt > 0 { return lookup(hash, attempt: 0, isAvailable: isAvailable) }
            return nil
        case .maglev:
            let m = UInt64(table.count)
            guard m > 0 else { return nil }
            var h = attempt > 0 ? mix(hash, UInt64(attempt)) : hash
            for probe in 0..<32 {
                let host = Int(table[Int(h % m)])
                if isAvailable(host) { return host }
                h = mix(hash, UInt64(attempt) &* 0x1_0000 &+ UInt64(probe) &+ 1)
            }
            // Nearly everything unavailable: scan from the slot.
            let start = Int(h % m)
            for k in 0..<Int(m) {
                let host = Int(table[(start + k) % Int(m)])
                if isAvailable(host) { return host }
            }
            return nil
        }
    }

    /// How many table entries (ring points or Maglev slots) each host index owns.
    public func share(hostCount: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: hostCount)
        for h in (kind == .ringHash ? ringHosts : table) where Int(h) < hostCount { counts[Int(h)] += 1 }
        return counts
    }

    @inline(__always) private func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var s = SplitMix64(a ^ (b &* 0x9E37_79B9_7F4A_7C15))
        return s.next()
    }

    static func nextPrime(_ n: Int) -> Int {
        func isPrime(_ x: Int) -> Bool {
            if x < 2 { return false }
            if x % 2 == 0 { return x == 2 }
            var d = 3
            while d * d <= x {
                if x % d == 0 { return false }
                d += 2
            }
            return true
        }
        var x = n
        while !isPrime(x) { x += 1 }
        return x
    }
}

// MARK: request hash keys

/// A cookie the proxy must add to the response (`Set-Cookie`) because the hash policy names
/// a cookie with a `ttl` and the request had none (Envoy's behaviour).
public struct GeneratedCookie: Sendable, Hashable {
    public var name: String
    public var value: String
    public var path: String?
    /// `Max-Age`; 0: a session cookie (no Max-Age).
    public var maxAgeSeconds: Int
    public var attributes: [CookieAttribute]

    /// The `Set-Cookie` header value, as Envoy writes it:
    /// `NAME="VALUE"; Max-Age=T; Path=P; attr=v; HttpOnly`.
    public var headerValue: String {
        var s = "\(name)=\"\(value)\""
        if maxAgeSeconds > 0 { s += "; Max-Age=\(maxAgeSeconds)" }
        if let path, !path.isEmpty { s += "; Path=\(path)" }
        for a in attributes { s += a.value.isEmpty ? "; \(a.name)" : "; \(a.name)=\(a.value)" }
        s += "; HttpOnly"
        return s
    }
}

public struct CookieAttribute: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// The hash of one request under a hash policy, and a cookie to set when one was generated.
public struct RequestHash: Sendable, Hashable {
    public var hash: UInt64
    public var setCookie: GeneratedCookie?

    public init(hash: UInt64, setCookie: GeneratedCookie? = nil) {
        self.hash = hash
        self.setCookie = setCookie
    }

    /// `httpHeaderName`: the header's value (nil when absent: no hash, the pick is random).
    public static func header(_ value: String?) -> UInt64? {
        value.map { XXHash64.hash($0) }
    }

    /// `useSourceIp`: the client's IP address without port.
    public static func sourceIP(_ ip: String) -> UInt64 { XXHash64.hash(ip) }

    /// `httpQueryParameterName`: the first `name=value` of the path's query (not
    /// percent-decoded, as Envoy). nil when absent.
    public static func queryParameter(_ name: String, path: String) -> UInt64? {
        guard let value = queryValue(name, in: path) else { return nil }
        return XXHash64.hash(value)
    }

    /// `httpCookie`: the cookie's value from the request's `Cookie` header(s) (joined with
    /// "; "); when absent and the policy has a `ttl`, a value is generated from
    /// `connectionIdentity` (Envoy: the downstream remote + local address, so one client
    /// connection gets one cookie) and returned with `setCookie`. nil: no hash (random pick).
    public static func cookie(_ policy: CookieHashPolicy, cookieHeader: String?, connectionIdentity: @autoclosure () -> String) -> RequestHash? {
        if let header = cookieHeader, let value = cookieValue(policy.name, in: header) {
            return RequestHash(hash: XXHash64.hash(value))
        }
        guard let ttl = policy.ttlSeconds else { return nil }
        let value = hex16(XXHash64.hash(connectionIdentity()))
        let cookie = GeneratedCookie(name: policy.name, value: value, path: policy.path, maxAgeSeconds: ttl, attributes: policy.attributes)
        return RequestHash(hash: XXHash64.hash(value), setCookie: cookie)
    }

    static func hex16(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    /// The value of cookie `name` in a `Cookie` header (surrounding quotes removed).
    /// Scans in place (no allocation).
    public static func cookieValue(_ name: String, in header: String) -> Substring? {
        var rest = header[...]
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ";") ?? rest.endIndex
            let p = rest[rest.startIndex..<end].trimmingBlanks
            if let eq = p.firstIndex(of: "="), p[p.startIndex..<eq] == name {
                var v = p[p.index(after: eq)...]
                if v.count >= 2, v.first == "\"", v.last == "\"" { v = v.dropFirst().dropLast() }
                return v
            }
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
        }
        return nil
    }

    /// The value of query parameter `name` in a request target (`/p?a=1&b=2#f`); "" for a
    /// bare `name`. Scans in place (no allocation).
    public static func queryValue(_ name: String, in path: String) -> Substring? {
        guard let q = path.firstIndex(of: "?") else { return nil }
        var rest = path[path.index(after: q)...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: "&") ?? rest.endIndex
            let pair = rest[rest.startIndex..<end]
            if let eq = pair.firstIndex(of: "=") {
                if pair[pair.startIndex..<eq] == name { return pair[pair.index(after: eq)...] }
            } else if pair == name {
                return pair[pair.endIndex...]
            }
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
        }
        return nil
    }
}
