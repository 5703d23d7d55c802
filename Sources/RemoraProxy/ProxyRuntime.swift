#if canImport(Glibc)
import Glibc
#endif
import RemoraAdmin
import RemoraConfig
import RemoraCore
import RemoraIO
import RemoraPolicy
import RemoraTLS
import RemoraTelemetry

/// The control thread: binds listeners, starts the workers, and turns signals into
/// drain (SIGTERM/SIGINT) and reload (SIGHUP).
public final class ProxyRuntime: AdminHost {
    public enum StartError: Error, CustomStringConvertible {
        case listen(String)
        public var description: String {
            switch self { case .listen(let m): m }
        }
    }

    private let controlLoop = EventLoop()
    private let registry = EndpointRegistry()
    private var threads: [WorkerThread] = []
    private var workers: [ProxyWorker] = []
    private var state: ProxyState
    /// Re-reads the `-c` sources (SIGHUP, file watching).
    private let loadSources: () throws -> ConfigSet
    private let watchPaths: [String]
    private var store: ConfigStore
    private var admin: AdminServer?
    /// Exit once drained (SIGTERM, /quitquitquit); POST /drain only drains.
    private var exitWhenDrained = true
    private var started = false
    private var watched: FileWatch?
    private lazy var watchTimer = LoopTimer { [unowned self] in self.checkSources() }
    /// Outlier detection's interval work (unejecting hosts whose time is up), every second.
    static let outlierTickMs = 1_000
    private lazy var outlierTimer = LoopTimer { [unowned self] in self.tickOutliers() }

    private func tickOutliers() {
        let now = MonotonicClock.nowMilliseconds()
        for r in registry.allResilience() { r.outlier?.tick(now: now) }
        controlLoop.arm(outlierTimer, afterMs: ProxyRuntime.outlierTickMs)
    }
    private var signalFD: Int32 = -1
    private var drainedWorkers = 0
    private var draining = false
    /// Names are resolved on their own thread (c-ares), never on a worker; each on its TTL.
    private let dns: DNSRefresh
    /// The listeners bound now, by name: their sockets (one per worker) and TLS context.
    private var bound: [String: BoundListener] = [:]
    private struct BoundListener {
        var spec: ListenerSpec
        let fds: [Int32]
        var tls: TLSServerContext?
    }
    private var workerCount = 0
    private var accessLogSink: AccessLogSink?
    /// Server certificates of TLS listeners, checked for rotation every second.
    private var serverTLS: [TLSServerContext] { bound.values.compactMap(\.tls) }
    static let certificateCheckMs = 1_000
    private lazy var certificateTimer = LoopTimer { [unowned self] in self.checkCertificates() }
    private lazy var drainTimer = LoopTimer { [unowned self] in
        Log.warning("drain timeout reached with requests still in flight; exiting")
        self.controlLoop.stop()
    }

    /// `loadSources` re-reads the configuration sources (SIGHUP, and `watch: true` when
    /// `watchPaths` change).
    public init(snapshot: Snapshot, watchPaths: [String], loadSources: @escaping () throws -> ConfigSet) {
        self.loadSources = loadSources
        self.watchPaths = watchPaths
        store = ConfigStore(initial: snapshot.config, snapshot: snapshot)
        dns = DNSRefresh(control: controlLoop)
        // IP literals only until `run` has warmed the names.
        state = ProxyState.build(snapshot, version: 1, registry: registry) { _ in [] }
    }

