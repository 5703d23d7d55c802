@testable import RemoraResilience
import XCTest

/// `RetryState`: one request's retry state machine against a cluster's circuit breaker.
final class RetryStateTests: XCTestCase {
    private var rng = TestRandom(seed: 42)

    private func breaker(maxRetries: Int = unlimitedThreshold, budget: RetryBudget? = nil) -> CircuitBreaker {
        CircuitBreaker(thresholds: CircuitBreakerThresholds(maxRetries: maxRetries, retryBudget: budget))
    }

    func testRetriesUntilAttemptsAreExhausted() {
        let b = breaker()
        var rs = RetryState(policy: RetryPolicy(numRetries: 2, conditions: .fiveXX))
        XCTAssertEqual(rs.attempt, 1)
        guard case .retry(let w1) = rs.onAttemptFinished(.response(status: 503), breaker: b, random: rng.next()) else { return XCTFail() }
        XCTAssert((0..<25).contains(w1))
        XCTAssertEqual(rs.attempt, 2)
        XCTAssertEqual(b.count(.retries), 1, "held through the backoff and the retry")
        guard case .retry(let w2) = rs.onAttemptFinished(.reset, breaker: b, random: rng.next()) else { return XCTFail() }
        XCTAssert((0..<50).contains(w2))
        XCTAssertEqual(rs.attempt, 3)
        XCTAssertEqual(b.count(.retries), 1)
        XCTAssertEqual(rs.onAttemptFinished(.response(status: 500), breaker: b, random: rng.next()), .stop(.limitExceeded))
        XCTAssertEqual(b.count(.retries), 0)
        rs.finish(breaker: b)
        XCTAssertEqual(b.count(.retries), 0)
        XCTAssertEqual(b.stats.upstreamRqRetry, 2)
        XCTAssertEqual(b.stats.upstreamRqRetryLimitExceeded, 1)
        XCTAssertEqual(b.stats.upstreamRqRetrySuccess, 0)
    }

    func testSuccessAfterARetryIsCountedAndReleasesTheRetry() {
        let b = breaker()
        var rs = RetryState(policy: .istioDefault())
        XCTAssertEqual(rs.onAttemptFinished(.connectFailure, breaker: b, random: 3), .retry(afterMs: 3))
        XCTAssertEqual(rs.onAttemptFinished(.response(status: 200), breaker: b, random: 3), .stop(.notRetriable))
        XCTAssertEqual(b.count(.retries), 0)
        XCTAssertEqual(b.stats.upstreamRqRetrySuccess, 1)
        // A request that never retried is not a "retry success".
        var first = RetryState(policy: .istioDefault())
        XCTAssertEqual(first.onAttemptFinished(.response(status: 200), breaker: b, random: 3), .stop(.notRetriable))
        XCTAssertEqual(b.stats.upstreamRqRetrySuccess, 1)
    }

    func testDisabledPolicyNeverRetries() {
        let b = breaker()
        var rs = RetryState(policy: .disabled)
        XCTAssertEqual(rs.onAttemptFinished(.connectFailure, breaker: b, random: 0), .stop(.disabled))
        XCTAssertEqual(b.stats.upstreamRqRetry, 0)
    }

    func testNeverRetriesOnceTheResponseStarted() {
        let b = breaker()
        var rs = RetryState(policy: RetryPolicy(numRetries: 3, conditions: .reset))
        rs.markResponseStarted()
        XCTAssertEqual(rs.onAttemptFinished(.reset, breaker: b, random: 0), .stop(.responseStarted))
        XCTAssertEqual(b.count(.retries), 0)
    }

    func testBodyOutgrowingTheBufferStopsRetriesAndIsCountedOnce() {
        let b = breaker()
        var rs = RetryState(policy: RetryPolicy(numRetries: 3, conditions: .fiveXX))
        rs.requestBodyExceededBuffer(stats: b.stats)
        rs.requestBodyExceededBuffer(stats: b.stats)
        XCTAssertEqual(b.stats.retryOrShadowAbandoned, 1)
        XCTAssertEqual(rs.onAttemptFinished(.response(status: 503), breaker: b, random: 0), .stop(.bodyNotBuffered))
        XCTAssertEqual(rs.onAttemptFinished(.response(status: 200), breaker: b, random: 0), .stop(.notRetriable))
        // Not counted when the route could not retry anyway.
        var off = RetryState(policy: .disabled)
        off.requestBodyExceededBuffer(stats: b.stats)
        XCTAssertEqual(b.stats.retryOrShadowAbandoned, 1)
    }

