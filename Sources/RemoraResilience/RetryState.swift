/// The hosts a request has tried (Envoy's `previous_hosts` predicate), without allocating:
/// the last 8 host indices, inline.
public struct TriedHosts: Sendable, Hashable {
    private var slots = SIMD8<Int32>(repeating: -1)
    public private(set) var count = 0

    public init() {}

    public mutating func insert(_ host: Int) {
        if contains(host) { return }
        slots[count & 7] = Int32(truncatingIfNeeded: host)
        count += 1
    }

    public func contains(_ host: Int) -> Bool {
        let h = Int32(truncatingIfNeeded: host)
        for i in 0..<min(count, 8) where slots[i] == h { return true }
        return false
    }

    public var isEmpty: Bool { count == 0 }
}

/// Why a request stops retrying (for logs and the access log's `URX`: `.limitExceeded`).
public enum RetryStop: Sendable, Hashable {
    /// The outcome is not one the policy retries (success, or a failure it does not cover).
    case notRetriable
    /// Retriable, but no retry is left (Envoy `upstream_rq_retry_limit_exceeded`, flag `URX`).
    case limitExceeded
    /// Retriable, but the retry circuit breaker or budget refused (`upstream_rq_retry_overflow`).
    case overflow
    /// Retriable, but the request body outgrew the replay buffer (`retry_or_shadow_abandoned`).
    case bodyNotBuffered
    /// The response had started towards the client.
    case responseStarted
    /// The route has no retry policy.
    case disabled
}

public enum RetryDecision: Sendable, Hashable {
    /// Retry after waiting this long (the backoff); pick the next host with
    /// `state.triedHosts` to avoid (when `policy.ignorePreviousHosts`).
    case retry(afterMs: Int)
    case stop(RetryStop)
}

/// One request's retry state machine (Envoy's `RetryStateImpl`), a value the exchange owns.
///
/// ```
/// var rs = RetryState(policy: route.retryPolicy)
/// loop:
///   host = lb.pick(..., avoiding: rs.avoidedHosts, ...); rs.recordHost(host)
///   send attempt rs.attempt (arm perTryTimeout if policy.perTryTimeoutMs)
///   outcome = ... (decided on the response head, before anything goes to the client)
///   switch rs.onAttemptFinished(outcome, breaker: cluster.breaker, random: rng.next()) {
///   case .retry(let ms): wait ms, goto loop      // the request body is replayed from its buffer
///   case .stop: forward the response / the error
///   }
/// at the end, always: rs.finish(breaker: cluster.breaker)
/// ```
/// A retry holds one unit of the cluster's `.retries` resource from the decision until the
/// next decision (through the backoff and the retry attempt) or `finish`, as in Envoy.
public struct RetryState: Sendable {
    public let policy: RetryPolicy
    /// The attempt in progress: 1 for the original request, 2 for the first retry, ...
    public private(set) var attempt = 1
    public private(set) var triedHosts = TriedHosts()
    /// False once the request body outgrew the replay buffer.
    public private(set) var bodyReplayable = true
    public private(set) var responseStarted = false
    private var holdsRetry = false

    public init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// Remembers the host of the attempt in progress.
    public mutating func recordHost(_ host: Int) { triedHosts.insert(host) }

    /// The hosts the next pick should avoid (empty unless the policy ignores previous hosts).
    public var avoidedHosts: TriedHosts { policy.ignorePreviousHosts ? triedHosts : TriedHosts() }

    /// The request body no longer fits the replay buffer: no retry is possible any more.
    /// Counted once (`retry_or_shadow_abandoned`) when the route could have retried.
    public mutating func requestBodyExceededBuffer(stats: UpstreamStats) {
        guard bodyReplayable else { return }
        bodyReplayable = false
        if policy.isEnabled && !responseStarted { stats.abandoned.wrappingAdd(1, ordering: .relaxed) }
    }

    /// The response head has been sent (or started) to the client: never retry after this.
    public mutating func markResponseStarted() { responseStarted = true }

    /// The decision after the attempt in progress ended with `outcome`. `random` feeds the
    /// backoff jitter. Counts `upstream_rq_retry`, `_retry_success`, `_retry_limit_exceeded`,
    /// `_retry_overflow` and `_per_try_timeout` in `breaker.stats`.
    public mutating func onAttemptFinished(_ outcome: AttemptOutcome, breaker: CircuitBreaker, random: UInt64) -> RetryDecision {
        let stats = breaker.stats
        let wasRetry = holdsRetry
        releaseRetry(breaker)
        if outcome == .perTryTimeout { stats.rqPerTryTimeout.wrappingAdd(1, ordering: .relaxed) }
        guard policy.isEnabled else { return .stop(.disabled) }
        if responseStarted { return .stop(.responseStarted) }
        guard policy.matches(outcome) else {
            if wasRetry { stats.rqRetrySuccess.wrappingAdd(1, ordering: .relaxed) }
            return .stop(.notRetriable)
        }
        guard attempt <= policy.numRetries else {
            stats.rqRetryLimitExceeded.wrappingAdd(1, ordering: .relaxed)
            return .stop(.limitExceeded)
        }
        guard bodyReplayable else { return .stop(.bodyNotBuffered) }
        guard breaker.tryAcquire(.retries) else { return .stop(.overflow) }
        holdsRetry = true
        stats.rqRetry.wrappingAdd(1, ordering: .relaxed)
        let backoff = policy.backoffMs(attempt: attempt, random: random)
        attempt += 1
        return .retry(afterMs: backoff)
    }

    /// Ends the request: gives back a retry unit still held. Idempotent; call on every path
    /// (success, final failure, client gone).
    public mutating func finish(breaker: CircuitBreaker) { releaseRetry(breaker) }

    private mutating func releaseRetry(_ breaker: CircuitBreaker) {
        if holdsRetry {
            breaker.release(.retries)
            holdsRetry = false
        }
    }
}
