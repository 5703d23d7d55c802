import RemoraConfig

/// The load-balancing algorithm of a cluster.
public enum LoadBalancerAlgorithm: Sendable, Hashable {
    case roundRobin
    /// Power of two choices: two random hosts, the one with fewer active requests.
    case leastRequest
    case random
    /// Istio `PASSTHROUGH` (original destination). The proxy decides where such traffic goes;
    /// if it asks this layer anyway it gets round robin over the endpoints.
    case passthrough
    case ringHash(minimumRingSize: Int)
    case maglev(tableSize: Int)

    public var isConsistentHash: Bool {
        switch self {
        case .ringHash, .maglev: return true
        default: return false
        }
    }
}

/// `consistentHash.httpCookie`.
public struct CookieHashPolicy: Sendable, Hashable {
    public var name: String
    public var path: String?
    /// nil: never generate the cookie; 0: generate a session cookie; else its Max-Age.
    public var ttlSeconds: Int?
    /// Extra `Set-Cookie` attributes, sorted by name.
    public var attributes: [CookieAttribute]

    public init(name: String, path: String? = nil, ttlSeconds: Int? = nil, attributes: [CookieAttribute] = []) {
        self.name = name
        self.path = path
        self.ttlSeconds = ttlSeconds
        self.attributes = attributes
    }
}

/// What a consistent-hash policy hashes.
public enum HashPolicy: Sendable, Hashable {
    /// `httpHeaderName` (stored lowercased).
    case header(String)
    case cookie(CookieHashPolicy)
    /// `useSourceIp`
    case sourceIP
    /// `httpQueryParameterName`
    case queryParameter(String)
}

/// A cluster's (subset/port merged) `loadBalancer`, compiled.
public struct LoadBalancerPolicy: Sendable, Hashable {
    public var algorithm: LoadBalancerAlgorithm
    public var hashPolicy: HashPolicy?

    public init(algorithm: LoadBalancerAlgorithm, hashPolicy: HashPolicy? = nil) {
        self.algorithm = algorithm
        self.hashPolicy = hashPolicy
    }

    /// Istio's translation: `simple` ROUND_ROBIN, RANDOM, LEAST_REQUEST (LEAST_CONN is its
    /// deprecated name), PASSTHROUGH; unset or UNSPECIFIED: LEAST_REQUEST (Istio's default);
    /// `consistentHash`: ring hash (minimum ring size `ringHash.minimumRingSize`, or the
    /// deprecated `minimumRingSize`, default 1024) unless `maglev` is given (table size
    /// default 65537).
    public init(_ settings: LoadBalancerSettings?) {
        guard let settings else {
            self.init(algorithm: .leastRequest)
            return
        }
        if let ch = settings.consistentHash {
            let algorithm: LoadBalancerAlgorithm
            if let size = ch.maglevTableSize {
                algorithm = .maglev(tableSize: size > 0 ? size : ConsistentHashTable.defaultMaglevTableSize)
            } else {
                let m = ch.ringHashMinimumRingSize ?? ch.minimumRingSize ?? 0
                algorithm = .ringHash(minimumRingSize: m > 0 ? m : ConsistentHashTable.defaultMinimumRingSize)
            }
            var policy: HashPolicy?
            if let h = ch.httpHeaderName {
                policy = .header(h.lowercased())
            } else if let c = ch.httpCookie {
                policy = .cookie(CookieHashPolicy(
                    name: c.name, path: c.path, ttlSeconds: c.ttl.map { Int($0.nanoseconds / 1_000_000_000) },
                    attributes: c.attributes.sorted { $0.key < $1.key }.map { CookieAttribute(name: $0.key, value: $0.value) }))
            } else if ch.useSourceIp == true {
                policy = .sourceIP
            } else if let q = ch.httpQueryParameterName {
                policy = .queryParameter(q)
            }
            self.init(algorithm: algorithm, hashPolicy: policy)
            return
        }
        switch settings.simple {
        case "ROUND_ROBIN": self.init(algorithm: .roundRobin)
        case "RANDOM": self.init(algorithm: .random)
        case "PASSTHROUGH": self.init(algorithm: .passthrough)
        default: self.init(algorithm: .leastRequest)  // LEAST_REQUEST, LEAST_CONN, UNSPECIFIED, unset
        }
    }

    public var isConsistentHash: Bool { algorithm.isConsistentHash }

    /// The request's hash under this policy (nil: no hash policy, or the key is absent — the
    /// pick is then random, as in Envoy). Reads only what the policy names: `header` is asked
    /// for the one header (lowercase name), `cookieHeader` only for a cookie policy, etc.
    public func requestHash(header: (String) -> String?, cookieHeader: () -> String?, sourceIP: () -> String?,
                            path: () -> String, connectionIdentity: () -> String) -> RequestHash? {
        guard isConsistentHash, let hashPolicy else { return nil }
        switch hashPolicy {
        case .header(let name):
            return RequestHash.header(header(name)).map { RequestHash(hash: $0) }
        case .cookie(let c):
            return RequestHash.cookie(c, cookieHeader: cookieHeader(), connectionIdentity: connectionIdentity())
        case .sourceIP:
            return sourceIP().map { RequestHash(hash: RequestHash.sourceIP($0)) }
        case .queryParameter(let name):
            return RequestHash.queryParameter(name, path: path()).map { RequestHash(hash: $0) }
        }
    }
}

