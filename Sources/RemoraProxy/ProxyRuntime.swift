#if canImport(Glibc)
import Glibc
#endif
import RemoraCore
import RemoraIO
import RemoraPolicy
import RemoraTLS

/// The control thread: binds listeners, starts the workers, and turns signals into
/// drain (SIGTERM/SIGINT) and reload (SIGHUP).
public final class ProxyRuntime {
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
    private let reload: () throws -> Snapshot
    private var signalFD: Int32 = -1
    private var drainedWorkers = 0
    private var draining = false
    /// DNS clusters are re-resolved on their own thread (getaddrinfo blocks), never on a worker.
    private let resolver = WorkerThread(index: -1)
    private var resolving = false
    static let dnsRefreshMs = 30_000
    private lazy var dnsTimer = LoopTimer { [unowned self] in self.refreshDNS() }
    /// Server certificates of TLS listeners, checked for rotation every second.
    private var serverTLS: [TLSServerContext] = []
    static let certificateCheckMs = 1_000
    private lazy var certificateTimer = LoopTimer { [unowned self] in self.checkCertificates() }
    private lazy var drainTimer = LoopTimer { [unowned self] in
        Log.warning("drain timeout reached with requests still in flight; exiting")
        self.controlLoop.stop()
    }

    /// `reload` re-reads the configuration sources (SIGHUP).
    public init(snapshot: Snapshot, reload: @escaping () throws -> Snapshot) {
        self.reload = reload
        state = ProxyState.build(snapshot, version: 1, registry: registry)
    }

    /// Runs until drained after SIGTERM/SIGINT. Throws only at start-up.
    public func run() throws(StartError) {
        signalFD = ProcessSetup.signals()
        ProcessSetup.raiseFileLimit()
        let settings = state.snapshot.settings
        let count = settings.workers > 0 ? settings.workers : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

        // Bind on this thread so a port that cannot be bound fails start-up, and so port 0
        // resolves once: the other workers bind the port the first one got.
        var bound: [(ListenerSpec, [Int32], TLSServerContext?)] = []
        for spec in state.snapshot.listeners {
            var tls: TLSServerContext?
            if spec.tls {
                do {
                    tls = try TLSSettings.serverContext(spec, credentialsDir: settings.credentialsDir)
                } catch {
                    for (_, fs, _) in bound { for f in fs { Socket.close(f) } }
                    throw .listen("listener \(spec.name): \(error)")
                }
            }
            var fds: [Int32] = []
            var port = spec.address.port
            for _ in 0..<count {
                do {
                    let fd = try Socket.listen(host: spec.address.address, port: port, reusePort: true)
                    if port == 0 { port = Socket.localPort(fd) }
                    fds.append(fd)
                } catch {
                    for f in fds { Socket.close(f) }
                    for (_, fs, _) in bound { for f in fs { Socket.close(f) } }
                    throw .listen(error.description)
                }
            }
            Log.info("listening on \(spec.address.address):\(port) (\(spec.name), \(spec.kind)\(tls == nil ? "" : ", TLS"))")
            bound.append((spec, fds, tls))
            if let tls { serverTLS.append(tls) }
        }

        for i in 0..<count {
            let thread = WorkerThread(index: i)
            let worker = ProxyWorker(index: i, loop: thread.loop, state: state)
            for (spec, fds, tls) in bound {
                worker.listeners.append(ListenerRuntime(worker: worker, fd: fds[i], spec: spec, tls: tls))
            }
            worker.onDrained = { [unowned self] in
                self.controlLoop.post { self.workerDrained() }
            }
            threads.append(thread)
            workers.append(worker)
        }
        for t in threads { t.start { _ in } }
        _ = controlLoop.register(fd: signalFD, events: IOEvents.readable, handler: SignalHandler(self, fd: signalFD))
        resolver.start { _ in }
        controlLoop.arm(dnsTimer, afterMs: ProxyRuntime.dnsRefreshMs)
        if !serverTLS.isEmpty { controlLoop.arm(certificateTimer, afterMs: ProxyRuntime.certificateCheckMs) }
        Log.info("serving with \(count) worker(s)")
        controlLoop.run()
    }

    fileprivate func handleSignal(_ sig: Int32) {
        switch sig {
        case SIGTERM, SIGINT: beginDrain()
        case SIGHUP: reloadNow()
        default: break
        }
    }

    private func beginDrain() {
        guard !draining else { return }
        draining = true
        Log.info("draining")
        controlLoop.arm(drainTimer, afterMs: state.snapshot.settings.drainTimeoutMs)
        for w in workers { w.loop.post { w.beginDrain() } }
    }

    private func workerDrained() {
        drainedWorkers += 1
        if drainedWorkers == workers.count {
            Log.info("drained; exiting")
            controlLoop.stop()
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

    private func refreshDNS() {
        controlLoop.arm(dnsTimer, afterMs: ProxyRuntime.dnsRefreshMs)
        let current = state
        let hasDNS = current.snapshot.clusters.contains { if case .dns = $0.resolution { true } else { false } }
        guard hasDNS, !resolving, !draining else { return }
        resolving = true
        let registry = self.registry
        resolver.loop.post { [controlLoop] in
            let fresh = ProxyState.build(current.snapshot, version: current.version, registry: registry)
            controlLoop.post { [unowned self] in
                self.resolving = false
                // Install only if no reload happened meanwhile and an address changed.
                guard self.state === current, !fresh.sameEndpoints(as: current) else { return }
                self.state = fresh
                for w in self.workers { w.loop.post { w.install(fresh) } }
                Log.info("DNS refresh: cluster endpoints changed")
            }
        }
    }

    private func reloadNow() {
        do {
            let snapshot = try reload()
            let next = ProxyState.build(snapshot, version: state.version + 1, registry: registry)
            if Set(next.snapshot.listeners) != Set(state.snapshot.listeners) {
                Log.warning("reload: the listener set changed; listeners are kept as they were until restart")
            }
            state = next
            for w in workers { w.loop.post { w.install(next) } }
            Log.info("configuration reloaded (version \(next.version))")
        } catch {
            Log.error("reload rejected, configuration unchanged: \(error)")
        }
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
