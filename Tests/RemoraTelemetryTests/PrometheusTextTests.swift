import XCTest
@testable import RemoraTelemetry

final class PrometheusTextTests: XCTestCase {
    let istioLabelNames: Set<String> = [
        "reporter", "source_workload", "destination_service", "destination_service_name",
        "destination_service_namespace", "request_protocol", "response_code", "grpc_response_status",
        "response_flags", "connection_security_policy",
    ]
    let durationLE = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
                      "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"]
    let bytesLE = ["1", "10", "100", "1000", "10000", "100000", "1000000", "10000000", "+Inf"]

    struct Ids {
        let svc, short, ns, cluster: Int32
    }

    func ad(_ names: NameTable) -> Ids {
        Ids(svc: names.id("adservice.default.svc.cluster.local"), short: names.id("adservice"),
            ns: names.id("default"), cluster: names.id("outbound|80||adservice.default.svc.cluster.local"))
    }

    func sample(_ ids: Ids, code: Int = 200, ms: Double = 3, req: Int = 0, resp: Int = 10,
                flags: ResponseFlags = [], grpc: Bool = false, grpcStatus: Int = -1,
                reporter: Reporter = .source) -> RequestSample {
        RequestSample(service: ids.svc, serviceName: ids.short, serviceNamespace: ids.ns, cluster: ids.cluster,
                      reporter: reporter, grpc: grpc, responseCode: code, grpcStatus: grpcStatus, flags: flags,
                      durationMs: ms, requestBytes: req, responseBytes: resp)
    }

    func render(_ snap: StatsSnapshot, _ names: NameTable, config: ConfigStats = ConfigStats(version: 1),
                extra: [(name: String, help: String, type: String, value: Double)] = []) throws -> PromDocument {
        let text = PrometheusText.render(snap, names: names, config: config, extra: extra)
        return try PromDocument(text)
    }

    func testIstioLabelsAndTypes() throws {
        let names = NameTable()
        let ids = ad(names)
        let w = WorkerStats()
        w.record(sample(ids))
        w.record(sample(ids))
        w.record(sample(ids, code: 503, flags: [.upstreamConnectionFailure, .noHealthyUpstream]))
        w.record(sample(ids, code: 200, grpc: true, grpcStatus: 14, reporter: .destination))
        w.record(RequestSample(responseCode: 404, flags: .noRouteFound))  // no service at all
        let doc = try render(w.snapshot(), names)

        XCTAssertEqual(doc.families["istio_requests_total"]?.type, "counter")
        XCTAssertEqual(doc.families["istio_request_duration_milliseconds"]?.type, "histogram")
        XCTAssertEqual(doc.families["istio_request_bytes"]?.type, "histogram")
        XCTAssertEqual(doc.families["istio_response_bytes"]?.type, "histogram")

        let totals = doc.find("istio_requests_total")
        XCTAssertEqual(totals.count, 4)
        for s in totals { XCTAssertEqual(Set(s.labels.keys), istioLabelNames) }

        let ok = ["reporter": "source", "source_workload": "unknown",
                  "destination_service": "adservice.default.svc.cluster.local",
                  "destination_service_name": "adservice", "destination_service_namespace": "default",
                  "request_protocol": "http", "response_code": "200", "grpc_response_status": "",
                  "response_flags": "-", "connection_security_policy": "unknown"]
        XCTAssertEqual(doc.find("istio_requests_total").first { $0.labels == ok }?.value, 2)

        var failed = ok
        failed["response_code"] = "503"
        failed["response_flags"] = "UH,UF"
        XCTAssertEqual(doc.find("istio_requests_total").first { $0.labels == failed }?.value, 1)

        XCTAssertEqual(doc.value("istio_requests_total", ["reporter": "destination", "request_protocol": "grpc",
                                                          "grpc_response_status": "14"]), 1)
        XCTAssertEqual(doc.value("istio_requests_total", ["destination_service": "unknown",
                                                          "destination_service_name": "unknown",
                                                          "destination_service_namespace": "unknown",
                                                          "response_code": "404", "response_flags": "NR"]), 1)
    }

    func testHistogramsAreCumulativeWithSumAndCount() throws {
        let names = NameTable()
        let ids = ad(names)
        let w = WorkerStats()
        let durations: [Double] = [0.3, 0.5, 3, 7000, 5e6]
        let sizes = [0, 1, 2, 10_000_001, 500]
        for (d, n) in zip(durations, sizes) { w.record(sample(ids, ms: d, req: n, resp: n * 2)) }
        let doc = try render(w.snapshot(), names)

        let buckets = doc.find("istio_request_duration_milliseconds_bucket")
        XCTAssertEqual(buckets.map { $0.labels["le"]! }, durationLE)
        for b in buckets { XCTAssertEqual(Set(b.labels.keys), istioLabelNames.union(["le"])) }
        let expected: [Double] = [2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5]
        XCTAssertEqual(buckets.map(\.value), expected)
        XCTAssertEqual(doc.value("istio_request_duration_milliseconds_count"), 5)
        XCTAssertEqual(doc.value("istio_request_duration_milliseconds_sum")!, durations.reduce(0, +), accuracy: 1e-9)

        let req = doc.find("istio_request_bytes_bucket")
        XCTAssertEqual(req.map { $0.labels["le"]! }, bytesLE)
        XCTAssertEqual(req.map(\.value), [2, 3, 3, 4, 4, 4, 4, 4, 5])
        XCTAssertEqual(doc.value("istio_request_bytes_sum"), Double(sizes.reduce(0, +)))
        XCTAssertEqual(doc.value("istio_request_bytes_count"), 5)

        let resp = doc.find("istio_response_bytes_bucket")
        XCTAssertEqual(resp.map(\.value), [1, 3, 3, 4, 4, 4, 4, 4, 5])  // 0, 2, 4, 20000002, 1000
        XCTAssertEqual(doc.value("istio_response_bytes_sum"), Double(sizes.reduce(0, +) * 2))
        // Every histogram's +Inf bucket equals its count, which equals the request total.
        XCTAssertEqual(doc.value("istio_requests_total"), 5)
    }

    func testMergeOfTwoWorkers() throws {
        let names = NameTable()
        let ids = ad(names)
        let cart = Ids(svc: names.id("cartservice.default.svc.cluster.local"), short: names.id("cartservice"),
                       ns: ids.ns, cluster: names.id("outbound|7070||cartservice.default.svc.cluster.local"))
        let w1 = WorkerStats()
        let w2 = WorkerStats()
        w1.record(sample(ids, ms: 1))
        w1.record(sample(ids, ms: 20))
        w2.record(sample(ids, ms: 400))
        w2.record(sample(cart, code: 503, flags: .upstreamOverflow))
        w1.count(.upstream_rq_total, cluster: ids.cluster, by: 2)
        w2.count(.upstream_rq_total, cluster: ids.cluster)
        w2.count(.upstream_cx_overflow, cluster: cart.cluster)
        w2.count(.upstream_rq_total, cluster: cart.cluster)
        w1.set(.upstream_cx_active, cluster: ids.cluster, to: 3)
        w2.set(.upstream_cx_active, cluster: ids.cluster, to: 4)
        w1.set(.upstream_cx_active, cluster: ids.cluster, to: 2)  // set, not add
        w1.accessLogDropped = 5
        w2.accessLogDropped = 7

        var merged = StatsSnapshot()
        merged.merge(w1.snapshot())
        merged.merge(w2.snapshot())
        XCTAssertEqual(merged.totalRequests, 4)
        let doc = try render(merged, names, config: ConfigStats(version: 3, reloadsOK: 2, reloadsFailed: 1))

        XCTAssertEqual(doc.value("istio_requests_total", ["destination_service_name": "adservice"]), 3)
        XCTAssertEqual(doc.value("istio_requests_total", ["destination_service_name": "cartservice",
                                                          "response_flags": "UO", "response_code": "503"]), 1)
        let adBuckets = doc.find("istio_request_duration_milliseconds_bucket", ["destination_service_name": "adservice"])
        XCTAssertEqual(adBuckets.first { $0.labels["le"] == "1" }?.value, 1)
        XCTAssertEqual(adBuckets.first { $0.labels["le"] == "25" }?.value, 2)
        XCTAssertEqual(adBuckets.first { $0.labels["le"] == "500" }?.value, 3)
        XCTAssertEqual(doc.value("istio_request_duration_milliseconds_sum", ["destination_service_name": "adservice"]), 421)

        let adCluster = "outbound|80||adservice.default.svc.cluster.local"
        let cartCluster = "outbound|7070||cartservice.default.svc.cluster.local"
        XCTAssertEqual(doc.value("remora_cluster_upstream_rq_total", ["cluster": adCluster]), 3)
        XCTAssertEqual(doc.value("remora_cluster_upstream_rq_total", ["cluster": cartCluster]), 1)
        XCTAssertEqual(doc.value("remora_cluster_upstream_cx_overflow", ["cluster": cartCluster]), 1)
        XCTAssertEqual(doc.value("remora_cluster_upstream_cx_overflow", ["cluster": adCluster]), 0)
        XCTAssertEqual(doc.value("remora_cluster_upstream_cx_active", ["cluster": adCluster]), 6)
        XCTAssertEqual(doc.families["remora_cluster_upstream_cx_active"]?.type, "gauge")
        XCTAssertEqual(doc.families["remora_cluster_upstream_rq_total"]?.type, "counter")
        // Service names share the table with clusters but are not clusters.
        XCTAssertEqual(Set(doc.find("remora_cluster_upstream_rq_total").map { $0.labels["cluster"]! }),
                       [adCluster, cartCluster])
        for c in ClusterCounter.allCases {
            XCTAssertEqual(doc.find("remora_cluster_\(c)").count, 2, "\(c)")
        }
        for g in ClusterGauge.allCases {
            XCTAssertEqual(doc.find("remora_cluster_\(g)").count, 2, "\(g)")
        }

        XCTAssertEqual(doc.value("remora_access_log_dropped_total"), 12)
        XCTAssertEqual(doc.value("remora_config_version"), 3)
        XCTAssertEqual(doc.value("remora_config_reloads_total", ["result": "success"]), 2)
        XCTAssertEqual(doc.value("remora_config_reloads_total", ["result": "failure"]), 1)
    }

    func testMergeIsOrderIndependent() throws {
        let names = NameTable()
        let ids = ad(names)
        let a = WorkerStats(), b = WorkerStats()
        for i in 0..<50 { a.record(sample(ids, code: [200, 404, 503][i % 3], ms: Double(i))) }
        for i in 0..<30 { b.record(sample(ids, code: [503, 200][i % 2], ms: Double(i) * 7)) }
        b.count(.upstream_rq_retry, cluster: ids.cluster, by: 4)
        var ab = StatsSnapshot(), ba = StatsSnapshot()
        ab.merge(a.snapshot()); ab.merge(b.snapshot())
        ba.merge(b.snapshot()); ba.merge(a.snapshot())
        XCTAssertEqual(PrometheusText.render(ab, names: names, config: ConfigStats()),
                       PrometheusText.render(ba, names: names, config: ConfigStats()))
    }

    func testLabelValuesAreEscaped() throws {
        let names = NameTable()
        let weird = "we\"ird\\host\nname"
        let id = names.id(weird)
        let cl = names.id("outbound|80||\(weird)")
        let w = WorkerStats()
        w.record(RequestSample(service: id, serviceName: id, serviceNamespace: -1, cluster: cl, responseCode: 200))
        w.count(.upstream_rq_total, cluster: cl)
        let text = PrometheusText.render(w.snapshot(), names: names, config: ConfigStats())
        XCTAssertTrue(text.contains(#"destination_service="we\"ird\\host\nname""#))
        let doc = try PromDocument(text)
        XCTAssertEqual(doc.value("istio_requests_total", ["destination_service": weird]), 1)
        XCTAssertEqual(doc.value("remora_cluster_upstream_rq_total", ["cluster": "outbound|80||\(weird)"]), 1)
    }

    func testEmptySnapshotAndExtras() throws {
        let doc = try render(StatsSnapshot(), NameTable(), config: ConfigStats(version: 1),
                             extra: [(name: "remora_uptime_seconds", help: "Seconds since start.\nReally.", type: "gauge", value: 12.5),
                                     (name: "remora_connections_total", help: "Accepted connections.", type: "counter", value: 7)])
        XCTAssertTrue(doc.find("istio_requests_total").isEmpty)
        XCTAssertEqual(doc.value("remora_access_log_dropped_total"), 0)
        XCTAssertEqual(doc.value("remora_config_version"), 1)
        XCTAssertEqual(doc.value("remora_uptime_seconds"), 12.5)
        XCTAssertEqual(doc.families["remora_uptime_seconds"]?.help, #"Seconds since start.\nReally."#)
        XCTAssertEqual(doc.value("remora_connections_total"), 7)
        XCTAssertEqual(doc.families["remora_connections_total"]?.type, "counter")
    }

    func testNumberFormatting() {
        XCTAssertEqual(PrometheusText.format(3600000.0), "3600000")
        XCTAssertEqual(PrometheusText.format(0.5), "0.5")
        XCTAssertEqual(PrometheusText.format(Double.infinity), "+Inf")
        XCTAssertEqual(PrometheusText.format(-Double.infinity), "-Inf")
        XCTAssertEqual(PrometheusText.format(Double.nan), "NaN")
        XCTAssertEqual(Double(PrometheusText.format(1e-7)), 1e-7)
        XCTAssertEqual(Double(PrometheusText.format(1e20)), 1e20)
    }
}
