import Foundation
@testable import RemoraResilience
import XCTest

/// `OutlierDetector` with a fake clock: Envoy's consecutive-error ejection as Istio configures it.
final class OutlierDetectorTests: XCTestCase {
    private func detector(_ n: Int, _ s: OutlierSettings) -> OutlierDetector {
        OutlierDetector(settings: s, hosts: HostSet(endpoints(n)))
    }

    private func fail(_ d: OutlierDetector, _ host: Int, times: Int, status: Int = 500, now: UInt64) {
        for _ in 0..<times { d.report(endpoint: host, outcome: .response(status: status), now: now) }
    }

    func testSettingsFromIstioWithItsDefaults() throws {
        let tp = try Decode.trafficPolicy("""
        host: svc
        trafficPolicy:
          outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 15s, maxEjectionPercent: 50, minHealthPercent: 30}
        """)
        let s = OutlierSettings(try XCTUnwrap(tp?.outlierDetection))
        XCTAssertEqual(s, OutlierSettings(consecutive5xx: 3, consecutiveGatewayErrors: nil, intervalMs: 1000, baseEjectionMs: 15_000,
                                          maxEjectionPercent: 50, minHealthPercent: 30))
        let empty = OutlierSettings(try XCTUnwrap(try Decode.trafficPolicy("host: svc\ntrafficPolicy: {outlierDetection: {}}")?.outlierDetection))
        XCTAssertEqual(empty.consecutive5xx, 5)
        XCTAssertNil(empty.consecutiveGatewayErrors)
        XCTAssertEqual(empty.intervalMs, 10_000)
        XCTAssertEqual(empty.baseEjectionMs, 30_000)
        XCTAssertEqual(empty.maxEjectionMs, 300_000)
        XCTAssertEqual(empty.maxEjectionPercent, 10)
        XCTAssertEqual(empty.minHealthPercent, 0)
        XCTAssertFalse(empty.splitExternalLocalOriginErrors)
        let off = OutlierSettings(try XCTUnwrap(try Decode.trafficPolicy(
            "host: svc\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}}")?.outlierDetection))
        XCTAssertNil(off.consecutive5xx)
        XCTAssertEqual(off.consecutiveGatewayErrors, 2)
        let legacy = OutlierSettings(try XCTUnwrap(try Decode.trafficPolicy(
            "host: svc\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 4}}")?.outlierDetection))
        XCTAssertNil(legacy.consecutive5xx, "the deprecated field counts gateway errors only")
        XCTAssertEqual(legacy.consecutiveGatewayErrors, 4)
        let split = OutlierSettings(try XCTUnwrap(try Decode.trafficPolicy(
            "host: svc\ntrafficPolicy: {outlierDetection: {splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}}")?.outlierDetection))
        XCTAssertTrue(split.splitExternalLocalOriginErrors)
        XCTAssertEqual(split.consecutiveLocalOriginFailures, 2)
        let both = OutlierSettings(try XCTUnwrap(try Decode.trafficPolicy(
            "host: svc\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 4, consecutiveGatewayErrors: 2, consecutive5xxErrors: 7, consecutiveLocalOriginFailures: 0}}")?.outlierDetection))
        XCTAssertEqual(both.consecutiveGatewayErrors, 2)
        XCTAssertEqual(both.consecutive5xx, 7)
        XCTAssertEqual(both.consecutiveLocalOriginFailures, 5, "0 is Envoy's default under Istio")
    }

    func testConsecutive5xxEjectsAndASuccessResetsTheRun() {
        let d = detector(4, OutlierSettings(consecutive5xx: 3, maxEjectionPercent: 100))
        fail(d, 0, times: 2, now: 0)
        d.report(endpoint: 0, outcome: .response(status: 200), now: 0)
        fail(d, 0, times: 2, now: 0)
        XCTAssertFalse(d.isEjected(endpoint: 0))
        fail(d, 0, times: 1, status: 503, now: 5)
        XCTAssertTrue(d.isEjected(endpoint: 0))
        XCTAssertFalse(d.hosts.isAvailable(0))
        XCTAssertEqual(d.activeEjections, 1)
        XCTAssertEqual(d.ejectionsEnforcedTotal, 1)
        XCTAssertEqual(d.status()[0].lastReason, .consecutive5xx)
        XCTAssertEqual(d.status()[0].ejectedUntilMs, 30_005)
        // 4xx and other statuses are successes for outlier detection.
        fail(d, 1, times: 2, now: 0)
        d.report(endpoint: 1, outcome: .response(status: 404), now: 0)
        fail(d, 1, times: 2, now: 0)
        XCTAssertFalse(d.isEjected(endpoint: 1))
    }