    /// Runs until drained after SIGTERM/SIGINT. Throws only at start-up.
    public func run() throws(StartError) {
        signalFD = ProcessSetup.signals()
        ProcessSetup.raiseFileLimit()
        let settings = state.snapshot.settings
        // $REMORA_WORKERS overrides the Proxy resource (a manifest need not ship one).
        let env = getenv("REMORA_WORKERS").flatMap { Int(String(cString: $0)) }.flatMap { $0 >= 0 ? $0 : nil }
        let wanted = env ?? settings.workers
        let count = wanted > 0 ? wanted : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

        workerCount = count
        let logTarget: AccessLogSink.Target = switch settings.accessLog {
        case .stdout: .stdout
        case .off: .off
        case .file(let path): .file(path)
        }
        do {
            let sink = try AccessLogSink(logTarget)
            if sink.isEnabled { accessLogSink = sink }
        } catch {
            throw .listen("access log: \(error)")
        }

        // Bind on this thread so a port that cannot be bound fails start-up, and so port 0
        // resolves once: the other workers bind the port the first one got.
        for spec in state.snapshot.listeners {
            do {
                bound[spec.name] = try bind(spec)
            } catch {
                for b in bound.values { for f in b.fds { Socket.close(f) } }
                throw error
            }
        }

        do {
            admin = try AdminServer(loop: controlLoop, store: store, host: self, admin: settings.admin,
                                    health: settings.health, metrics: settings.metrics)
            admin?.appendConfigMetrics = false   // rendered with the rest below
        } catch {
            for b in bound.values { for f in b.fds { Socket.close(f) } }
            throw .listen("admin endpoints: \(error)")
        }

        // Names are resolved before the workers start (bounded by the warm timeout), like a
        // configuration change that brings new names.
        dns.onChange = { [unowned self] in self.dnsChanged() }
        dns.start()
        dns.warmAtStartup(state.snapshot)
        state = ProxyState.build(state.snapshot, version: state.version, registry: registry, lookup: dns.addresses)

        for i in 0..<count {
            let thread = WorkerThread(index: i)
            let worker = ProxyWorker(index: i, loop: thread.loop, state: state)
            worker.registry = registry
            if let sink = accessLogSink { worker.startAccessLog(AccessLogBuffer(sink: sink, stats: worker.stats)) }
            for b in bound.values.sorted(by: { $0.spec.name < $1.spec.name }) {
                worker.listeners.append(ListenerRuntime(worker: worker, fd: b.fds[i], spec: b.spec, tls: b.tls))
            }
            worker.onDrained = { [unowned self] in
                self.controlLoop.post { self.workerDrained() }
            }
            threads.append(thread)
            workers.append(worker)
        }
        for w in workers { w.peers = workers }
        if settings.watch, !watchPaths.isEmpty {
            watched = FileWatch(paths: watchPaths)
            controlLoop.arm(watchTimer, afterMs: ProxyRuntime.watchIntervalMs)
        }
        controlLoop.arm(outlierTimer, afterMs: ProxyRuntime.outlierTickMs)
        for t in threads { t.start { _ in } }
        started = true
        _ = controlLoop.register(fd: signalFD, events: IOEvents.readable, handler: SignalHandler(self, fd: signalFD))
        if !serverTLS.isEmpty { controlLoop.arm(certificateTimer, afterMs: ProxyRuntime.certificateCheckMs) }
        Log.info("serving with \(count) worker(s)")
        controlLoop.run()
    }

    fileprivate func handleSignal(_ sig: Int32) {
        switch sig {
        case SIGTERM, SIGINT: beginDrain()
        case SIGHUP: admin?.reloadFromSources(loadSources, cause: "SIGHUP")
        default: break
        }
    }

    private func beginDrain() { beginDrain(exitWhenDone: true) }

    public var isServing: Bool { started && !draining }

    /// Readiness turns 503 at once; every worker stops accepting, closes idle connections and
    /// lets exchanges in flight finish (HTTP/2: GOAWAY).
    public func beginDrain(exitWhenDone: Bool) {
        // The drain timeout bounds the wait for an exit; a drain that does not exit has none.
        if exitWhenDone && (!draining || !exitWhenDrained) {
            controlLoop.arm(drainTimer, afterMs: state.snapshot.settings.drainTimeoutMs)
        }
        guard !draining else {
            if exitWhenDone {
                exitWhenDrained = true
                if drainedWorkers == workers.count { exitNow() }
            }
            return
        }
        exitWhenDrained = exitWhenDone
        draining = true
        Log.info(exitWhenDone ? "draining" : "draining (not exiting: POST /drain)")
        for w in workers { w.loop.post { w.beginDrain() } }
    }

    private func workerDrained() {
        drainedWorkers += 1
        if drainedWorkers == workers.count {
            if exitWhenDrained { exitNow() } else { Log.info("drained") }
        }
    }

    private func exitNow() {
        Log.info("drained; exiting")
        admin?.close()
        // Workers have no exchanges left; what they buffered reaches the sink (on their own
        // threads), then the file.
        guard let sink = accessLogSink, !workers.isEmpty else { controlLoop.stop(); return }
        var pending = workers.count
        for w in workers {
            w.loop.post { [controlLoop] in
                w.accessLog?.drain()
                controlLoop.post {
                    pending -= 1
                    if pending == 0 { sink.flush(); controlLoop.stop() }
                }
            }
        }
    }

    // MARK: AdminHost

