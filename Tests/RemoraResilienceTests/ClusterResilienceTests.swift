import RemoraConfig
@testable import RemoraResilience
import XCTest

/// `ClusterResilience`: the per-cluster bundle, and the pieces working together on a fake clock.
final class ClusterResilienceTests: XCTestCase {
    private let policyYAML = """
    host: svc
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
      connectionPool:
        tcp: {maxConnections: 100}
        http: {http2MaxRequests: 50, maxRetries: 4}
      outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 20s, maxEjectionPercent: 50}
    subsets:
    - name: v2
      labels: {version: v2}
      trafficPolicy:
        loadBalancer: {consistentHash: {httpHeaderName: userid}}
    """

    func testSettingsFromTheMergedTrafficPolicy() throws {
        let dr = try Decode.destinationRule(policyYAML)
        let s = ResilienceSettings(dr.spec.trafficPolicy)
        XCTAssertEqual(s.loadBalancer.algorithm, .roundRobin)
        XCTAssertEqual(s.thresholds.maxConnections, 100)
        XCTAssertEqual(s.thresholds.maxRequests, 50)
        XCTAssertEqual(s.thresholds.maxRetries, 4)
        XCTAssertEqual(s.thresholds.maxPendingRequests, unlimitedThreshold)
        XCTAssertEqual(s.outlier?.consecutive5xx, 3)
        XCTAssertEqual(s.outlier?.intervalMs, 5000)
        XCTAssertEqual(s.outlier?.baseEjectionMs, 20_000)
        XCTAssertEqual(s.outlier?.maxEjectionPercent, 50)
        // RemoraPolicy merges subset over host policy into ClusterSpec.trafficPolicy; the
        // subset's section alone decides the load balancer then.
        let subset = ResilienceSettings(dr.spec.subsets[0].trafficPolicy)
        XCTAssertEqual(subset.loadBalancer, LoadBalancerPolicy(algorithm: .ringHash(minimumRingSize: 1024), hashPolicy: .header("userid")))
        XCTAssertNil(subset.outlier)

        let none = ResilienceSettings(nil)
        XCTAssertEqual(none.loadBalancer.algorithm, .leastRequest)
        XCTAssertEqual(none.thresholds, CircuitBreakerThresholds())
        XCTAssertNil(none.outlier)
        XCTAssertNil(s.thresholds.retryBudget)
    }

    /// `trafficPolicy.retryBudget` comes with the merged policy; Istio's defaults fill what the
    /// block leaves out, and the budget, not `maxRetries`, then bounds the retries in flight.
    func testRetryBudgetFromThePolicyReplacesMaxRetries() throws {
        func budget(_ block: String) throws -> RetryBudget? {
            ResilienceSettings(try Decode.trafficPolicy("host: svc\ntrafficPolicy: {retryBudget: \(block)}")).thresholds.retryBudget
        }
        XCTAssertEqual(try budget("{percent: 10, minRetryConcurrency: 1}"), RetryBudget(percent: 10, minRetryConcurrency: 1))
        XCTAssertEqual(try budget("{}"), RetryBudget(percent: 20, minRetryConcurrency: 3))
        XCTAssertEqual(try budget("{percent: 2.5}"), RetryBudget(percent: 2.5, minRetryConcurrency: 3))
        XCTAssertEqual(try budget("{minRetryConcurrency: 0}"), RetryBudget(percent: 20, minRetryConcurrency: 3), "0 is proto3's unset")

        let policy = try Decode.trafficPolicy("""
        host: svc
        trafficPolicy:
          connectionPool: {http: {maxRetries: 1}}
          retryBudget: {percent: 50, minRetryConcurrency: 2}
        """)
        let c = ClusterResilience(name: "c", policy: policy, endpoints: endpoints(3))
        XCTAssertEqual(c.settings.thresholds.maxRetries, 1)
        XCTAssertEqual(c.breaker.limit(.retries), 2, "the minimum with nothing in flight; maxRetries ignored")
        for _ in 0..<10 { XCTAssertTrue(c.breaker.tryAcquire(.requests)) }
        XCTAssertEqual(c.breaker.limit(.retries), 5)
        let route = c.retryPolicy(try Decode.retries("{attempts: 1, retryOn: 5xx}"))
        var states = (0..<10).map { _ in RetryState(policy: route) }
        var retried = 0
        for i in states.indices {
            if case .retry = states[i].onAttemptFinished(.response(status: 503), breaker: c.breaker, random: 0) { retried += 1 }
        }
        XCTAssertEqual(retried, 5)
        XCTAssertEqual(c.stats.upstreamRqRetryOverflow, 5)
        for i in states.indices { states[i].finish(breaker: c.breaker) }
        for _ in 0..<10 { c.breaker.release(.requests) }
        XCTAssertEqual(c.breaker.count(.retries), 0)
    }