    func testUnejectionHappensOnTheFirstTickAfterTheEjectionTime() {
        let d = detector(4, OutlierSettings(consecutive5xx: 2, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 100))
        fail(d, 2, times: 2, now: 1_000)
        XCTAssertTrue(d.isEjected(endpoint: 2))
        d.tick(now: 10_000)
        d.tick(now: 20_000)
        d.tick(now: 30_999)
        XCTAssertTrue(d.isEjected(endpoint: 2), "30 s have not passed")
        d.tick(now: 31_000)
        XCTAssertFalse(d.isEjected(endpoint: 2))
        XCTAssertEqual(d.activeEjections, 0)
        XCTAssertEqual(d.ejectionsEnforcedTotal, 1)
        // Counters start from zero again after unejection.
        fail(d, 2, times: 1, now: 31_000)
        XCTAssertFalse(d.isEjected(endpoint: 2))
    }

    func testEjectionTimeGrowsWithTimesEjectedAndDecaysWhenHealthy() {
        let base = 30_000
        let d = detector(2, OutlierSettings(consecutive5xx: 1, intervalMs: 10_000, baseEjectionMs: base, maxEjectionMs: 300_000,
                                           maxEjectionPercent: 100))
        var now: UInt64 = 0
        var durations: [UInt64] = []
        for _ in 0..<12 {
            fail(d, 0, times: 1, now: now)
            XCTAssertTrue(d.isEjected(endpoint: 0))
            let ejectedAt = now
            while d.isEjected(endpoint: 0) {
                now += 10_000
                d.tick(now: now)
            }
            durations.append(now - ejectedAt)
        }
        // base × 1, × 2, ... up to max(base, maxEjectionTime) = 300 s.
        XCTAssertEqual(durations, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300].map { UInt64($0 * 1000) })
        XCTAssertEqual(d.status()[0].timesEjected, 12)

