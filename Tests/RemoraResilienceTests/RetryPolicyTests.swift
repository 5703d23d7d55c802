import RemoraConfig
@testable import RemoraResilience
import XCTest

/// `RetryPolicy`: Istio's compilation of `retries` and Envoy's `retryOn` matching.
final class RetryPolicyTests: XCTestCase {
    private let failures: [AttemptOutcome] = [.connectFailure, .reset, .resetBeforeRequest, .refusedStream, .perTryTimeout]

    private func policy(_ retryOn: String, attempts: Int = 3) -> RetryPolicy {
        XCTAssertEqual(RetryOn.errors(retryOn), [], retryOn)
        let parsed = RetryPolicy.parseRetryOn(retryOn)
        var c = parsed.conditions
        if !parsed.statusCodes.isEmpty { c.insert(.retriableStatusCodes) }
        return RetryPolicy(numRetries: attempts, conditions: c, retriableStatusCodes: parsed.statusCodes)
    }

    /// Every outcome class, with what each single token must say about it.
    private func check(_ token: String, retries expected: Set<String>, file: StaticString = #filePath, line: UInt = #line) {
        let p = policy(token)
        let cases: [(String, AttemptOutcome)] = [
            ("connect", .connectFailure), ("reset", .reset), ("resetBeforeRequest", .resetBeforeRequest),
            ("refused", .refusedStream), ("perTryTimeout", .perTryTimeout),
            ("200", .response(status: 200)), ("404", .response(status: 404)), ("409", .response(status: 409)),
            ("429", .response(status: 429)), ("500", .response(status: 500)), ("501", .response(status: 501)),
            ("502", .response(status: 502)), ("503", .response(status: 503)), ("504", .response(status: 504)),
            ("grpc1", .response(status: 200, grpcStatus: 1)), ("grpc4", .response(status: 200, grpcStatus: 4)),
            ("grpc8", .response(status: 200, grpcStatus: 8)), ("grpc13", .response(status: 200, grpcStatus: 13)),
            ("grpc14", .response(status: 200, grpcStatus: 14)), ("grpc0", .response(status: 200, grpcStatus: 0)),
            ("grpc2", .response(status: 200, grpcStatus: 2)),
            ("ratelimited429", .response(status: 429, rateLimited: true)),
        ]
        var got = Set<String>()
        for (name, o) in cases where p.matches(o) { got.insert(name) }
        XCTAssertEqual(got, expected, "retryOn: \(token)", file: file, line: line)
    }

    func testEachTokenMatchesItsOutcomesAndNothingElse() {
        let allFailures: Set = ["connect", "reset", "resetBeforeRequest", "refused", "perTryTimeout"]
        check("5xx", retries: allFailures.union(["500", "501", "502", "503", "504"]))
        check("gateway-error", retries: allFailures.union(["502", "503", "504"]))
        check("reset", retries: allFailures)
        check("reset-before-request", retries: ["connect", "resetBeforeRequest"])
        check("connect-failure", retries: ["connect"])
        check("refused-stream", retries: ["refused"])
        check("retriable-4xx", retries: ["409"])
        check("retriable-status-codes", retries: [])  // no codes listed: nothing
        check("retriable-headers", retries: [])
        check("http3-post-connect-failure", retries: [])
        check("envoy-ratelimited", retries: ["ratelimited429"])
        check("cancelled", retries: ["grpc1"])
        check("deadline-exceeded", retries: ["grpc4"])
        check("resource-exhausted", retries: ["grpc8"])
        check("internal", retries: ["grpc13"])
        check("unavailable", retries: ["grpc14"])
        check("503", retries: ["503"])
        check("429,504", retries: ["429", "504"])
        check(" 5xx , 409 ", retries: allFailures.union(["500", "501", "502", "503", "504", "409"]))
    }

    func testRateLimitedResponseIsRetriedOnlyUnderEnvoyRatelimited() {
        let p = policy("5xx,429")
        XCTAssertFalse(p.matches(.response(status: 503, rateLimited: true)))
        XCTAssertTrue(p.matches(.response(status: 503)))
        XCTAssertTrue(p.matches(.response(status: 429)))
    }

    func testGrpcStatusComesFromTrailersOnlyHeadersWhateverTheHTTPStatus() {
        let p = policy("unavailable,cancelled")
        XCTAssertTrue(p.matches(.response(status: 200, grpcStatus: 14)))
        XCTAssertTrue(p.matches(.response(status: 200, grpcStatus: 1)))
        XCTAssertFalse(p.matches(.response(status: 200, grpcStatus: 13)))
        XCTAssertFalse(p.matches(.response(status: 200)))  // status in trailers later: not seen
        XCTAssertFalse(p.matches(.response(status: 503)))  // HTTP 503 is not a gRPC condition
    }

