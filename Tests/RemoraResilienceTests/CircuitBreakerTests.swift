import Foundation
@testable import RemoraResilience
import Synchronization
import XCTest

/// `CircuitBreaker`: Istio's connectionPool thresholds, shared atomic counters.
final class CircuitBreakerTests: XCTestCase {
    func testThresholdsFromConnectionPoolAndIstioDefaults() throws {
        let tp = try Decode.trafficPolicy("""
        host: svc
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 10}
            http: {http1MaxPendingRequests: 5, http2MaxRequests: 100, maxRequestsPerConnection: 1, maxRetries: 3}
        """)
        let t = CircuitBreakerThresholds(tp)
        XCTAssertEqual(t, CircuitBreakerThresholds(maxConnections: 10, maxPendingRequests: 5, maxRequests: 100, maxRetries: 3,
                                                   maxRequestsPerConnection: 1))
        XCTAssertTrue(t.connectionExhausted(requestsServed: 1))
        XCTAssertFalse(t.connectionExhausted(requestsServed: 0))

        let none = CircuitBreakerThresholds(nil)
        XCTAssertEqual(none.maxConnections, 4_294_967_295)
        XCTAssertEqual(none.maxPendingRequests, 4_294_967_295)
        XCTAssertEqual(none.maxRequests, 4_294_967_295)
        XCTAssertEqual(none.maxRetries, 4_294_967_295)
        XCTAssertNil(none.maxRequestsPerConnection)
        XCTAssertFalse(none.connectionExhausted(requestsServed: 1_000_000))

        let partial = CircuitBreakerThresholds(try Decode.trafficPolicy("""
        host: svc
        trafficPolicy: {connectionPool: {http: {http2MaxRequests: 7}}}
        """))
        XCTAssertEqual(partial.maxRequests, 7)
        XCTAssertEqual(partial.maxConnections, unlimitedThreshold)
    }

    func testOverflowIsRefusedAndCountedUnderEnvoysStatNames() {
        let b = CircuitBreaker(thresholds: CircuitBreakerThresholds(maxConnections: 2, maxPendingRequests: 1, maxRequests: 3, maxRetries: 1))
        XCTAssertTrue(b.tryAcquire(.connections))
        XCTAssertTrue(b.tryAcquire(.connections))
        XCTAssertFalse(b.tryAcquire(.connections))
        XCTAssertTrue(b.isOpen(.connections))
        XCTAssertTrue(b.tryAcquire(.pendingRequests))
        XCTAssertFalse(b.tryAcquire(.pendingRequests))
        for _ in 0..<3 { XCTAssertTrue(b.tryAcquire(.requests)) }
        XCTAssertFalse(b.tryAcquire(.requests))
        XCTAssertFalse(b.tryAcquire(.requests))
        XCTAssertTrue(b.tryAcquire(.retries))
        XCTAssertFalse(b.tryAcquire(.retries))
        XCTAssertEqual(b.stats.upstreamCxOverflow, 1)
        XCTAssertEqual(b.stats.upstreamRqPendingOverflow, 3, "pending and max-requests overflows")
        XCTAssertEqual(b.stats.upstreamRqRetryOverflow, 1)
        XCTAssertEqual(BreakerResource.connections.overflowStatName, "upstream_cx_overflow")
        XCTAssertEqual(BreakerResource.requests.overflowStatName, "upstream_rq_pending_overflow")
        XCTAssertEqual(BreakerResource.retries.overflowStatName, "upstream_rq_retry_overflow")
        b.release(.requests)
        XCTAssertFalse(b.isOpen(.requests))
        XCTAssertTrue(b.tryAcquire(.requests))
        XCTAssertEqual(b.snapshot.map(\.count), [2, 1, 3, 1])
        XCTAssertEqual(b.snapshot.map(\.limit), [2, 1, 3, 1])
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: b.stats.all.map { ($0.name, $0.value) })["upstream_cx_overflow"], 1)
    }

    /// Many threads hammer one breaker: no counter is ever seen above its limit, every
    /// acquire is released, and the refused acquires are exactly the overflow count.
    func testConcurrentWorkersNeverPassTheLimits() {
        let limits = CircuitBreakerThresholds(maxConnections: 3, maxPendingRequests: 5, maxRequests: 8, maxRetries: 2)
        let b = CircuitBreaker(thresholds: limits)
        let threads = 8
        let iterations = 20_000
        final class Seen: Sendable {
            let cx = Atomic<Int>(0), pending = Atomic<Int>(0), rq = Atomic<Int>(0), retries = Atomic<Int>(0), refused = Atomic<Int>(0)
        }
        let seen = Seen()
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                var rng = TestRandom(seed: UInt64(t + 1))
                var held: [BreakerResource] = []
                for _ in 0..<iterations {
                    // Each worker holds up to 4 units at a time, so 8 workers want up to 32.
                    if held.count < 4 && rng.next() % 3 != 0 {
                        let r = BreakerResource.allCases[Int(rng.next() % 4)]
                        if b.tryAcquire(r) {
                            held.append(r)
                            let now = b.count(r)
                            switch r {
                            case .connections: _ = seen.cx.max(now, ordering: .relaxed)
                            case .pendingRequests: _ = seen.pending.max(now, ordering: .relaxed)
                            case .requests: _ = seen.rq.max(now, ordering: .relaxed)
                            case .retries: _ = seen.retries.max(now, ordering: .relaxed)
                            }
                        } else {
                            seen.refused.wrappingAdd(1, ordering: .relaxed)
                        }
                    } else if !held.isEmpty {
                        b.release(held.remove(at: Int(rng.next() % UInt64(held.count))))
                    }
                }
                for r in held { b.release(r) }
                group.leave()
            }
        }
        group.wait()
        XCTAssertLessThanOrEqual(seen.cx.load(ordering: .relaxed), 3)
        XCTAssertLessThanOrEqual(seen.pending.load(ordering: .relaxed), 5)
        XCTAssertLessThanOrEqual(seen.rq.load(ordering: .relaxed), 8)
        XCTAssertLessThanOrEqual(seen.retries.load(ordering: .relaxed), 2)
        for r in BreakerResource.allCases { XCTAssertEqual(b.count(r), 0, "\(r) leaked") }
        let overflows = b.stats.upstreamCxOverflow + b.stats.upstreamRqPendingOverflow + b.stats.upstreamRqRetryOverflow
        XCTAssertEqual(overflows, seen.refused.load(ordering: .relaxed))
        print("circuit breaker: \(threads) threads × \(iterations) acquires, max seen",
              "cx \(seen.cx.load(ordering: .relaxed))/3 pending \(seen.pending.load(ordering: .relaxed))/5",
              "rq \(seen.rq.load(ordering: .relaxed))/8 retries \(seen.retries.load(ordering: .relaxed))/2, refused \(overflows)")
    }
}