        // Healthy intervals bring the multiplier down one per interval: after 3 healthy
        // intervals it is 7, and the next ejection raises it to 8 before timing itself.
        for _ in 0..<3 {
            now += 10_000
            d.tick(now: now)
        }
        fail(d, 0, times: 1, now: now)
        XCTAssertEqual(d.status()[0].ejectedUntilMs, now + 8 * 30_000)
    }

    func testMaxEjectionPercentCapsEjectionsButOneIsAlwaysPossible() {
        // Envoy: eject while the share already ejected is under the maximum.
        let d = detector(10, OutlierSettings(consecutive5xx: 1, maxEjectionPercent: 30))
        for h in 0..<10 { fail(d, h, times: 1, now: 0) }
        XCTAssertEqual(d.activeEjections, 3)
        XCTAssertEqual((0..<10).filter { d.isEjected(endpoint: $0) }, [0, 1, 2])
        XCTAssertEqual(d.ejectionsOverflowTotal, 7)

        let small = detector(3, OutlierSettings(consecutive5xx: 1))  // Istio default 10 %
        for h in 0..<3 { fail(small, h, times: 1, now: 0) }
        XCTAssertEqual(small.activeEjections, 1, "one host of three may go, even under 10 %")

        let zero = detector(3, OutlierSettings(consecutive5xx: 1, maxEjectionPercent: 0))
        fail(zero, 0, times: 1, now: 0)
        XCTAssertEqual(zero.activeEjections, 0)
    }

    func testOverflowedRunTriggersAgainAfterAnotherFullRun() {
        let d = detector(2, OutlierSettings(consecutive5xx: 2, maxEjectionPercent: 50))
        fail(d, 0, times: 2, now: 0)
        XCTAssertTrue(d.isEjected(endpoint: 0))
        fail(d, 1, times: 2, now: 0)
        XCTAssertFalse(d.isEjected(endpoint: 1), "50 % already ejected")
        XCTAssertEqual(d.ejectionsOverflowTotal, 1)
        d.tick(now: 30_000)
        XCTAssertFalse(d.isEjected(endpoint: 0))
        fail(d, 1, times: 1, now: 30_000)
        XCTAssertFalse(d.isEjected(endpoint: 1), "the counter restarted when the run overflowed")
        fail(d, 1, times: 1, now: 30_000)
        XCTAssertTrue(d.isEjected(endpoint: 1))
    }

    func testGatewayErrorsCountOnly502To504AndOther5xxBreakTheirRun() {
        let d = detector(4, OutlierSettings(consecutive5xx: nil, consecutiveGatewayErrors: 3, maxEjectionPercent: 100))
        fail(d, 0, times: 2, status: 502, now: 0)
        fail(d, 0, times: 1, status: 500, now: 0)
        fail(d, 0, times: 2, status: 504, now: 0)
        XCTAssertFalse(d.isEjected(endpoint: 0))
        fail(d, 0, times: 1, status: 503, now: 0)
        XCTAssertTrue(d.isEjected(endpoint: 0))
        XCTAssertEqual(d.status()[0].lastReason, .consecutiveGatewayFailure)
        // Not split: local-origin failures count as 503 (timeouts as 504).
        d.report(endpoint: 1, outcome: .connectFailure, now: 0)
        d.report(endpoint: 1, outcome: .reset, now: 0)
        d.report(endpoint: 1, outcome: .perTryTimeout, now: 0)
        XCTAssertTrue(d.isEjected(endpoint: 1))
    }

    func testLocalOriginFailuresCountAs5xxUnlessSplit() {
        let joined = detector(4, OutlierSettings(consecutive5xx: 3, maxEjectionPercent: 100))
        for o: AttemptOutcome in [.connectFailure, .refusedStream, .resetBeforeRequest] { joined.report(endpoint: 0, outcome: o, now: 0) }
        XCTAssertTrue(joined.isEjected(endpoint: 0))

        let split = detector(4, OutlierSettings(consecutive5xx: 3, splitExternalLocalOriginErrors: true,
                                                consecutiveLocalOriginFailures: 2, maxEjectionPercent: 100))
        // Responses and local failures are separate runs: neither interrupts the other.
        split.report(endpoint: 0, outcome: .response(status: 500), now: 0)
        split.report(endpoint: 0, outcome: .connectFailure, now: 0)
        split.report(endpoint: 0, outcome: .response(status: 500), now: 0)
        XCTAssertFalse(split.isEjected(endpoint: 0))
        split.report(endpoint: 0, outcome: .perTryTimeout, now: 0)
        XCTAssertTrue(split.isEjected(endpoint: 0))
        XCTAssertEqual(split.status()[0].lastReason, .consecutiveLocalOriginFailure)
        // A connection success clears the local run; a 200 does not.
        split.report(endpoint: 1, outcome: .connectFailure, now: 0)
        split.reportConnectSuccess(endpoint: 1)
        split.report(endpoint: 1, outcome: .connectFailure, now: 0)
        XCTAssertFalse(split.isEjected(endpoint: 1))
        split.report(endpoint: 2, outcome: .reset, now: 0)
        split.report(endpoint: 2, outcome: .response(status: 200), now: 0)
        split.report(endpoint: 2, outcome: .reset, now: 0)
        XCTAssertTrue(split.isEjected(endpoint: 2))
        // External 5xx still eject on their own run.
        fail(split, 3, times: 3, now: 0)
        XCTAssertTrue(split.isEjected(endpoint: 3))
        XCTAssertEqual(split.status()[3].lastReason, .consecutive5xx)
    }

    func testPanicModeIgnoresEjectionsBelowMinHealthPercent() {
        let d = detector(4, OutlierSettings(consecutive5xx: 1, maxEjectionPercent: 100, minHealthPercent: 50))
        fail(d, 0, times: 1, now: 0)
        fail(d, 1, times: 1, now: 0)
        XCTAssertFalse(d.inPanic, "2 of 4 healthy: 50 % is not below 50 %")
        XCTAssertFalse(d.hosts.isAvailable(0))
        fail(d, 2, times: 1, now: 0)
        XCTAssertTrue(d.inPanic)
        XCTAssertTrue((0..<4).allSatisfy { d.hosts.isAvailable($0) }, "panic: everything is pickable")
        XCTAssertEqual(d.activeEjections, 3)
        d.tick(now: 30_000)
        XCTAssertFalse(d.inPanic)
        XCTAssertEqual(d.activeEjections, 0)

        // Istio's default (0): never panic, even with every host ejected.
        let never = detector(2, OutlierSettings(consecutive5xx: 1, maxEjectionPercent: 100))
        fail(never, 0, times: 1, now: 0)
        fail(never, 1, times: 1, now: 0)
        XCTAssertFalse(never.inPanic)
        var lb = LoadBalancer(policy: LoadBalancerPolicy(algorithm: .roundRobin), hosts: never.hosts)
        XCTAssertNil(lb.pick(random: 1), "no healthy upstream: 503 UH")
    }

    func testStateFollowsEndpointKeysAcrossUpdates() {
        let d = detector(3, OutlierSettings(consecutive5xx: 2, maxEjectionPercent: 100))
        fail(d, 1, times: 2, now: 0)
        fail(d, 2, times: 1, now: 0)
        XCTAssertTrue(d.isEjected(endpoint: 1))
        // Endpoint 0 goes away, a new one arrives; 1 and 2 move to indices 0 and 1.
        let next = OutlierDetector(settings: d.settings, hosts: HostSet(Array(endpoints(3)[1...]) + endpoints(1, from: 9)), previous: d)
        XCTAssertTrue(next.isEjected(endpoint: 0))
        XCTAssertFalse(next.isEjected(endpoint: 1))
        XCTAssertEqual(next.activeEjections, 1)
        XCTAssertEqual(next.ejectionsEnforcedTotal, 1)
        fail(next, 1, times: 1, now: 0)
        XCTAssertTrue(next.isEjected(endpoint: 1), "its run of 1 carried over")
        next.tick(now: 30_000)
        XCTAssertFalse(next.isEjected(endpoint: 0))
    }

    func testConcurrentReportsEjectOnceAndCountConsistently() {
        let d = detector(8, OutlierSettings(consecutive5xx: 5, maxEjectionPercent: 100))
        let group = DispatchGroup()
        for t in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                for i in 0..<10_000 { d.report(endpoint: (i + t) % 8, outcome: .response(status: 503), now: 0) }
                group.leave()
            }
        }
        group.wait()
        XCTAssertEqual(d.activeEjections, 8)
        XCTAssertEqual(d.ejectionsEnforcedTotal, 8)
        XCTAssertEqual((0..<8).filter { d.isEjected(endpoint: $0) }.count, 8)
    }
}