    /// Each worker copies its own counters on its own thread; the copies are merged here.
    public func renderMetrics(_ reply: @escaping (String) -> Void) {
        var merged = StatsSnapshot()
        var handshakeFailures = 0
        var tcp = TCPCounters()
        var pending = workers.count
        let names = registry.names
        let finish: () -> Void = { [unowned self] in
            let config = ConfigStats(version: self.store.version, reloadsOK: self.store.reloadsSucceeded,
                                     reloadsFailed: self.store.reloadsFailed)
            let extra = [(name: "remora_tls_handshake_failures_total",
                          help: "TLS handshakes that failed, downstream and upstream (bad certificate, protocol, SNI).",
                          type: "counter", value: Double(handshakeFailures)),
                         (name: "istio_tcp_connections_opened_total", help: "Plain TCP connections proxied (opened).",
                          type: "counter", value: Double(tcp.opened)),
                         (name: "istio_tcp_connections_closed_total", help: "Plain TCP connections proxied (closed).",
                          type: "counter", value: Double(tcp.closed)),
                         (name: "istio_tcp_received_bytes_total", help: "Bytes received from clients of plain TCP connections.",
                          type: "counter", value: Double(tcp.received)),
                         (name: "istio_tcp_sent_bytes_total", help: "Bytes sent to clients of plain TCP connections.",
                          type: "counter", value: Double(tcp.sent))]
            reply(PrometheusText.render(merged, names: names, config: config, extra: extra)
                  + ClusterGauges.render(self.registry.allResilience()))
        }
        guard pending > 0 else { return finish() }
        for w in workers {
            w.loop.post { [controlLoop] in
                let snap = w.stats.snapshot()
                let failures = w.tlsHandshakeFailures
                let t = w.tcp
                controlLoop.post {
                    merged.merge(snap)
                    handshakeFailures += failures
                    tcp.add(t)
                    pending -= 1
                    if pending == 0 { finish() }
                }
            }
        }
    }

    public func clustersJSON() -> ConfigValue {
        .object([ConfigValue.ObjectEntry("clusters", .array(state.clusters.map(clusterJSON)))])
    }

    private func clusterJSON(_ c: ClusterTarget) -> ConfigValue {
        var entries = [ConfigValue.ObjectEntry("name", .string(c.spec.name)),
                       ConfigValue.ObjectEntry("host", .string(c.spec.host)),
                       ConfigValue.ObjectEntry("protocol", .string("\(c.spec.upstreamProtocol)")),
                       ConfigValue.ObjectEntry("tls", .bool(c.tls != nil))]
        if let d = dns.clusterJSON(c.spec) { entries.append(ConfigValue.ObjectEntry("dns", d)) }
        entries.append(ConfigValue.ObjectEntry("circuitBreakers", .object(c.resilience.map { r in
            [ConfigValue.ObjectEntry("connections", .int(r.breaker.count(.connections))),
             ConfigValue.ObjectEntry("pendingRequests", .int(r.breaker.count(.pendingRequests))),
             ConfigValue.ObjectEntry("requests", .int(r.breaker.count(.requests))),
             ConfigValue.ObjectEntry("retries", .int(r.breaker.count(.retries)))]
        } ?? [])))
        entries.append(ConfigValue.ObjectEntry("endpoints", .array(c.endpoints.enumerated().map { i, e in
            let ejected = c.resilience?.outlier?.isEjected(endpoint: i) ?? false
            return .object([ConfigValue.ObjectEntry("address", .string(e.address.description)),
                            ConfigValue.ObjectEntry("health", .string(ejected ? "EJECTED" : "HEALTHY")),
                            ConfigValue.ObjectEntry("activeRequests", .int(c.resilience?.hosts.activeRequests(i) ?? 0))])
        })))
        return .object(entries)
    }

    // MARK: watching the sources

    static let watchIntervalMs = 1_000

    /// `watch: true`: a changed file (or a ConfigMap's swapped `..data` symlink) reloads.
    private func checkSources() {
        controlLoop.arm(watchTimer, afterMs: ProxyRuntime.watchIntervalMs)
        guard let w = watched, !draining, w.changed() else { return }
        admin?.reloadFromSources(loadSources, cause: "file change")
    }

    /// Binds one socket per worker (SO_REUSEPORT) and loads the listener's certificates.
    private func bind(_ spec: ListenerSpec) throws(StartError) -> BoundListener {
        var tls: TLSServerContext?
        if spec.tls {
            do {
                tls = try TLSSettings.serverContext(spec, credentialsDir: state.snapshot.settings.credentialsDir)
            } catch {
                throw .listen("listener \(spec.name): \(error)")
            }
        }
        var fds: [Int32] = []
        var port = spec.address.port
        for _ in 0..<workerCount {
            do {
                let fd = try Socket.listen(host: spec.address.address, port: port, reusePort: true)
                if port == 0 { port = Socket.localPort(fd) }
                fds.append(fd)
            } catch {
                for f in fds { Socket.close(f) }
                throw .listen(error.description)
            }
        }
        Log.info("listening on \(spec.address.address):\(port) (\(spec.name), \(spec.kind)\(tls == nil ? "" : ", TLS"))")
        return BoundListener(spec: spec, fds: fds, tls: tls)
    }

