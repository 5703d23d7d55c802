import XCTest
import Foundation
@testable import RemoraTelemetry

final class WorkerStatsTests: XCTestCase {
    func testSeriesKeyRoundTrip() {
        let s = RequestSample(service: 7, serviceName: -1, serviceNamespace: 123_456, cluster: 9,
                              reporter: .destination, grpc: true, responseCode: 503, grpcStatus: 16,
                              flags: [.upstreamRetryLimitExceeded, .upstreamRequestTimeout])
        let k = SeriesKey(s)
        XCTAssertEqual(k.service, 7)
        XCTAssertEqual(k.serviceName, -1)
        XCTAssertEqual(k.serviceNamespace, 123_456)
        XCTAssertEqual(k.reporter, .destination)
        XCTAssertTrue(k.grpc)
        XCTAssertEqual(k.responseCode, 503)
        XCTAssertEqual(k.grpcStatus, 16)
        XCTAssertEqual(ResponseFlags(rawValue: k.flags), [.upstreamRetryLimitExceeded, .upstreamRequestTimeout])

        let none = SeriesKey(RequestSample(responseCode: 0, grpcStatus: -1))
        XCTAssertEqual(none.responseCode, 0)
        XCTAssertEqual(none.grpcStatus, -1)
        XCTAssertEqual(none.reporter, .source)
        XCTAssertFalse(none.grpc)
        // Nonsense values are clamped, never spill into other fields.
        let odd = SeriesKey(RequestSample(service: 1, responseCode: 99_999, grpcStatus: 1_000))
        XCTAssertEqual(odd.responseCode, 1023)
        XCTAssertEqual(odd.grpcStatus, 254)
        XCTAssertEqual(odd.service, 1)
        XCTAssertEqual(odd.reporter, .source)
    }

    /// Steady state: once every label combination has been seen, recording grows nothing.
    func testNoGrowthAfterFirstSampleOfALabelSet() {
        let w = WorkerStats()
        let samples = (0..<40).map { i in
            RequestSample(service: Int32(i % 10), serviceName: Int32(i % 10), serviceNamespace: 0, cluster: 1,
                          responseCode: [200, 503][i % 2], flags: i % 4 == 1 ? .noHealthyUpstream : [],
                          durationMs: Double(i), requestBytes: i * 100, responseBytes: i * 1000)
        }
        for s in samples { w.record(s) }
        let series = w.seriesCount
        let capacities = w.storageCapacities
        for round in 0..<20_000 {
            var s = samples[round % samples.count]
            s.durationMs = Double(round % 5000)
            s.responseBytes = round
            w.record(s)
        }
        XCTAssertEqual(w.seriesCount, series)
        XCTAssertEqual(w.storageCapacities, capacities)
        XCTAssertEqual(w.snapshot().totalRequests, 20_040)
    }

    func testSnapshotIsACopy() {
        let w = WorkerStats()
        w.record(RequestSample(service: 1, responseCode: 200))
        w.count(.upstream_rq_total, cluster: 2)
        let before = w.snapshot()
        w.record(RequestSample(service: 1, responseCode: 200))
        w.count(.upstream_rq_total, cluster: 2)
        XCTAssertEqual(before.totalRequests, 1)
        XCTAssertEqual(before.counter(.upstream_rq_total, cluster: 2), 1)
        XCTAssertEqual(w.snapshot().totalRequests, 2)
        XCTAssertEqual(w.snapshot().counter(.upstream_rq_total, cluster: 2), 2)
    }

    func testClusterStats() {
        let w = WorkerStats()
        w.count(.upstream_rq_total, cluster: -1)  // no cluster: ignored
        w.count(.upstream_cx_connect_fail, cluster: 40, by: 3)
        w.count(.upstream_rq_total, cluster: 0, by: 0)  // registers a cluster with zeros
        w.set(.outlier_detection_ejections_active, cluster: 40, to: 2)
        w.set(.upstream_rq_active, cluster: 3, to: -1)
        let s = w.snapshot()
        XCTAssertEqual(s.clusters, [0, 3, 40])
        XCTAssertEqual(s.counter(.upstream_cx_connect_fail, cluster: 40), 3)
        XCTAssertEqual(s.counter(.upstream_rq_total, cluster: 0), 0)
        XCTAssertEqual(s.gauge(.outlier_detection_ejections_active, cluster: 40), 2)
        XCTAssertEqual(s.gauge(.upstream_rq_active, cluster: 3), -1)
        XCTAssertEqual(s.counter(.upstream_rq_total, cluster: 999), 0)
    }

    func testBadDurationsCountAsZero() {
        let w = WorkerStats()
        w.record(RequestSample(service: 1, durationMs: .nan))
        w.record(RequestSample(service: 1, durationMs: -5))
        let text = PrometheusText.render(w.snapshot(), names: NameTable(), config: ConfigStats())
        XCTAssertTrue(text.contains("istio_request_duration_milliseconds_sum{"))
        XCTAssertFalse(text.contains("NaN"))
    }

    func testNameTable() {
        let t = NameTable()
        XCTAssertEqual(t.id("a"), 0)
        XCTAssertEqual(t.id("b"), 1)
        XCTAssertEqual(t.id("a"), 0)
        XCTAssertEqual(t.name(1), "b")
        XCTAssertEqual(t.name(-1), "unknown")
        XCTAssertEqual(t.name(99), "unknown")
        // Concurrent registration hands out one id per name.
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for j in 0..<500 { _ = t.id("n\((i + j) % 300)") }
        }
        let all = t.allNames()
        XCTAssertEqual(all.count, 302)
        XCTAssertEqual(Set(all).count, 302)
        for (i, n) in all.enumerated() { XCTAssertEqual(t.id(n), Int32(i)) }
    }

    /// Not an assertion on speed (CI machines vary), just a number in the log.
    func testRecordCost() {
        let w = WorkerStats()
        let samples = (0..<16).map { RequestSample(service: Int32($0), serviceName: Int32($0), cluster: 1,
                                                   responseCode: 200, durationMs: Double($0) * 3) }
        for s in samples { w.record(s) }
        let n = 200_000
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<n { w.record(samples[i & 15]) }
        let ns = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(n)
        print("WorkerStats.record: \(Int(ns)) ns per sample (debug build)")
    }
}
