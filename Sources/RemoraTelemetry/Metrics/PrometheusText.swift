/// Configuration numbers shown with the stats: `remora_config_version` and
/// `remora_config_reloads_total{result="success"|"failure"}`.
public struct ConfigStats: Sendable {
    public var version: Int
    public var reloadsOK: Int
    public var reloadsFailed: Int

    public init(version: Int = 0, reloadsOK: Int = 0, reloadsFailed: Int = 0) {
        self.version = version
        self.reloadsOK = reloadsOK
        self.reloadsFailed = reloadsFailed
    }
}

/// Renders merged snapshots as the Prometheus text exposition format (0.0.4): one
/// `# HELP`/`# TYPE` pair per family, label values escaped, histograms as cumulative
/// `_bucket{le=…}` lines ending in `+Inf`, then `_sum` and `_count`.
public enum PrometheusText {
    /// The content type to serve this with.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `extra` holds process-level values (name without labels, help, "counter"/"gauge", value).
    public static func render(_ stats: StatsSnapshot, names: NameTable, config: ConfigStats,
                              extra: [(name: String, help: String, type: String, value: Double)] = []) -> String {
        let table = names.allNames()
        func name(_ id: Int32) -> String { id >= 0 && Int(id) < table.count ? table[Int(id)] : "unknown" }

        var out = ""
        out.reserveCapacity(4096 + stats.keys.count * 4096)

        // Istio series: each label set rendered once and shared by the four families;
        // sorted so that scrapes are stable and diffable.
        let series: [(labels: String, index: Int)] = stats.keys.enumerated().map { i, k in
            (istioLabels(k, name), i)
        }.sorted { $0.labels < $1.labels }
        let stride = SeriesLayout.stride

        if !series.isEmpty {
            family(&out, "istio_requests_total", "counter", "Requests handled by the proxy (Istio standard metric).")
            for s in series {
                sample(&out, "istio_requests_total", s.labels, format(stats.slots[s.index * stride + SeriesLayout.requests]))
            }
            family(&out, "istio_request_duration_milliseconds", "histogram", "Request duration in milliseconds (Istio standard metric).")
            for s in series {
                let base = s.index * stride
                histogram(&out, "istio_request_duration_milliseconds", s.labels,
                          bounds: SeriesLayout.durationBounds,
                          counts: stats.slots[(base + SeriesLayout.durationBuckets)...].prefix(SeriesLayout.durationBounds.count + 1),
                          sum: format(stats.durationSums[s.index]))
            }
            family(&out, "istio_request_bytes", "histogram", "Request body sizes in bytes (Istio standard metric).")
            for s in series {
                let base = s.index * stride
                histogram(&out, "istio_request_bytes", s.labels,
                          bounds: SeriesLayout.byteBounds.map(Double.init),
                          counts: stats.slots[(base + SeriesLayout.requestBytesBuckets)...].prefix(SeriesLayout.byteBounds.count + 1),
                          sum: format(stats.slots[base + SeriesLayout.requestBytesSum]))
            }
            family(&out, "istio_response_bytes", "histogram", "Response body sizes in bytes (Istio standard metric).")
            for s in series {
                let base = s.index * stride
                histogram(&out, "istio_response_bytes", s.labels,
                          bounds: SeriesLayout.byteBounds.map(Double.init),
                          counts: stats.slots[(base + SeriesLayout.responseBytesBuckets)...].prefix(SeriesLayout.byteBounds.count + 1),
                          sum: format(stats.slots[base + SeriesLayout.responseBytesSum]))
            }
        }

        // Cluster stats, in cluster-name order.
        let clusters = stats.clusters.map { (labels: "cluster=\"\(escapeLabel(name($0)))\"", id: Int($0)) }
            .sorted { $0.labels < $1.labels }
        if !clusters.isEmpty {
            for c in ClusterCounter.allCases {
                let metric = "remora_cluster_\(c)"
                family(&out, metric, "counter", c.help)
                for cl in clusters {
                    sample(&out, metric, cl.labels, format(stats.clusterCounters[cl.id * ClusterCounter.count + c.rawValue]))
                }
            }
            for g in ClusterGauge.allCases {
                let metric = "remora_cluster_\(g)"
                family(&out, metric, "gauge", g.help)
                for cl in clusters {
                    sample(&out, metric, cl.labels, String(stats.clusterGauges[cl.id * ClusterGauge.count + g.rawValue]))
                }
            }
        }

        family(&out, "remora_access_log_dropped_total", "counter", "Access log lines dropped because the log writer fell behind.")
        sample(&out, "remora_access_log_dropped_total", "", format(stats.accessLogDropped))
        family(&out, "remora_config_version", "gauge", "Version of the configuration in use (1 = the one loaded at start-up).")
        sample(&out, "remora_config_version", "", String(config.version))
        family(&out, "remora_config_reloads_total", "counter", "Configuration reloads by result.")
        sample(&out, "remora_config_reloads_total", "result=\"success\"", String(config.reloadsOK))
        sample(&out, "remora_config_reloads_total", "result=\"failure\"", String(config.reloadsFailed))

        for e in extra {
            family(&out, e.name, e.type, e.help)
            sample(&out, e.name, "", format(e.value))
        }
        return out
    }

