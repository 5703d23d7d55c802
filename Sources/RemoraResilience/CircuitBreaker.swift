import RemoraConfig
import Synchronization

/// Istio's "unlimited" for every circuit breaker threshold it leaves unset.
public let unlimitedThreshold = Int(UInt32.max)

/// DestinationRule `trafficPolicy.retryBudget` (Envoy `retry_budget`): the active retries
/// allowed are `percent` % of the active plus pending requests, but never fewer than
/// `minRetryConcurrency`. When set it replaces `maxRetries`.
public struct RetryBudget: Sendable, Hashable {
    public var percent: Double
    public var minRetryConcurrency: Int

    public init(percent: Double = 20, minRetryConcurrency: Int = 3) {
        self.percent = percent
        self.minRetryConcurrency = minRetryConcurrency
    }

    /// Istio's defaults for what the block leaves out: 20 %, and 3 retries (a written 0 too:
    /// Istio cannot tell it from an absent proto3 integer).
    public init(_ config: TrafficPolicy.RetryBudget) {
        self.init(percent: config.percent ?? 20, minRetryConcurrency: config.minRetryConcurrency.flatMap { $0 > 0 ? $0 : nil } ?? 3)
    }
}

/// Circuit breaker thresholds for one cluster (Envoy's `circuit_breakers.thresholds`, as
/// Istio fills them from `connectionPool`, every unset one 2^32-1).
public struct CircuitBreakerThresholds: Sendable, Hashable {
    /// `tcp.maxConnections`: connections open to all hosts of the cluster.
    public var maxConnections: Int
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    public var maxPendingRequests: Int
    /// `http.http2MaxRequests`: requests in flight (both protocols).
    public var maxRequests: Int
    /// `http.maxRetries`: retries in flight (scheduled or running), ignored when `retryBudget` is set.
    public var maxRetries: Int
    public var retryBudget: RetryBudget?
    /// `http.maxRequestsPerConnection` (nil: unlimited; 1 disables keep-alive). Not a shared
    /// counter: each connection compares its own count (`connectionExhausted`).
    public var maxRequestsPerConnection: Int?

    public init(maxConnections: Int = unlimitedThreshold, maxPendingRequests: Int = unlimitedThreshold,
                maxRequests: Int = unlimitedThreshold, maxRetries: Int = unlimitedThreshold,
                retryBudget: RetryBudget? = nil, maxRequestsPerConnection: Int? = nil) {
        self.maxConnections = maxConnections
        self.maxPendingRequests = maxPendingRequests
        self.maxRequests = maxRequests
        self.maxRetries = maxRetries
        self.retryBudget = retryBudget
        self.maxRequestsPerConnection = maxRequestsPerConnection
    }

    /// From a cluster's merged policy (`ClusterSpec.trafficPolicy`): its `connectionPool` and
    /// `retryBudget`. As Istio, a 0 (indistinguishable from absent in proto3) is unlimited.
    public init(_ policy: TrafficPolicy?) {
        let pool = policy?.connectionPool
        self.init(maxConnections: pool?.tcp?.maxConnections.flatMap { $0 > 0 ? $0 : nil } ?? unlimitedThreshold,
                  maxPendingRequests: pool?.http?.http1MaxPendingRequests.flatMap { $0 > 0 ? $0 : nil } ?? unlimitedThreshold,
                  maxRequests: pool?.http?.http2MaxRequests.flatMap { $0 > 0 ? $0 : nil } ?? unlimitedThreshold,
                  maxRetries: pool?.http?.maxRetries.flatMap { $0 > 0 ? $0 : nil } ?? unlimitedThreshold,
                  retryBudget: policy?.retryBudget.map(RetryBudget.init),
                  maxRequestsPerConnection: pool?.http?.maxRequestsPerConnection.flatMap { $0 > 0 ? $0 : nil })
    }

