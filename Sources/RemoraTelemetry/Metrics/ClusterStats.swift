/// Per-cluster upstream counters, rendered as `remora_cluster_<name>{cluster="…"}`
/// (Envoy's names, SPEC §5).
public enum ClusterCounter: Int, CaseIterable, Sendable {
    case upstream_rq_total, upstream_rq_retry, upstream_rq_retry_success, upstream_rq_retry_overflow,
         upstream_rq_pending_overflow, upstream_cx_overflow, upstream_rq_timeout,
         upstream_rq_per_try_timeout, upstream_cx_connect_fail, outlier_detection_ejections_enforced_total

    static let count = allCases.count

    var help: String {
        switch self {
        case .upstream_rq_total: "Requests sent upstream (each retry counts)."
        case .upstream_rq_retry: "Retries sent upstream."
        case .upstream_rq_retry_success: "Retries that got a response not to be retried."
        case .upstream_rq_retry_overflow: "Retries not sent because the retry budget or circuit breaker was full."
        case .upstream_rq_pending_overflow: "Requests refused because the pending-request limit was reached."
        case .upstream_cx_overflow: "Connections not opened because the connection limit was reached."
        case .upstream_rq_timeout: "Requests that timed out waiting for the response."
        case .upstream_rq_per_try_timeout: "Tries that hit the per-try timeout."
        case .upstream_cx_connect_fail: "Upstream connections that failed to connect."
        case .outlier_detection_ejections_enforced_total: "Endpoints ejected by outlier detection."
        }
    }
}

/// Per-cluster gauges; each worker sets its own value and a scrape shows their sum.
public enum ClusterGauge: Int, CaseIterable, Sendable {
    case outlier_detection_ejections_active, upstream_rq_active, upstream_cx_active

    static let count = allCases.count

    var help: String {
        switch self {
        case .outlier_detection_ejections_active: "Endpoints currently ejected by outlier detection."
        case .upstream_rq_active: "Requests in flight to the cluster."
        case .upstream_cx_active: "Open upstream connections."
        }
    }
}
