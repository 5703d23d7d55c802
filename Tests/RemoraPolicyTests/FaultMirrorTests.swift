import RemoraConfig
import RemoraPolicy
import XCTest

/// `fault` and `mirror`/`mirrors` percentages, decided from caller-supplied random values.
final class FaultMirrorTests: XCTestCase {
    private func actions(_ http: String) throws -> RouteActions {
        try XCTUnwrap(TestConfig.mesh(http).resolveMesh(FakeRequest("svc"))).entry.actions
    }

    func testDelayAndAbortPercentages() throws {
        let a = try actions("""
          - fault:
              delay: {fixedDelay: 1.5s, percentage: {value: 10}}
              abort: {httpStatus: 503, percentage: {value: 25}}
            route: [{destination: {host: a}}]
        """)
        let n = 100_000
        var counts: [String: Int] = [:]
        var rng = SeededRandom(seed: 7)
        for _ in 0..<n {
            switch a.fault(random1: rng.next32(), random2: rng.next32()) {
            case .none: counts["none", default: 0] += 1
            case .delay(let ms): XCTAssertEqual(ms, 1500); counts["delay", default: 0] += 1
            case .abort(let h, let g): XCTAssertEqual(h, 503); XCTAssertNil(g); counts["abort", default: 0] += 1
            case .delayThenAbort(let ms, let h, _): XCTAssertEqual(ms, 1500); XCTAssertEqual(h, 503); counts["both", default: 0] += 1
            }
        }
        func share(_ k: String) -> Double { Double(counts[k, default: 0]) / Double(n) }
        // Independent decisions: delay 10 %, abort 25 %.
        XCTAssertEqual(share("delay"), 0.10 * 0.75, accuracy: 0.006)
        XCTAssertEqual(share("abort"), 0.90 * 0.25, accuracy: 0.006)
        XCTAssertEqual(share("both"), 0.10 * 0.25, accuracy: 0.004)
        XCTAssertEqual(share("none"), 0.90 * 0.75, accuracy: 0.006)
        XCTAssertTrue(a.hasFault)
    }

    func testPercentBoundariesAreEnvoysFractions() throws {
        let a = try actions("""
          - fault: {abort: {httpStatus: 500, percentage: {value: 50}}}
            route: [{destination: {host: a}}]
        """)
        // 50 % is 500 000 per million: random % 1 000 000 < 500 000.
        XCTAssertEqual(a.fault(random1: 0, random2: 499_999), .abort(httpStatus: 500, grpcStatus: nil))
        XCTAssertEqual(a.fault(random1: 0, random2: 500_000), .none)
        XCTAssertEqual(a.fault(random1: 0, random2: 1_000_001), .abort(httpStatus: 500, grpcStatus: nil))
        XCTAssertEqual(a.fault(random1: 0, random2: 1_500_000), .none)
    }

    func testGrpcAbortFractionalAndDeprecatedPercent() throws {
        let grpc = try actions("""
          - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
            route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(grpc.fault(random1: 1, random2: 2), .abort(httpStatus: 200, grpcStatus: 14), "gRPC aborts answer HTTP 200")

        let tiny = try actions("""
          - fault: {delay: {fixedDelay: 100ms, percentage: {value: 0.5}}}
            route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(fraction(200_000, seed: 3) { tiny.fault(random1: $0.next32(), random2: $0.next32()) == .delay(ms: 100) },
                       0.005, accuracy: 0.001, "fractional percentages")

        let legacy = try actions("""
          - fault: {delay: {fixedDelay: 2s, percent: 30}}
            route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(fraction(50_000, seed: 4) { legacy.fault(random1: $0.next32(), random2: 0) == .delay(ms: 2000) },
                       0.30, accuracy: 0.01, "the deprecated integer percent")
    }

    func testWithoutPercentageNothingIsInjected() throws {
        // Istio leaves Envoy's percentage at 0 when it is absent (istio/istio#36303).
        let a = try actions("""
          - fault: {delay: {fixedDelay: 1s}, abort: {httpStatus: 418}}
            route: [{destination: {host: a}}]
        """)
        var rng = SeededRandom(seed: 5)
        for _ in 0..<1000 { XCTAssertEqual(a.fault(random1: rng.next32(), random2: rng.next32()), .none) }
        let zero = try actions("""
          - fault: {delay: {fixedDelay: 0s, percentage: {value: 100}}, abort: {http2Error: REFUSED_STREAM, percentage: {value: 100}}}
            route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(zero.fault(random1: 0, random2: 0), .none, "a zero delay and an http2Error abort inject nothing")
        let none = try actions("  - route: [{destination: {host: a}}]")
        XCTAssertEqual(none.fault(random1: 0, random2: 0), .none)
        XCTAssertFalse(none.hasFault)
    }

    func testUnknownGrpcStatusIsAConfigError() {
        let errors = TestConfig.errors("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [svc]
          http:
          - fault: {abort: {grpcStatus: NOPE, percentage: {value: 1}}}
            route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors.first?.hasPrefix("spec.http[0].fault.abort.grpcStatus: ") ?? false, "\(errors)")
    }

    func testMirrorPercentages() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /one}}]
            route: [{destination: {host: main}}]
            mirror: {host: shadow}
            mirrorPercentage: {value: 10}
          - match: [{uri: {prefix: /many}}]
            route: [{destination: {host: main}}]
            mirrors:
            - destination: {host: all}
            - destination: {host: half}
              percentage: {value: 50}
            - destination: {host: never}
              percentage: {value: 0}
          - match: [{uri: {prefix: /legacy}}]
            route: [{destination: {host: main}}]
            mirror: {host: shadow}
            mirrorPercent: 25
          - route: [{destination: {host: main}}]
        """)
        func host(_ c: Int) -> String { s.clusters[c].host }
        let one = s.resolveMesh(FakeRequest("svc", path: "/one"))!.entry.actions
        XCTAssertEqual(fraction(100_000, seed: 11) { rng in !one.mirrorClusters { _ in rng.next32() }.isEmpty }, 0.10, accuracy: 0.005)
        XCTAssertEqual(one.mirrorClusters { _ in 0 }.map(host), ["shadow"])

        let many = s.resolveMesh(FakeRequest("svc", path: "/many"))!.entry.actions
        var seen: [String: Int] = [:]
        var rng = SeededRandom(seed: 12)
        let n = 20_000
        for _ in 0..<n { for c in many.mirrorClusters(random: { _ in rng.next32() }) { seen[host(c), default: 0] += 1 } }
        XCTAssertEqual(seen["all"], n, "no percentage: always")
        XCTAssertEqual(Double(seen["half", default: 0]) / Double(n), 0.5, accuracy: 0.02)
        XCTAssertNil(seen["never"], "0 %: never")
        // One random value per target, by index.
        XCTAssertEqual(many.mirrorClusters { $0 == 1 ? 999_999 : 0 }.map(host), ["all"])
        XCTAssertEqual(many.mirrorClusters { $0 == 1 ? 1 : 999_999 }.map(host), ["all", "half"])

        let legacy = s.resolveMesh(FakeRequest("svc", path: "/legacy"))!.entry.actions
        XCTAssertEqual(fraction(50_000, seed: 13) { rng in !legacy.mirrorClusters { _ in rng.next32() }.isEmpty }, 0.25, accuracy: 0.01)
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", path: "/x"))!.entry.actions.mirrorClusters { _ in 0 }, [])
    }
}
