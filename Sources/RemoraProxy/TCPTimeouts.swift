import RemoraConfig
import RemoraPolicy

/// The timeouts of a plain TCP proxy connection (Envoy tcp_proxy `idle_timeout` and
/// `max_downstream_connection_duration`, which Istio fills from the DestinationRule's
/// `connectionPool.tcp.idleTimeout` (default 1 h) and `maxConnectionDuration` (default none)).
struct TCPTimeouts: Sendable, Equatable {
    var idleMs: Int
    var maxDurationMs: Int?

    static let defaultIdleMs = 3_600_000
    static let `default` = TCPTimeouts(idleMs: defaultIdleMs, maxDurationMs: nil)

    init(idleMs: Int, maxDurationMs: Int?) {
        self.idleMs = idleMs
        self.maxDurationMs = maxDurationMs
    }

    init(_ tcp: ConnectionPoolSettings.TCPSettings?) {
        idleMs = tcp?.idleTimeout.map(\.milliseconds).flatMap { $0 > 0 ? $0 : nil } ?? TCPTimeouts.defaultIdleMs
        maxDurationMs = tcp?.maxConnectionDuration.map(\.milliseconds).flatMap { $0 > 0 ? $0 : nil }
    }

    /// When the connection, idle since `lastActivityMs`, born at `bornMs`, must close (monotonic ms).
    func deadline(bornMs: UInt64, lastActivityMs: UInt64) -> UInt64 {
        let idleEnd = lastActivityMs + UInt64(idleMs)
        guard let d = maxDurationMs else { return idleEnd }
        return min(idleEnd, bornMs + UInt64(d))
    }

    /// The timeouts for each port a ServiceEntry declares non-HTTP (the ports intercepted
    /// connections are TCP-proxied on), from the DestinationRule for one of the entry's hosts
    /// (its port-level settings included). Ports without one are absent: `.default`.
    static func byPort(_ config: ConfigSet) -> [Int: TCPTimeouts] {
        let rules = config.resources(of: .destinationRule)
        var out: [Int: TCPTimeouts] = [:]
        for entry in config.resources(of: .serviceEntry) {
            guard let se = entry.serviceEntry?.spec else { continue }
            for port in se.ports where !ProxyState.httpProtocols.contains(port.protocol ?? "HTTP") && out[port.number] == nil {
                let rule = rules.first { r in
                    guard let h = r.destinationRule?.spec.host else { return false }
                    return se.hosts.contains { HostNames.sameService(h, namespace: r.namespace, $0, namespace: entry.namespace) }
                }
                guard let policy = rule?.destinationRule?.spec.trafficPolicy?.forPort(port.number).policy else { continue }
                out[port.number] = TCPTimeouts(policy.connectionPool?.tcp)
            }
        }
        return out
    }
}
