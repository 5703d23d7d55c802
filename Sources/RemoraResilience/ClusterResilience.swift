import RemoraConfig

// RemoraResilience: retries, circuit breaking, outlier detection and load balancing as pure
// state machines. No sockets, no event loop, no clock: time comes in as monotonic
// milliseconds, randomness as UInt64 values, so everything is deterministic under test.
// Cross-worker state uses `Synchronization` atomics (and one mutex for ejections).
//
// Subset-level and port-level traffic policies: RemoraPolicy merges them as Istio does
// (`TrafficPolicy.merged`); the result is `ClusterSpec.trafficPolicy`, which is what
// `ResilienceSettings(_:)` takes. No merging here.

/// Everything this layer compiles from a cluster's traffic policy.
public struct ResilienceSettings: Sendable, Hashable {
    public var loadBalancer: LoadBalancerPolicy
    public var thresholds: CircuitBreakerThresholds
    /// nil: no `outlierDetection` in the policy, so nothing is ever ejected (Istio).
    public var outlier: OutlierSettings?

    public init(loadBalancer: LoadBalancerPolicy = LoadBalancerPolicy(nil), thresholds: CircuitBreakerThresholds = CircuitBreakerThresholds(),
                outlier: OutlierSettings? = nil) {
        self.loadBalancer = loadBalancer
        self.thresholds = thresholds
        self.outlier = outlier
    }

    /// From the cluster's merged policy (`ClusterSpec.trafficPolicy`).
    public init(_ policy: TrafficPolicy?) {
        self.init(loadBalancer: LoadBalancerPolicy(policy?.loadBalancer),
                  thresholds: CircuitBreakerThresholds(policy),
                  outlier: policy?.outlierDetection.map(OutlierSettings.init))
    }
}

/// One cluster's shared resilience state: circuit breaker (with its stats), hosts, outlier
/// detector, consistent-hash table. Immutable apart from its atomics; build one per cluster
/// on the control thread and hand it to the workers with the rest of the state.
///
/// - Endpoints changed (DNS): `withEndpoints(_:)` — same breaker and stats, outlier state
///   carried over by endpoint key, a new hash table.
/// - Policy changed (reload): `updated(settings:endpoints:)` — a new breaker if the
///   thresholds changed (requests in flight release on the one they acquired from), the same
///   stats, outlier state carried over when outlier detection stays on.
/// - Each worker makes its own `LoadBalancer` (`makeLoadBalancer`) per cluster version.
public final class ClusterResilience: Sendable {
    public let name: String
    public let settings: ResilienceSettings
    public let breaker: CircuitBreaker
    public let hosts: HostSet
    public let outlier: OutlierDetector?
    public let hashTable: ConsistentHashTable?

    public var stats: UpstreamStats { breaker.stats }

    public init(name: String, settings: ResilienceSettings, endpoints: [EndpointDescriptor],
                breaker: CircuitBreaker? = nil, previousOutlier: OutlierDetector? = nil) {
        self.name = name
        self.settings = settings
        self.breaker = breaker ?? CircuitBreaker(thresholds: settings.thresholds)
        let hosts = HostSet(endpoints)
        self.hosts = hosts
        outlier = settings.outlier.map { OutlierDetector(settings: $0, hosts: hosts, previous: previousOutlier) }
        hashTable = ConsistentHashTable.build(settings.loadBalancer.algorithm, hosts: hosts)
    }

    /// Convenience: from a cluster's merged traffic policy.
    public convenience init(name: String, policy: TrafficPolicy?, endpoints: [EndpointDescriptor]) {
        self.init(name: name, settings: ResilienceSettings(policy), endpoints: endpoints)
    }

    /// The same cluster with new endpoints.
    public func withEndpoints(_ endpoints: [EndpointDescriptor]) -> ClusterResilience {
        ClusterResilience(name: name, settings: settings, endpoints: endpoints, breaker: breaker, previousOutlier: outlier)
    }

    /// The same cluster under new settings (and endpoints).
    public func updated(settings new: ResilienceSettings, endpoints: [EndpointDescriptor]) -> ClusterResilience {
        let b = new.thresholds == settings.thresholds ? breaker : CircuitBreaker(thresholds: new.thresholds, stats: breaker.stats)
        return ClusterResilience(name: name, settings: new, endpoints: endpoints, breaker: b,
                                 previousOutlier: new.outlier == nil ? nil : outlier)
    }

    /// A worker's load balancer for this cluster (`seed`: e.g. the worker's random value).
    public func makeLoadBalancer(seed: UInt64) -> LoadBalancer {
        LoadBalancer(policy: settings.loadBalancer, hosts: hosts, table: hashTable, seed: seed)
    }

    /// The retry policy of a route sending to this cluster (Istio drops the previous-hosts
    /// predicate from its defaults when the destination uses consistent hashing; a route's
    /// `retryIgnorePreviousHosts` overrides that).
    public func retryPolicy(_ retry: HTTPRetry?) -> RetryPolicy {
        RetryPolicy(retry, consistentHash: settings.loadBalancer.isConsistentHash)
    }

    /// Reports an attempt's outcome to outlier detection (no-op without it).
    public func report(endpoint: Int, outcome: AttemptOutcome, now: UInt64) {
        outlier?.report(endpoint: endpoint, outcome: outcome, now: now)
    }
}
