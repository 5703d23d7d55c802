import Synchronization

/// One endpoint as the resilience layer sees it: a stable identity and a weight.
public struct EndpointDescriptor: Sendable, Hashable {
    /// Stable identity, Envoy's host address string `address:port` (`[v6]:port`). The hash
    /// rings hash it, and state (ejections) follows it across endpoint updates.
    public var key: String
    /// ServiceEntry endpoint weight; 0 or less counts as 1.
    public var weight: Int

    public init(key: String, weight: Int = 1) {
        self.key = key
        self.weight = weight
    }

    public init(address: String, port: Int, weight: Int? = nil) {
        key = address.contains(":") && !address.hasPrefix("[") ? "[\(address)]:\(port)" : "\(address):\(port)"
        self.weight = weight ?? 1
    }
}

/// The shared, per-endpoint state of one cluster: what every worker reads on each pick
/// (ejected, active requests) and what outcome reports update. Membership is immutable: an
/// endpoint change builds a new `HostSet` (see `ClusterResilience.withEndpoints`).
public final class UpstreamHost: Sendable {
    public let index: Int
    public let key: String
    public let weight: Int

    /// Requests in flight to this host, all workers (LEAST_REQUEST reads it).
    let active = Atomic<Int>(0)
    /// Set and cleared by the outlier detector (under its lock); read lock-free by pickers.
    let ejectedFlag = Atomic<Bool>(false)
    // Outlier detection counters, updated lock-free by reports.
    let consecutive5xx = Atomic<Int>(0)
    let consecutiveGateway = Atomic<Int>(0)
    let consecutiveLocalOrigin = Atomic<Int>(0)

    init(index: Int, key: String, weight: Int) {
        self.index = index
        self.key = key
        self.weight = weight
    }

    public var activeRequests: Int { active.load(ordering: .relaxed) }
    public var isEjected: Bool { ejectedFlag.load(ordering: .acquiring) }
}

/// The endpoints of one cluster with their shared state. Indices (`0..<count`) are what the
/// load balancer returns and what the other APIs take.
public final class HostSet: Sendable {
    public let hosts: [UpstreamHost]
    /// Prefix sums of the weights, for weighted random choices.
    let cumulativeWeights: [Int]
    public let totalWeight: Int
    /// All weights equal (the fast paths: plain round robin, uniform random).
    public let uniformWeights: Bool
    let index: [String: Int]

    /// Kept by the outlier detector: ejected hosts now, and whether the cluster is in panic
    /// (healthy share under `minHealthPercent`: ejections ignored).
    let ejectedCount = Atomic<Int>(0)
    let panicFlag = Atomic<Bool>(false)

    public init(_ endpoints: [EndpointDescriptor]) {
        var hosts: [UpstreamHost] = []
        var sums: [Int] = []
        var total = 0
        var index: [String: Int] = [:]
        hosts.reserveCapacity(endpoints.count)
        for (i, e) in endpoints.enumerated() {
            let w = max(1, e.weight)
            hosts.append(UpstreamHost(index: i, key: e.key, weight: w))
            total += w
            sums.append(total)
            if index[e.key] == nil { index[e.key] = i }
        }
        self.hosts = hosts
        cumulativeWeights = sums
        totalWeight = total
        uniformWeights = Set(hosts.map(\.weight)).count <= 1
        self.index = index
    }

    public var count: Int { hosts.count }
    public var isEmpty: Bool { hosts.isEmpty }

    /// The index of the endpoint with this key.
    public func index(ofKey key: String) -> Int? { index[key] }

    public func isEjected(_ i: Int) -> Bool { hosts[i].isEjected }

    /// Panic mode: too few healthy hosts, so the load balancers ignore ejections.
    public var inPanic: Bool { panicFlag.load(ordering: .relaxed) }

    /// Hosts ejected now.
    public var ejectedHosts: Int { ejectedCount.load(ordering: .relaxed) }

    /// Whether a load balancer may pick host `i` now.
    @inline(__always) public func isAvailable(_ i: Int) -> Bool {
        !hosts[i].ejectedFlag.load(ordering: .relaxed) || panicFlag.load(ordering: .relaxed)
    }

    /// Call when a request is sent to host `i` (LEAST_REQUEST and the admin view read it)...
    @inline(__always) public func requestStarted(_ i: Int) { hosts[i].active.wrappingAdd(1, ordering: .relaxed) }
    /// ...and when it ends, however it ends.
    @inline(__always) public func requestFinished(_ i: Int) { hosts[i].active.wrappingSubtract(1, ordering: .relaxed) }
    public func activeRequests(_ i: Int) -> Int { hosts[i].active.load(ordering: .relaxed) }
}