    /// Istio's labels in Istio's order; the ones Remora cannot know are "unknown".
    static func istioLabels(_ k: SeriesKey, _ name: (Int32) -> String) -> String {
        var s = "reporter=\"\(k.reporter.label)\",source_workload=\"unknown\""
        s += ",destination_service=\"\(escapeLabel(name(k.service)))\""
        s += ",destination_service_name=\"\(escapeLabel(name(k.serviceName)))\""
        s += ",destination_service_namespace=\"\(escapeLabel(name(k.serviceNamespace)))\""
        s += ",request_protocol=\"\(k.grpc ? "grpc" : "http")\""
        s += ",response_code=\"\(k.responseCode)\""
        s += ",grpc_response_status=\"\(k.grpcStatus >= 0 ? String(k.grpcStatus) : "")\""
        s += ",response_flags=\"\(ResponseFlags(rawValue: k.flags))\""
        s += ",connection_security_policy=\"unknown\""
        return s
    }

    private static func family(_ out: inout String, _ name: String, _ type: String, _ help: String) {
        out += "# HELP \(name) \(escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    private static func sample(_ out: inout String, _ name: String, _ labels: String, _ value: String) {
        out += name
        if !labels.isEmpty { out += "{\(labels)}" }
        out += " \(value)\n"
    }

    private static func histogram(_ out: inout String, _ name: String, _ labels: String, bounds: [Double],
                                  counts: ArraySlice<UInt64>, sum: String) {
        var cumulative: UInt64 = 0
        let prefix = labels.isEmpty ? "" : labels + ","
        for (i, c) in counts.enumerated() {
            cumulative &+= c
            let le = i < bounds.count ? format(bounds[i]) : "+Inf"
            out += "\(name)_bucket{\(prefix)le=\"\(le)\"} \(cumulative)\n"
        }
        sample(&out, name + "_sum", labels, sum)
        sample(&out, name + "_count", labels, String(cumulative))
    }

    /// Label values: backslash, double quote and line feed are escaped.
    static func escapeLabel(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else { return s }
        var r = ""
        r.reserveCapacity(s.utf8.count + 8)
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": r += "\\\\"
            case "\"": r += "\\\""
            case "\n": r += "\\n"
            default: r.unicodeScalars.append(ch)
            }
        }
        return r
    }

    /// HELP text: backslash and line feed are escaped (quotes are not).
    static func escapeHelp(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x5C || $0 == 0x0A }) else { return s }
        return s.replacingBackslashesAndNewlines()
    }

    static func format(_ v: UInt64) -> String { String(v) }

    /// Whole numbers without ".0" (le="1000", not "1000.0"); the rest as Swift's shortest
    /// round-trip form, which Prometheus parses ("0.5", "1e-07").
    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return v.description
    }
}

private extension String {
    func replacingBackslashesAndNewlines() -> String {
        var r = ""
        for ch in unicodeScalars {
            switch ch {
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            default: r.unicodeScalars.append(ch)
            }
        }
        return r
    }
}