    func testEveryConfigNameHasItsOwnConditionAndUnknownTokensAreSkipped() {
        // RemoraConfig holds the accepted names; each must map to one distinct condition here.
        XCTAssertEqual(RetryConditions.tokens.map(\.0), RetryOn.conditionNames)
        var seen: RetryConditions = []
        for (t, c) in RetryConditions.tokens {
            XCTAssertEqual(c.rawValue.nonzeroBitCount, 1, t)
            XCTAssertFalse(seen.contains(c), "\(t) shares a condition")
            seen.insert(c)
            XCTAssertEqual(RetryPolicy.parseRetryOn(t).conditions, c, t)
            XCTAssertEqual(c.tokenList, t)
        }
        // Validation rejects these; compiling an unvalidated value just skips them.
        let r = RetryPolicy.parseRetryOn("5xx,bogus,599,503,,connect-failure,Reset")
        XCTAssertEqual(r.conditions, [.fiveXX, .connectFailure])
        XCTAssertEqual(r.statusCodes, [503])
    }

    func testIstioDefaultWhenRetriesAbsent() throws {
        let p = RetryPolicy(try Decode.retries(nil))
        XCTAssertEqual(p, RetryPolicy.istioDefault())
        XCTAssertEqual(p.numRetries, 2)
        XCTAssertEqual(p.conditions.tokenList, "connect-failure,refused-stream,retriable-status-codes,cancelled,unavailable")
        XCTAssertEqual(p.retriableStatusCodes, [503])
        XCTAssertTrue(p.ignorePreviousHosts)
        XCTAssertEqual(p.hostSelectionMaxAttempts, 5)
        XCTAssertNil(p.perTryTimeoutMs)
        for o: AttemptOutcome in [.connectFailure, .refusedStream, .response(status: 503), .response(status: 200, grpcStatus: 14),
                                  .response(status: 200, grpcStatus: 1)] {
            XCTAssertTrue(p.shouldRetry(outcome: o, attempt: 1), "\(o)")
            XCTAssertTrue(p.shouldRetry(outcome: o, attempt: 2), "\(o)")
            XCTAssertFalse(p.shouldRetry(outcome: o, attempt: 3), "\(o): 2 retries only")
        }
        for o: AttemptOutcome in [.reset, .perTryTimeout, .response(status: 500), .response(status: 502), .response(status: 504),
                                  .response(status: 200), .response(status: 200, grpcStatus: 4)] {
            XCTAssertFalse(p.shouldRetry(outcome: o, attempt: 1), "\(o)")
        }
        // With consistent hashing Istio keeps retries on the hashed host.
        XCTAssertFalse(RetryPolicy(nil, consistentHash: true).ignorePreviousHosts)
    }

    func testAttemptsZeroOrAbsentDisablesEverything() throws {
        for yaml in ["{attempts: 0, perTryTimeout: 1s}", "{perTryTimeout: 2s, retryOn: 5xx}"] {
            let p = RetryPolicy(try Decode.retries(yaml))
            XCTAssertEqual(p, .disabled, yaml)
            XCTAssertFalse(p.isEnabled)
            XCTAssertNil(p.perTryTimeoutMs)
            XCTAssertFalse(p.shouldRetry(outcome: .connectFailure, attempt: 1))
        }
    }

    func testCompiledFromRoute() throws {
        let p = RetryPolicy(try Decode.retries("{attempts: 3, perTryTimeout: 250ms, retryOn: \"gateway-error,409, 429\"}"))
        XCTAssertEqual(p.numRetries, 3)
        XCTAssertEqual(p.perTryTimeoutMs, 250)
        XCTAssertEqual(p.conditions, [.gatewayError, .retriableStatusCodes])
        XCTAssertEqual(p.retriableStatusCodes, [409, 429])
        XCTAssertTrue(p.ignorePreviousHosts)
        XCTAssertTrue(p.shouldRetry(outcome: .response(status: 429), attempt: 3))
        XCTAssertFalse(p.shouldRetry(outcome: .response(status: 429), attempt: 4))
        XCTAssertFalse(p.shouldRetry(outcome: .response(status: 500), attempt: 1))
        XCTAssertTrue(p.shouldRetry(outcome: .perTryTimeout, attempt: 1))

        // attempts without retryOn keeps Istio's default conditions and 503.
        let d = RetryPolicy(try Decode.retries("{attempts: 5}"))
        XCTAssertEqual(d.numRetries, 5)
        XCTAssertEqual(d.conditions, RetryPolicy.istioDefaultConditions)
        XCTAssertEqual(d.retriableStatusCodes, [503])

        let o = RetryPolicy(try Decode.retries("{attempts: 1, retryOn: reset, retryIgnorePreviousHosts: false, backoff: 100ms}"))
        XCTAssertFalse(o.ignorePreviousHosts)
        XCTAssertEqual(o.backoffBaseMs, 100)
        XCTAssertEqual(o.backoffMaxMs, 1000, "Envoy's default max interval: 10 × base")
        XCTAssertEqual(o.retriableStatusCodes, [])
        XCTAssertEqual(d.backoffBaseMs, 25, "no backoff: Envoy's 25 ms")
        XCTAssertEqual(d.backoffMaxMs, 250)
    }