    /// Whether a connection that has carried `requestsServed` requests must not take another.
    public func connectionExhausted(requestsServed: Int) -> Bool {
        guard let m = maxRequestsPerConnection else { return false }
        return requestsServed >= m
    }
}

/// The resources a circuit breaker counts.
public enum BreakerResource: Sendable, Hashable, CaseIterable {
    case connections, pendingRequests, requests, retries

    /// The Envoy cluster stat counted when this resource overflows.
    public var overflowStatName: String {
        switch self {
        case .connections: return "upstream_cx_overflow"
        // Envoy counts max_requests overflow under upstream_rq_pending_overflow too.
        case .pendingRequests, .requests: return "upstream_rq_pending_overflow"
        case .retries: return "upstream_rq_retry_overflow"
        }
    }
}

/// What the proxy answers when a circuit breaker overflows (SPEC §6): 503 with
/// `x-remora-overloaded: true`, response flag `UO` (gRPC: trailers-only, UNAVAILABLE).
public enum Overload {
    public static let status = 503
    public static let headerName = "x-remora-overloaded"
    public static let headerValue = "true"
    public static let responseFlag = "UO"
    public static let grpcStatus = 14
}

/// Envoy-named cluster counters kept by the resilience layer (monotonic, all workers).
public final class UpstreamStats: Sendable {
    let cxOverflow = Atomic<Int>(0)
    let rqPendingOverflow = Atomic<Int>(0)
    let rqRetryOverflow = Atomic<Int>(0)
    let rqRetry = Atomic<Int>(0)
    let rqRetrySuccess = Atomic<Int>(0)
    let rqRetryLimitExceeded = Atomic<Int>(0)
    let rqPerTryTimeout = Atomic<Int>(0)
    let abandoned = Atomic<Int>(0)

    public init() {}

    /// `upstream_cx_overflow`
    public var upstreamCxOverflow: Int { cxOverflow.load(ordering: .relaxed) }
    /// `upstream_rq_pending_overflow` (pending-request and max-request overflows)
    public var upstreamRqPendingOverflow: Int { rqPendingOverflow.load(ordering: .relaxed) }
    /// `upstream_rq_retry_overflow`: retries refused by the retry circuit breaker/budget.
    public var upstreamRqRetryOverflow: Int { rqRetryOverflow.load(ordering: .relaxed) }
    /// `upstream_rq_retry`: retries scheduled.
    public var upstreamRqRetry: Int { rqRetry.load(ordering: .relaxed) }
    /// `upstream_rq_retry_success`: retried requests whose later attempt needed no retry.
    public var upstreamRqRetrySuccess: Int { rqRetrySuccess.load(ordering: .relaxed) }
    /// `upstream_rq_retry_limit_exceeded`: retriable outcomes with no retry left.
    public var upstreamRqRetryLimitExceeded: Int { rqRetryLimitExceeded.load(ordering: .relaxed) }
    /// `upstream_rq_per_try_timeout`
    public var upstreamRqPerTryTimeout: Int { rqPerTryTimeout.load(ordering: .relaxed) }
    /// `retry_or_shadow_abandoned`: requests not retried because their body outgrew the replay buffer.
    public var retryOrShadowAbandoned: Int { abandoned.load(ordering: .relaxed) }

    /// Every counter by its Envoy name (for `/stats/prometheus` under `remora_cluster_`).
    public var all: [(name: String, value: Int)] {
        [("upstream_cx_overflow", upstreamCxOverflow), ("upstream_rq_pending_overflow", upstreamRqPendingOverflow),
         ("upstream_rq_retry_overflow", upstreamRqRetryOverflow), ("upstream_rq_retry", upstreamRqRetry),
         ("upstream_rq_retry_success", upstreamRqRetrySuccess), ("upstream_rq_retry_limit_exceeded", upstreamRqRetryLimitExceeded),
         ("upstream_rq_per_try_timeout", upstreamRqPerTryTimeout), ("retry_or_shadow_abandoned", retryOrShadowAbandoned)]
    }
}