    func testEndpointUpdatesKeepBreakerStatsAndOutlierState() throws {
        let c = ClusterResilience(name: "outbound|80||svc", policy: try Decode.trafficPolicy(policyYAML), endpoints: endpoints(4))
        XCTAssertNotNil(c.outlier)
        XCTAssertNil(c.hashTable)
        for _ in 0..<3 { c.report(endpoint: 1, outcome: .response(status: 500), now: 0) }
        XCTAssertTrue(c.hosts.isEjected(1))
        XCTAssertTrue(c.breaker.tryAcquire(.requests))
        let d = c.withEndpoints(Array(endpoints(4)[1...]))
        XCTAssertTrue(d.breaker === c.breaker)
        XCTAssertEqual(d.breaker.count(.requests), 1)
        XCTAssertTrue(d.hosts.isEjected(0), "the ejected endpoint keeps its ejection at its new index")
        XCTAssertEqual(d.outlier?.ejectionsEnforcedTotal, 1)

        let tighter = ResilienceSettings(loadBalancer: LoadBalancerPolicy(algorithm: .maglev(tableSize: 101)),
                                         thresholds: CircuitBreakerThresholds(maxRequests: 1), outlier: d.settings.outlier)
        let e = d.updated(settings: tighter, endpoints: endpoints(3, from: 1))
        XCTAssertFalse(e.breaker === d.breaker)
        XCTAssertTrue(e.stats === d.stats)
        XCTAssertEqual(e.hashTable?.kind, .maglev)
        XCTAssertTrue(e.hosts.isEjected(0))
        let f = e.updated(settings: ResilienceSettings(nil), endpoints: endpoints(3, from: 1))
        XCTAssertNil(f.outlier)
        XCTAssertFalse(f.hosts.isEjected(0), "outlier detection removed: nothing ejected")
        d.breaker.release(.requests)
    }

    func testRetryPolicyFollowsTheClusterHashing() throws {
        let hashed = ClusterResilience(name: "h", settings: ResilienceSettings(
            loadBalancer: LoadBalancerPolicy(algorithm: .ringHash(minimumRingSize: 64), hashPolicy: .header("u"))), endpoints: endpoints(3))
        XCTAssertFalse(hashed.retryPolicy(nil).ignorePreviousHosts)
        XCTAssertNotNil(hashed.hashTable)
        XCTAssertTrue(hashed.retryPolicy(try Decode.retries("{attempts: 2, retryIgnorePreviousHosts: true}")).ignorePreviousHosts)
        let plain = ClusterResilience(name: "p", policy: nil, endpoints: endpoints(3))
        XCTAssertTrue(plain.retryPolicy(nil).ignorePreviousHosts)
        XCTAssertEqual(plain.retryPolicy(try Decode.retries("{attempts: 0}")), .disabled)
    }

    /// A request path driven by hand: one endpoint answers 503; retries go elsewhere, the
    /// endpoint gets ejected and skipped by every worker, then comes back after its time.
    func testFailingEndpointIsRetriedAroundEjectedAndRestored() throws {
        let policy = try Decode.trafficPolicy("""
        host: svc
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 10s, maxEjectionPercent: 100}
        """)
        let cluster = ClusterResilience(name: "c", policy: policy, endpoints: endpoints(3))
        var workers = [cluster.makeLoadBalancer(seed: 0), cluster.makeLoadBalancer(seed: 1)]
        let route = cluster.retryPolicy(try Decode.retries("{attempts: 2, retryOn: \"5xx\"}"))
        var rng = TestRandom(seed: 5)
        var now: UInt64 = 0
        let bad = 1

        func request(_ w: Int) -> (status: Int, hosts: [Int]) {
            var rs = RetryState(policy: route)
            defer { rs.finish(breaker: cluster.breaker) }
            var used: [Int] = []
            XCTAssertTrue(cluster.breaker.tryAcquire(.requests))
            defer { cluster.breaker.release(.requests) }
            while true {
                let host = workers[w].pick(random: rng.next(), for: rs)!
                rs.recordHost(host)
                used.append(host)
                cluster.hosts.requestStarted(host)
                let status = host == bad ? 503 : 200
                cluster.hosts.requestFinished(host)
                cluster.report(endpoint: host, outcome: .response(status: status), now: now)
                switch rs.onAttemptFinished(.response(status: status), breaker: cluster.breaker, random: rng.next()) {
                case .retry(let ms): now += UInt64(ms)
                case .stop: return (status, used)
                }
            }
        }

        var statuses: [Int] = []
        var hostsUsed: [[Int]] = []
        for i in 0..<12 {
            let r = request(i % 2)
            statuses.append(r.status)
            hostsUsed.append(r.hosts)
            now += 100
        }
        XCTAssertEqual(statuses, Array(repeating: 200, count: 12), "every failure was retried on another host")
        XCTAssertTrue(cluster.hosts.isEjected(bad), "3 consecutive 503s")
        XCTAssertEqual(cluster.outlier?.activeEjections, 1)
        XCTAssertEqual(hostsUsed.filter { $0.first == bad }.count, 3, "picked first 3 times, then ejected")
        XCTAssertTrue(hostsUsed.allSatisfy { $0.count == 1 || ($0.count == 2 && $0[0] == bad && $0[1] != bad) })
        // While ejected, no worker picks it.
        for i in 0..<20 { XCTAssertFalse(request(i % 2).hosts.contains(bad)) }
        XCTAssertEqual(cluster.stats.upstreamRqRetry, 3)
        XCTAssertEqual(cluster.stats.upstreamRqRetrySuccess, 3)
        // The sweep brings it back after baseEjectionTime (ejected before `now`).
        let ejectedAt = now
        var t = ejectedAt
        while cluster.hosts.isEjected(bad) {
            t += 1000
            cluster.outlier!.tick(now: t)
        }
        XCTAssertLessThanOrEqual(t - ejectedAt, 11_000)
        now = t
        var picked = false
        for i in 0..<6 where request(i % 2).hosts.contains(bad) { picked = true }
        XCTAssertTrue(picked, "back in rotation")
        XCTAssertEqual(cluster.breaker.count(.requests), 0)
        XCTAssertEqual(cluster.breaker.count(.retries), 0)
    }
}