    /// Istio: `retryIgnorePreviousHosts`, when written, decides; absent, the predicate is on
    /// unless the destination hashes (then a retry stays on the hashed host).
    func testRetryIgnorePreviousHostsOverridesTheHashingDefault() throws {
        let cases: [(yaml: String, hashed: Bool, expected: Bool)] = [
            ("{attempts: 2}", false, true), ("{attempts: 2}", true, false),
            ("{attempts: 2, retryIgnorePreviousHosts: true}", true, true),
            ("{attempts: 2, retryIgnorePreviousHosts: false}", false, false),
            ("{attempts: 2, retryIgnorePreviousHosts: true}", false, true),
        ]
        for c in cases {
            let p = RetryPolicy(try Decode.retries(c.yaml), consistentHash: c.hashed)
            XCTAssertEqual(p.ignorePreviousHosts, c.expected, "\(c.yaml), consistent hash: \(c.hashed)")
            var rs = RetryState(policy: p)
            rs.recordHost(4)
            XCTAssertEqual(rs.avoidedHosts.contains(4), c.expected, c.yaml)
        }
        // Disabled retries have no predicate whatever the field says.
        XCTAssertEqual(RetryPolicy(try Decode.retries("{attempts: 0}")), .disabled)
    }

    /// The route's `backoff` is the base of the jittered exponential wait between retries, on
    /// a fake clock: each wait is below min(base × 2^(n-1), 10 × base).
    func testBackoffFromTheRouteBoundsEachWait() throws {
        let p = RetryPolicy(try Decode.retries("{attempts: 6, retryOn: 5xx, backoff: 40ms}"))
        XCTAssertEqual((1...6).map { p.backoffIntervalMs(retry: $0) }, [40, 80, 160, 320, 400, 400])
        let breaker = CircuitBreaker(thresholds: CircuitBreakerThresholds())
        var rng = TestRandom(seed: 11)
        var maxSeen = [Int](repeating: 0, count: 7)
        for _ in 0..<400 {
            var rs = RetryState(policy: p)
            var now = 0
            for retry in 1...6 {
                guard case .retry(let ms) = rs.onAttemptFinished(.response(status: 503), breaker: breaker, random: rng.next()) else {
                    return XCTFail("retry \(retry) refused")
                }
                XCTAssertLessThan(ms, p.backoffIntervalMs(retry: retry))
                maxSeen[retry] = max(maxSeen[retry], ms)
                now += ms
            }
            XCTAssertEqual(rs.onAttemptFinished(.response(status: 503), breaker: breaker, random: rng.next()), .stop(.limitExceeded))
            XCTAssertLessThan(now, 40 + 80 + 160 + 320 + 400 + 400)
            rs.finish(breaker: breaker)
        }
        // The jitter spreads over each whole interval.
        for retry in 1...6 { XCTAssertGreaterThan(maxSeen[retry], p.backoffIntervalMs(retry: retry) * 9 / 10, "retry \(retry)") }
    }

    func testBackoffIsFullJitterUnderADoublingCappedInterval() {
        let p = RetryPolicy.istioDefault()
        XCTAssertEqual((1...7).map { p.backoffIntervalMs(retry: $0) }, [25, 50, 100, 200, 250, 250, 250])
        XCTAssertEqual(p.backoffIntervalMs(retry: 200), 250)
        var rng = TestRandom(seed: 7)
        for retry in 1...8 {
            let bound = p.backoffIntervalMs(retry: retry)
            var seen = Set<Int>()
            for _ in 0..<5000 {
                let b = p.backoffMs(attempt: retry, random: rng.next())
                XCTAssertGreaterThanOrEqual(b, 0)
                XCTAssertLessThan(b, bound)
                seen.insert(b)
            }
            // Uniform over the whole interval: (nearly) every value shows up.
            XCTAssertGreaterThanOrEqual(seen.count, bound * 9 / 10, "retry \(retry)")
        }
        XCTAssertEqual(p.backoffMs(attempt: 1, random: 24), 24)
        XCTAssertEqual(p.backoffMs(attempt: 1, random: 25), 0)
        XCTAssertEqual(p.backoffMs(attempt: 3, random: 99), 99)
        XCTAssertEqual(p.backoffMs(attempt: 9, random: UInt64.max), Int(UInt64.max % 250))
    }
}