/// A cluster's circuit breaker: counters shared by every worker (atomics, no lock), compared
/// with the thresholds on acquire. An acquire never lets a counter exceed its limit (a
/// compare-and-swap loop, stricter than Envoy's check-then-increment). Each successful
/// `tryAcquire` must be paired with one `release` on the same object (keep the reference the
/// request started with across reloads).
///
/// How the proxy uses it (Envoy's semantics):
/// - a request enters: `tryAcquire(.requests)`, else 503 `UO` + `x-remora-overloaded: true`;
/// - it needs a connection and none is idle: `tryAcquire(.connections)` to open one; if that
///   overflows, the request waits for a connection as pending: `tryAcquire(.pendingRequests)`,
///   else 503 `UO`; release `.pendingRequests` when it gets a connection or gives up;
/// - a connection closes: `release(.connections)`;
/// - retries: `RetryState` acquires and releases `.retries` itself.
public final class CircuitBreaker: Sendable {
    public let thresholds: CircuitBreakerThresholds
    public let stats: UpstreamStats

    private let connections = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)
    private let retries = Atomic<Int>(0)

    public init(thresholds: CircuitBreakerThresholds, stats: UpstreamStats = UpstreamStats()) {
        self.thresholds = thresholds
        self.stats = stats
    }

    /// The limit in force for `r` now (the retry budget moves with the load).
    public func limit(_ r: BreakerResource) -> Int {
        switch r {
        case .connections: return thresholds.maxConnections
        case .pendingRequests: return thresholds.maxPendingRequests
        case .requests: return thresholds.maxRequests
        case .retries:
            guard let b = thresholds.retryBudget else { return thresholds.maxRetries }
            let load = pending.load(ordering: .relaxed) + requests.load(ordering: .relaxed)
            return max(Int(b.percent / 100 * Double(load)), b.minRetryConcurrency)
        }
    }

    /// The count of `r` now.
    public func count(_ r: BreakerResource) -> Int { withCounter(r) { $0.load(ordering: .relaxed) } }

    /// Takes one unit of `r` unless that would pass its limit; on overflow counts the Envoy
    /// stat (`r.overflowStatName`, unless `countingOverflow` is false: a pending request
    /// looking again for a slot is not a new overflow) and returns false.
    public func tryAcquire(_ r: BreakerResource, countingOverflow: Bool = true) -> Bool {
        let limit = self.limit(r)
        let acquired = withCounter(r) { c -> Bool in
            var current = c.load(ordering: .relaxed)
            while true {
                if current >= limit { return false }
                let (done, original) = c.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
                if done { return true }
                current = original
            }
        }
        if !acquired && countingOverflow {
            switch r {
            case .connections: stats.cxOverflow.wrappingAdd(1, ordering: .relaxed)
            case .pendingRequests, .requests: stats.rqPendingOverflow.wrappingAdd(1, ordering: .relaxed)
            case .retries: stats.rqRetryOverflow.wrappingAdd(1, ordering: .relaxed)
            }
        }
        return acquired
    }

    /// Gives back one unit of `r` taken by `tryAcquire`.
    public func release(_ r: BreakerResource) {
        withCounter(r) { _ = $0.wrappingSubtract(1, ordering: .acquiringAndReleasing) }
    }

    /// Whether `r` is at its limit now (the admin view's "circuit open").
    public func isOpen(_ r: BreakerResource) -> Bool { count(r) >= limit(r) }

    /// A consistent-enough view for `/clusters`.
    public var snapshot: [(resource: BreakerResource, count: Int, limit: Int)] {
        BreakerResource.allCases.map { ($0, count($0), limit($0)) }
    }

    @inline(__always) private func withCounter<T>(_ r: BreakerResource, _ body: (borrowing Atomic<Int>) -> T) -> T {
        switch r {
        case .connections: return body(connections)
        case .pendingRequests: return body(pending)
        case .requests: return body(requests)
        case .retries: return body(retries)
        }
    }
}
