import RemoraResilience

/// The process-wide per-cluster numbers kept by the resilience layer (atomics shared by
/// every worker), in Prometheus text under Envoy's names (SPEC §5): outlier detection,
/// and the circuit breakers' live counts.
enum ClusterGauges {
    static func render(_ clusters: [ClusterResilience]) -> String {
        let sorted = clusters.sorted { $0.name < $1.name }
        guard !sorted.isEmpty else { return "" }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ rows: [(String, Int)]) {
            guard !rows.isEmpty else { return }
            out += "# HELP remora_cluster_\(name) \(help)\n# TYPE remora_cluster_\(name) \(type)\n"
            for (cluster, v) in rows { out += "remora_cluster_\(name){cluster=\"\(label(cluster))\"} \(v)\n" }
        }
        let detectors = sorted.compactMap { r in r.outlier.map { (r.name, $0) } }
        family("outlier_detection_ejections_active", "gauge", "Endpoints ejected now.",
               detectors.map { ($0.0, $0.1.activeEjections) })
        family("outlier_detection_ejections_enforced_total", "counter", "Ejections enforced.",
               detectors.map { ($0.0, $0.1.ejectionsEnforcedTotal) })
        family("upstream_cx_active", "gauge", "Upstream connections open (all workers).",
               sorted.map { ($0.name, $0.breaker.count(.connections)) })
        family("upstream_rq_active", "gauge", "Requests in flight (all workers).",
               sorted.map { ($0.name, $0.breaker.count(.requests)) })
        family("upstream_rq_pending_active", "gauge", "Requests waiting for a connection (all workers).",
               sorted.map { ($0.name, $0.breaker.count(.pendingRequests)) })
        return out
    }

    private static func label(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}