    /// Hands a new configuration to every worker and calls `done` (on the control loop)
    /// once all of them have it. Listeners are opened or closed only when the listener set
    /// changed; a listener whose servers changed keeps its socket and connections.
    /// A configuration that brings names DNS has not resolved yet waits for them first (at most
    /// `DNSRefresh.warmTimeoutMs`); one superseded meanwhile by a newer one is not installed.
    public func install(_ snapshot: Snapshot, version: Int, done: @escaping () -> Void) {
        dns.prepare(snapshot, install: { [unowned self] in self.installNow(snapshot, version: version, done: done) },
                    superseded: done)
    }

    private func installNow(_ snapshot: Snapshot, version: Int, done: @escaping () -> Void) {
        let next = ProxyState.build(snapshot, version: version, registry: registry, lookup: dns.addresses)
        let wanted = Dictionary(snapshot.listeners.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var removed: [String] = []
        for name in bound.keys where wanted[name] == nil {
            removed.append(name)
            bound.removeValue(forKey: name)   // each worker closes its own socket
        }
        var added: [BoundListener] = []
        var updated: [BoundListener] = []
        for (name, spec) in wanted.sorted(by: { $0.key < $1.key }) {
            if var b = bound[name] {
                guard b.spec != spec else { continue }
                if spec.tls {
                    do { b.tls = try TLSSettings.serverContext(spec, credentialsDir: snapshot.settings.credentialsDir) } catch {
                        Log.error("reload: listener \(name) keeps its previous certificates: \(error)")
                    }
                } else {
                    b.tls = nil
                }
                b.spec = spec
                bound[name] = b
                updated.append(b)
            } else {
                do {
                    let b = try bind(spec)
                    bound[name] = b
                    added.append(b)
                } catch {
                    Log.error("reload: listener \(name) not opened: \(error)")
                }
            }
        }
        if !removed.isEmpty || !added.isEmpty {
            Log.info("listeners: \(added.count) opened, \(removed.count) closed")
        }
        state = next
        var pending = workers.count
        for (i, w) in workers.enumerated() {
            w.loop.post { [controlLoop] in
                w.install(next)
                w.listeners.removeAll { l in
                    guard removed.contains(l.spec.name) else { return false }
                    l.close()
                    return true
                }
                for b in updated {
                    w.listeners.first { $0.spec.name == b.spec.name }?.update(spec: b.spec, tls: b.tls)
                }
                if !w.draining {
                    for b in added { w.listeners.append(ListenerRuntime(worker: w, fd: b.fds[i], spec: b.spec, tls: b.tls)) }
                } else {
                    for b in added { Socket.close(b.fds[i]) }
                }
                controlLoop.post {
                    pending -= 1
                    if pending == 0 { done() }
                }
            }
        }
    }

    /// A Kubernetes secret update swaps the files under a mounted credential: new
    /// connections get the new certificate, live ones keep theirs.
    private func checkCertificates() {
        controlLoop.arm(certificateTimer, afterMs: ProxyRuntime.certificateCheckMs)
        for ctx in serverTLS {
            let r = ctx.reloadIfChanged()
            for path in r.reloaded { Log.info("certificate reloaded: \(path)") }
            for e in r.errors { Log.error("certificate reload failed, keeping the previous one: \(e)") }
        }
    }

    /// An address set changed: the state in force is rebuilt from the same snapshot and
    /// posted to the workers when a cluster's endpoints changed.
    private func dnsChanged() {
        guard !draining else { return }
        let fresh = ProxyState.build(state.snapshot, version: state.version, registry: registry, lookup: dns.addresses)
        guard !fresh.sameEndpoints(as: state) else { return }
        state = fresh
        for w in workers { w.loop.post { w.install(fresh) } }
        Log.info("DNS: cluster endpoints changed")
    }
}

/// Reads the signalfd on the control loop.
private final class SignalHandler: EventHandler {
    unowned let runtime: ProxyRuntime
    let fd: Int32
    init(_ runtime: ProxyRuntime, fd: Int32) {
        self.runtime = runtime
        self.fd = fd
    }

    func handleEvent(_ events: UInt32) {
        while true {
            let sig = ProcessSetup.readSignal(fd)
            if sig == 0 { return }
            runtime.handleSignal(sig)
        }
    }
}
