#if canImport(Glibc)
import Glibc
#endif
import RemoraConfig
import RemoraCore
import RemoraDNS
import RemoraIO
import RemoraPolicy

/// The control thread's side of DNS. A `DNSService` (c-ares) runs on its own resolver thread,
/// never on a worker loop and never blocking the control loop; every answer it records is
/// posted here, and a changed address set of a name in use calls `onChange` (the runtime
/// rebuilds its state from the same snapshot).
///
/// Warming, as Envoy warms clusters: a configuration whose names are all known is installed
/// at once; one that brings new names is installed once each has an answer or a failure, or
/// after `warmTimeoutMs` (those still unanswered have no endpoints until they are). A newer
/// configuration supersedes an older one still warming. Every call is on the control loop,
/// except `warmAtStartup`, which runs before it.
final class DNSRefresh {
    static let warmTimeoutMs = 5_000

    private let control: EventLoop
    private let thread = WorkerThread(index: -1)
    private let holder = ServiceHolder()
    /// What the resolver thread last reported, per tracked name.
    private(set) var statuses: [String: DNSStatus] = [:]
    /// Names of the configuration in force, and of configurations still warming (by id).
    private var installedNames: Set<String> = []
    private var warming: [Int: Set<String>] = [:]
    private var nextID = 0
    private var installedID = -1
    private var options = DNSOptions()
    private var changeScheduled = false
    /// An address set in use changed (on the control loop, once per batch of answers).
    var onChange: (() -> Void)?

    /// The service lives on the resolver thread and is touched only there.
    private final class ServiceHolder: @unchecked Sendable { var service: DNSService? }

    init(control: EventLoop) {
        self.control = control
    }

    func start() {
        let holder = self.holder
        thread.start { [control] loop in
            let service = DNSService(loop: loop) { servers in try CAresResolver(loop: loop, servers: servers) }
            service.onStatus = { [weak self] name, status in
                control.post { self?.record(name, status) }
            }
            holder.service = service
        }
    }

    /// A name's last good answer (empty when none).
    func addresses(_ name: String) -> [String] { statuses[name]?.addresses ?? [] }

    static func options(_ settings: ProxySettings) -> DNSOptions {
        DNSOptions(servers: settings.dns.servers.map { DNSServer(address: $0.address, port: $0.port) },
                   refreshRateMs: settings.dns.refreshRateMs)
    }

    /// Start-up, before the control loop runs: resolves `snapshot`'s names, waiting at most
    /// the warm timeout (listeners are bound already; workers start after).
    func warmAtStartup(_ snapshot: Snapshot) {
        let names = ProxyState.dnsNames(snapshot)
        options = DNSRefresh.options(snapshot.settings)
        installedNames = names
        installedID = nextID
        nextID += 1
        guard !names.isEmpty else { return sync(ready: nil) }
        let done = Completion<[String: DNSStatus]>()
        sync(ready: { done.fulfill($0) })
        // The service answers by the warm timeout itself; the margin only guards against a stuck thread.
        if let got = done.wait(timeoutMs: DNSRefresh.warmTimeoutMs + 2_000) {
            statuses.merge(got) { current, _ in current }
        }
    }

    /// A new configuration: `install` runs (on the control loop) once its names are warm — at
    /// once when they are all known — unless a newer configuration was installed meanwhile, in
    /// which case `superseded` runs instead.
    func prepare(_ snapshot: Snapshot, install: @escaping () -> Void, superseded: @escaping () -> Void) {
        let names = ProxyState.dnsNames(snapshot)
        let id = nextID
        nextID += 1
        options = DNSRefresh.options(snapshot.settings)
        let installed: () -> Void = { [unowned self] in
            self.warming.removeValue(forKey: id)
            guard id > self.installedID else { return superseded() }
            self.installedID = id
            self.installedNames = names
            self.warming = self.warming.filter { $0.key > id }
            install()
            self.sync(ready: nil)   // names no configuration uses any more are dropped
        }
        if names.allSatisfy({ statuses[$0] != nil }) {
            installed()
            return
        }
        warming[id] = names
        let control = self.control
        sync { got in
            control.post { [unowned self] in
                self.statuses.merge(got) { current, _ in current }
                installed()
            }
        }
    }

    /// Tells the service every name in use or warming (and the options); `ready` (on the
    /// resolver thread) once the new ones are settled or the warm timeout passed.
    private func sync(ready: (([String: DNSStatus]) -> Void)?) {
        let names = warming.values.reduce(installedNames) { $0.union($1) }
        let options = self.options
        let holder = self.holder
        thread.loop.post {
            guard let service = holder.service else { return }
            if let ready {
                service.update(names: names, options: options, warmTimeoutMs: DNSRefresh.warmTimeoutMs, ready: ready)
            } else {
                service.update(names: names, options: options, warmTimeoutMs: nil)
            }
        }
    }

    private func record(_ name: String, _ status: DNSStatus?) {
        // Dropped, then wanted again before the drop arrived: keep the answer until the new one.
        if status == nil, installedNames.contains(name) || warming.values.contains(where: { $0.contains(name) }) { return }
        let before = statuses[name]?.addresses
        statuses[name] = status
        guard status?.addresses != before, installedNames.contains(name), !changeScheduled else { return }
        // One rebuild for all the answers recorded in this turn of the loop.
        changeScheduled = true
        control.post { [weak self] in
            guard let self else { return }
            self.changeScheduled = false
            self.onChange?()
        }
    }

    /// `GET /clusters`: the name a DNS cluster resolves, its addresses (the last good answer),
    /// RESOLVING (no result yet) / RESOLVED / FAILING, milliseconds until the next lookup and
    /// why the last lookups failed; an array of those when the cluster's endpoints are
    /// several names. nil for clusters without a name to resolve.
    func clusterJSON(_ spec: ClusterSpec) -> ConfigValue? {
        switch spec.resolution {
        case .dns(let host, _):
            return nameJSON(host)
        case .staticEndpoints(let eps):
            let names = eps.compactMap { nameJSON($0.address) }
            return names.isEmpty ? nil : .array(names)
        }
    }

    private func nameJSON(_ host: String) -> ConfigValue? {
        guard let st = statuses[host] else { return nil }
        let now = MonotonicClock.nowMilliseconds()
        var entries = [ConfigValue.ObjectEntry("name", .string(host)),
                       ConfigValue.ObjectEntry("addresses", .array(st.addresses.map { .string($0) })),
                       ConfigValue.ObjectEntry("state", .string(!st.settled ? "RESOLVING" : st.lastError == nil ? "RESOLVED" : "FAILING")),
                       ConfigValue.ObjectEntry("nextRefreshMs", .int(st.nextRefreshMs > now ? Int(st.nextRefreshMs - now) : 0))]
        if let e = st.lastError { entries.append(ConfigValue.ObjectEntry("lastError", .string(e))) }
        return .object(entries)
    }
}

/// A value handed from another thread, waited for with a deadline (start-up only).
private final class Completion<T>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: T?

    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func fulfill(_ v: T) {
        pthread_mutex_lock(mutex)
        value = v
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    func wait(timeoutMs: Int) -> T? {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let ns = Int(ts.tv_nsec) + (timeoutMs % 1_000) * 1_000_000
        ts.tv_sec += timeoutMs / 1_000 + ns / 1_000_000_000
        ts.tv_nsec = ns % 1_000_000_000
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while value == nil {
            if pthread_cond_timedwait(cond, mutex, &ts) != 0 { break }
        }
        return value
    }
}
