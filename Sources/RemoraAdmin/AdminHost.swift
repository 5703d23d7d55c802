import RemoraConfig
import RemoraPolicy

/// What the admin API needs from the running proxy. RemoraAdmin never imports RemoraProxy (which
/// depends on it): `ProxyRuntime` implements this. Every call is made on the control loop, and every
/// callback must be delivered there.
public protocol AdminHost: AnyObject {
    /// Installs a compiled snapshot on every worker; calls `done` (on the control loop) once every worker
    /// has it, so a reply sent from `done` guarantees new requests see it (SPEC §4). Listener-set changes
    /// are the host's business.
    func install(_ snapshot: Snapshot, version: Int, done: @escaping () -> Void)
    /// false before the first configuration serves and while draining.
    var isServing: Bool { get }
    /// POST /drain (false), POST /quitquitquit (true).
    func beginDrain(exitWhenDone: Bool)
    /// Prometheus text, produced asynchronously (the host asks its workers), delivered on the control loop.
    func renderMetrics(_ reply: @escaping (String) -> Void)
    /// The `GET /clusters` body as a JSON-able value (endpoints, health, ejections, active requests).
    func clustersJSON() -> ConfigValue
}