    func testMaxRetriesIsAConcurrentRetryCircuitBreaker() {
        let b = breaker(maxRetries: 2)
        let p = RetryPolicy(numRetries: 5, conditions: .connectFailure)
        var r1 = RetryState(policy: p), r2 = RetryState(policy: p), r3 = RetryState(policy: p)
        XCTAssertEqual(r1.onAttemptFinished(.connectFailure, breaker: b, random: 0), .retry(afterMs: 0))
        XCTAssertEqual(r2.onAttemptFinished(.connectFailure, breaker: b, random: 0), .retry(afterMs: 0))
        XCTAssertEqual(r3.onAttemptFinished(.connectFailure, breaker: b, random: 0), .stop(.overflow))
        XCTAssertEqual(b.stats.upstreamRqRetryOverflow, 1)
        XCTAssertEqual(b.count(.retries), 2)
        // r1's retry ends (success): its unit comes back and r3's next request may retry.
        XCTAssertEqual(r1.onAttemptFinished(.response(status: 200), breaker: b, random: 0), .stop(.notRetriable))
        var r4 = RetryState(policy: p)
        XCTAssertEqual(r4.onAttemptFinished(.connectFailure, breaker: b, random: 0), .retry(afterMs: 0))
        r2.finish(breaker: b)
        r4.finish(breaker: b)
        r4.finish(breaker: b)
        XCTAssertEqual(b.count(.retries), 0)
    }

    func testRetryBudgetIsAShareOfActiveRequestsWithAMinimum() {
        let b = breaker(maxRetries: 1, budget: RetryBudget(percent: 25, minRetryConcurrency: 2))
        XCTAssertEqual(b.limit(.retries), 2, "minimum concurrency with no load (maxRetries ignored)")
        for _ in 0..<20 { XCTAssertTrue(b.tryAcquire(.requests)) }
        XCTAssertEqual(b.limit(.retries), 5)
        for _ in 0..<4 { XCTAssertTrue(b.tryAcquire(.pendingRequests)) }
        XCTAssertEqual(b.limit(.retries), 6)
        let p = RetryPolicy(numRetries: 1, conditions: .fiveXX)
        var states = (0..<8).map { _ in RetryState(policy: p) }
        var retried = 0
        for i in states.indices {
            if case .retry = states[i].onAttemptFinished(.response(status: 502), breaker: b, random: 0) { retried += 1 }
        }
        XCTAssertEqual(retried, 6)
        XCTAssertEqual(b.stats.upstreamRqRetryOverflow, 2)
        for i in states.indices { states[i].finish(breaker: b) }
        XCTAssertEqual(b.count(.retries), 0)
        XCTAssertEqual(RetryBudget(), RetryBudget(percent: 20, minRetryConcurrency: 3))
    }

    func testPerTryTimeoutIsCountedAndRetriedUnderResetRules() {
        let b = breaker()
        var rs = RetryState(policy: RetryPolicy(numRetries: 1, conditions: .gatewayError, perTryTimeoutMs: 100))
        XCTAssertEqual(rs.policy.perTryTimeoutMs, 100)
        guard case .retry = rs.onAttemptFinished(.perTryTimeout, breaker: b, random: 9) else { return XCTFail() }
        XCTAssertEqual(rs.onAttemptFinished(.perTryTimeout, breaker: b, random: 9), .stop(.limitExceeded))
        XCTAssertEqual(b.stats.upstreamRqPerTryTimeout, 2)
        var cf = RetryState(policy: RetryPolicy(numRetries: 1, conditions: .connectFailure, perTryTimeoutMs: 100))
        XCTAssertEqual(cf.onAttemptFinished(.perTryTimeout, breaker: b, random: 9), .stop(.notRetriable))
    }

    func testTriedHostsAreRememberedForTheNextPick() {
        var rs = RetryState(policy: .istioDefault())
        rs.recordHost(3)
        rs.recordHost(7)
        rs.recordHost(3)
        XCTAssertEqual(rs.triedHosts.count, 2)
        XCTAssertTrue(rs.avoidedHosts.contains(3))
        XCTAssertTrue(rs.avoidedHosts.contains(7))
        XCTAssertFalse(rs.avoidedHosts.contains(4))
        var hashed = RetryState(policy: .istioDefault(consistentHash: true))
        hashed.recordHost(3)
        XCTAssertTrue(hashed.avoidedHosts.isEmpty, "consistent hashing: no previous-hosts predicate")

        var t = TriedHosts()
        for h in 0..<10 { t.insert(h) }
        XCTAssertEqual(t.count, 10)
        XCTAssertFalse(t.contains(0), "only the last 8 are kept")
        XCTAssertTrue(t.contains(2))
        XCTAssertTrue(t.contains(9))
    }
}
