import RemoraCore
import RemoraPolicy

/// How long an upstream connection may live and how much it may carry, from the cluster's
/// DestinationRule `connectionPool` (Istio's defaults where unset):
/// - `http.idleTimeout` (default 1 h): a connection with no request in flight closes after it;
/// - `tcp.maxConnectionDuration` (default none): after it, a connection takes no new request and
///   closes once the ones in flight end (Envoy drains it the same way);
/// - `http.maxRequestsPerConnection` (default unlimited; 1 turns keep-alive off).
struct ConnectionLifetime: Sendable {
    var idleTimeoutMs: Int
    var maxDurationMs: Int?
    var maxRequests: Int?

    static let defaultIdleTimeoutMs = 3_600_000
    static let `default` = ConnectionLifetime(idleTimeoutMs: defaultIdleTimeoutMs, maxDurationMs: nil, maxRequests: nil)

    /// The deadline (monotonic ms) after which a connection born at `bornMs` retires; nil: never.
    func retireAtMs(bornMs: UInt64) -> UInt64? {
        maxDurationMs.map { bornMs + UInt64($0) }
    }

    /// Whether a connection born at `bornMs` that has carried `requests` may take another at `nowMs`.
    func canCarryMore(requests: Int, bornMs: UInt64, nowMs: UInt64) -> Bool {
        if let m = maxRequests, requests >= m { return false }
        if let end = retireAtMs(bornMs: bornMs), nowMs >= end { return false }
        return true
    }

    /// How long an idle connection may wait in its pool from `nowMs`: the idle timeout, or less
    /// when its maximum duration comes first (0: close it now).
    func idleWaitMs(bornMs: UInt64, nowMs: UInt64) -> Int {
        guard let end = retireAtMs(bornMs: bornMs) else { return idleTimeoutMs }
        return end <= nowMs ? 0 : min(idleTimeoutMs, Int(end - nowMs))
    }
}

extension ClusterSpec {
    /// The lifetime limits of this cluster's upstream connections.
    var connectionLifetime: ConnectionLifetime {
        let pool = trafficPolicy?.connectionPool
        guard pool != nil else { return .default }
        let idle = pool?.http?.idleTimeout.map(\.milliseconds).flatMap { $0 > 0 ? $0 : nil }
        let duration = pool?.tcp?.maxConnectionDuration.map(\.milliseconds).flatMap { $0 > 0 ? $0 : nil }
        let requests = pool?.http?.maxRequestsPerConnection.flatMap { $0 > 0 ? $0 : nil }
        return ConnectionLifetime(idleTimeoutMs: idle ?? ConnectionLifetime.defaultIdleTimeoutMs, maxDurationMs: duration,
                                  maxRequests: requests)
    }
}