/// One worker's load balancer for one cluster. A value: the per-worker state (round-robin
/// cursor, smooth weighted round-robin weights) lives here, allocated once; everything shared
/// (ejections, active requests, the hash table) is read from the `HostSet` and the
/// `ConsistentHashTable`. `pick` does not allocate.
public struct LoadBalancer: Sendable {
    public let policy: LoadBalancerPolicy
    public let hosts: HostSet
    public let table: ConsistentHashTable?
    private var cursor: Int
    private var currentWeights: [Int]

    /// `seed` starts the round-robin cursor (Envoy starts each worker at a random offset, so
    /// workers do not all send their first request to host 0).
    public init(policy: LoadBalancerPolicy, hosts: HostSet, table: ConsistentHashTable? = nil, seed: UInt64 = 0) {
        self.policy = policy
        self.hosts = hosts
        self.table = table ?? (policy.isConsistentHash ? ConsistentHashTable.build(policy.algorithm, hosts: hosts) : nil)
        cursor = hosts.isEmpty ? 0 : Int(seed % UInt64(hosts.count))
        currentWeights = hosts.uniformWeights ? [] : [Int](repeating: 0, count: hosts.count)
    }

    /// Picks a host index, or nil when no host is available (no endpoints, or all ejected and
    /// not in panic: the proxy answers 503 `UH`).
    ///
    /// - `hash`: the request hash (`LoadBalancerPolicy.requestHash`) for consistent-hash
    ///   policies; nil there means a random pick.
    /// - `random`: one random value; every random choice of this pick derives from it.
    /// - `avoiding`/`maxSelectionAttempts`: a retry's previous hosts (`RetryState.avoidedHosts`)
    ///   and `RetryPolicy.hostSelectionMaxAttempts`: up to that many picks are made looking
    ///   for a host not in the set; the last one is taken regardless (Envoy's predicate).
    public mutating func pick(hash: UInt64? = nil, random: UInt64, avoiding: TriedHosts = TriedHosts(),
                              maxSelectionAttempts: Int = 1) -> Int? {
        guard !hosts.isEmpty else { return nil }
        var rng = SplitMix64(random)
        let tries = avoiding.isEmpty ? 1 : max(1, maxSelectionAttempts)
        var chosen: Int?
        for i in 0..<tries {
            chosen = pickOnce(hash: hash, rng: &rng, selectionAttempt: i)
            guard let c = chosen else { return nil }
            if !avoiding.contains(c) { return c }
        }
        return chosen
    }

    /// A pick for an attempt of `retry`: avoids the hosts it tried when its policy says so
    /// (`RetryPolicy.ignorePreviousHosts`, up to `hostSelectionMaxAttempts` picks).
    public mutating func pick(hash: UInt64? = nil, random: UInt64, for retry: RetryState) -> Int? {
        pick(hash: hash, random: random, avoiding: retry.avoidedHosts, maxSelectionAttempts: retry.policy.hostSelectionMaxAttempts)
    }

    private mutating func pickOnce(hash: UInt64?, rng: inout SplitMix64, selectionAttempt: Int) -> Int? {
        switch policy.algorithm {
        case .roundRobin, .passthrough:
            return roundRobin()
        case .random:
            return randomAvailable(&rng)
        case .leastRequest:
            guard let a = randomAvailable(&rng) else { return nil }
            guard let b = randomAvailable(&rng), b != a else { return a }
            // Fewer active requests per unit of weight wins; a tie keeps the first.
            let la = hosts.activeRequests(a) * hosts.hosts[b].weight
            let lb = hosts.activeRequests(b) * hosts.hosts[a].weight
            return lb < la ? b : a
        case .ringHash, .maglev:
            guard let table, let hash else { return randomAvailable(&rng) }
            let hs = hosts
            return table.lookup(hash, attempt: selectionAttempt) { hs.isAvailable($0) }
        }
    }

    /// Round robin over available hosts; smooth weighted round robin (nginx's) when weights differ.
    private mutating func roundRobin() -> Int? {
        let n = hosts.count
        if currentWeights.isEmpty {
            for _ in 0..<n {
                let i = cursor
                cursor += 1
                if cursor == n { cursor = 0 }
                if hosts.isAvailable(i) { return i }
            }
            return nil
        }
        var best = -1
        var total = 0
        for i in 0..<n where hosts.isAvailable(i) {
            let w = hosts.hosts[i].weight
            currentWeights[i] += w
            total += w
            if best < 0 || currentWeights[i] > currentWeights[best] { best = i }
        }
        guard best >= 0 else { return nil }
        currentWeights[best] -= total
        return best
    }

    /// A weighted random available host: a few draws, then a scan from a random start.
    private func randomAvailable(_ rng: inout SplitMix64) -> Int? {
        let n = hosts.count
        for _ in 0..<8 {
            let r = rng.next()
            let i: Int
            if hosts.uniformWeights {
                i = Int(r % UInt64(n))
            } else {
                let target = Int(r % UInt64(hosts.totalWeight))  // in [0, total)
                var lo = 0
                var hi = n - 1
                while lo < hi {
                    let mid = (lo + hi) >> 1
                    if hosts.cumulativeWeights[mid] > target { hi = mid } else { lo = mid + 1 }
                }
                i = lo
            }
            if hosts.isAvailable(i) { return i }
        }
        let start = Int(rng.next() % UInt64(n))
        for k in 0..<n {
            let i = (start + k) % n
            if hosts.isAvailable(i) { return i }
        }
        return nil
    }
}
