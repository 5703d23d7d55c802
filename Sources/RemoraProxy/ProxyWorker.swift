import RemoraCore
import RemoraIO
import RemoraPolicy
import RemoraTLS
import RemoraTelemetry
import RemoraResilience

struct PassthroughKey: Hashable {
    let target: SocketAddress
    let inbound: Bool
}

/// A client connection of either protocol, as the worker tracks it for limits and draining.
protocol DownstreamHandle: AnyObject {
    /// Idle connections close now, busy ones after their exchanges.
    func drain()
}

/// Everything one worker thread owns: its loop, its listeners, its upstream pools and
/// the configuration state new requests use. Touched only from its own loop.
final class ProxyWorker {
    let loop: EventLoop
    let index: Int
    private(set) var state: ProxyState
    var random = FastRandom()
    /// Buffer blocks for this worker's connections (held only while they hold bytes).
    let buffers = BufferPool()
    private(set) var limits: ProxyLimits
    /// This worker's load balancer per cluster of the current state (index = cluster index).
    private var balancers: [LoadBalancer?] = []
    /// Compiled retry policies by route rule and cluster (compiled once, not per request).
    private var retryPolicies: [ObjectIdentifier: RetryPolicy] = [:]
    /// TCP proxy timeouts by destination port, from the current state's DestinationRules.
    private var tcpTimeoutsByPort: [Int: TCPTimeouts] = [:]

    var listeners: [ListenerRuntime] = []
    /// Idle keep-alive upstream connections by endpoint pool id.
    private var idle: [[UpstreamConnection]] = []
    static let maxIdlePerEndpoint = 256
    /// Multiplexed HTTP/2 upstream connections by endpoint pool id.
    private var h2: [[H2UpstreamConnection]] = []
    /// HTTP/1.1 requests waiting for a connection slot (see PendingQueue.swift), oldest first.
    var pendingQueue: [UpstreamConnection] = []
    /// Every worker of the process, this one included (a freed connection slot wakes the
    /// pending requests of all of them). Set once before the loops start.
    var peers: [ProxyWorker] = []

    /// Live downstream connections, for the connection limit and for draining.
    private(set) var downstreamCount = 0
    private var downstreams: [ObjectIdentifier: DownstreamHandle] = [:]
    private(set) var draining = false
    /// Process-wide endpoint ids and metric names (passthrough destinations are added on the fly).
    var registry: EndpointRegistry!
    /// Passthrough clusters by original destination (see planPassthrough).
    var passthroughClusters: [PassthroughKey: ClusterTarget] = [:]
    static let maxPassthroughClusters = 1024
    /// This worker's metrics (read by posting `stats.snapshot()` to this loop).
    let stats = WorkerStats()
    /// Access log lines, handed to the sink's writer thread (nil when the log is off).
    private(set) var accessLog: AccessLogBuffer?
    static let logTickMs = 100
    private var logTimer: LoopTimer?

    /// Turns the access log on (on this worker's thread); lines are flushed every 100 ms.
    func startAccessLog(_ buffer: AccessLogBuffer) {
        accessLog = buffer
        let t = LoopTimer { [unowned self] in self.tickAccessLog() }
        logTimer = t
        loop.arm(t, afterMs: ProxyWorker.logTickMs)
    }

    private func tickAccessLog() {
        accessLog?.tick()
        if let t = logTimer { loop.arm(t, afterMs: ProxyWorker.logTickMs) }
    }
    /// Plain TCP proxying (Istio's istio_tcp_* metrics, summed over workers when scraped).
    var tcp = TCPCounters()
    /// TLS handshakes that failed (bad certificate, unknown protocol, …), downstream and upstream.
    var tlsHandshakeFailures = 0
    var onDrained: (() -> Void)?

    init(index: Int, loop: EventLoop, state: ProxyState) {
        self.index = index
        self.loop = loop
        self.state = state
        limits = state.snapshot.settings.limits
        random = FastRandom(seed: MonotonicClock.nowNanoseconds() &* UInt64(index + 1) | 1)
        balancers = state.clusters.map { $0.resilience?.makeLoadBalancer(seed: random.next()) }
        tcpTimeoutsByPort = TCPTimeouts.byPort(state.snapshot.config)
    }

    /// Installs a new configuration for requests that start from now on.
    func install(_ newState: ProxyState) {
        state = newState
        limits = newState.snapshot.settings.limits
        balancers = newState.clusters.map { $0.resilience?.makeLoadBalancer(seed: random.next()) }
        retryPolicies.removeAll(keepingCapacity: true)
        tcpTimeoutsByPort = TCPTimeouts.byPort(newState.snapshot.config)
    }

    /// The timeouts of a plain TCP proxy connection to `port`.
    func tcpTimeouts(port: Int) -> TCPTimeouts { tcpTimeoutsByPort[port] ?? .default }

    /// The retry policy of `entry` towards `cluster` (Istio's default when it has none).
    func retryPolicy(_ entry: RouteEntry, cluster: ClusterTarget) -> RetryPolicy {
        let key = ObjectIdentifier(entry)
        if let p = retryPolicies[key] { return p }
        let p = cluster.resilience?.retryPolicy(entry.rule.retries) ?? .disabled
        retryPolicies[key] = p
        return p
    }

    // MARK: endpoints and pools

    /// The cluster's load-balancing policy picks an endpoint (skipping ejected ones; a
    /// retry avoids the hosts it tried). nil: no endpoint available (503 UH).
    func pickEndpoint(cluster: Int, in st: ProxyState, hash: UInt64? = nil, retry: RetryState? = nil) -> (EndpointRef, Int)? {
        let target = st.clusters[cluster]
        guard !target.endpoints.isEmpty else { return nil }
        guard let res = target.resilience else { return (target.endpoints[0], 0) }
        let r = random.next()
        let i: Int?
        if st === state, cluster < balancers.count, balancers[cluster] != nil {
            i = retry.map { balancers[cluster]!.pick(hash: hash, random: r, for: $0) } ?? balancers[cluster]!.pick(hash: hash, random: r)
        } else {
            var lb = res.makeLoadBalancer(seed: r)   // a request still on an older state
            i = retry.map { lb.pick(hash: hash, random: r, for: $0) } ?? lb.pick(hash: hash, random: r)
        }
        guard let i, i < target.endpoints.count else { return nil }
        return (target.endpoints[i], i)
    }

    /// Closes the idle connections to `endpoint`: one was found closed by its peer, so its
    /// siblings likely are too (a restarting backend).
    func dropIdle(_ endpoint: EndpointRef) {
        guard endpoint.poolID < idle.count else { return }
        let stale = idle[endpoint.poolID]
        idle[endpoint.poolID].removeAll()
        for c in stale { c.close() }
    }

    /// A pooled keep-alive connection to `endpoint` with the same TLS settings, the most
    /// recently used first.
    private func takeIdle(_ endpoint: EndpointRef, tls: TLSClientContext?) -> UpstreamConnection? {
        guard endpoint.poolID < idle.count else { return nil }
        while let i = idle[endpoint.poolID].lastIndex(where: { $0.tlsContext === tls }) {
            let c = idle[endpoint.poolID].remove(at: i)
            if c.takeFromPool() { return c }
        }
        return nil
    }

    enum UpstreamOpen {
        case ready(UpstreamRequest)
        /// The cluster's connection limit (`tcp.maxConnections`) is reached and so is its
        /// pending-request limit (HTTP/1.1), or no HTTP/2 connection has room: 503 UO.
        case overflow
        case failed
    }

    /// The upstream side for a planned exchange: a stream on a shared HTTP/2 connection, or
    /// an HTTP/1.1 connection of its own — a new connection only within the cluster's
    /// connection limit (shared by every worker). Past that limit an HTTP/1.1 request waits
    /// for a connection as a pending request, within `http1MaxPendingRequests` (Envoy's
    /// semantics); each refusal is counted as Envoy counts it.
    func openUpstream(_ f: Forwarding) -> UpstreamOpen {
        let timeout = f.cluster.spec.connectTimeoutMs
        let breaker = f.cluster.resilience?.breaker
        let lifetime = f.cluster.lifetime
        if f.http2 {
            guard let s = h2Stream(f.endpoint, connectTimeoutMs: timeout, maxStreams: f.cluster.spec.maxStreamsPerConnection,
                                   tls: f.tls, breaker: breaker, lifetime: lifetime) else {
                guard breaker?.isOpen(.connections) == true else { return .failed }
                stats.count(.upstream_cx_overflow, cluster: f.cluster.stats.cluster)
                return .overflow
            }
            return .ready(s)
        }
        if let c = takeIdle(f.endpoint, tls: f.tls) { return .ready(c) }
        if let b = breaker, !b.tryAcquire(.connections) {
            stats.count(.upstream_cx_overflow, cluster: f.cluster.stats.cluster)
            guard b.tryAcquire(.pendingRequests) else {
                stats.count(.upstream_rq_pending_overflow, cluster: f.cluster.stats.cluster)
                return .overflow
            }
            return .ready(enqueue(f, breaker: b, lifetime: lifetime))
        }
        guard let c = UpstreamConnection.connect(worker: self, endpoint: f.endpoint, connectTimeoutMs: timeout, tls: f.tls,
                                                 breaker: breaker, lifetime: lifetime) else {
            connectionSlotFreed(breaker)   // wakes requests that may be waiting for it
            return .failed
        }
        return .ready(c)
    }

    /// A stream on the first HTTP/2 connection to `endpoint` with room, or on a new one:
    /// streams spread over as few connections as the stream limits allow.
    func h2Stream(_ endpoint: EndpointRef, connectTimeoutMs: Int, maxStreams: Int?, tls: TLSClientContext?,
                  breaker: CircuitBreaker? = nil, lifetime: ConnectionLifetime = .default) -> H2UpstreamStream? {
        let id = endpoint.poolID
        if id >= h2.count { h2.append(contentsOf: repeatElement([], count: id + 1 - h2.count)) }
        for c in h2[id] where c.hasRoom && c.maxStreams == maxStreams && c.tlsContext === tls { return c.newStream() }
        if let b = breaker, !b.tryAcquire(.connections) { return nil }
        guard let c = H2UpstreamConnection.connect(worker: self, endpoint: endpoint, connectTimeoutMs: connectTimeoutMs,
                                                   maxStreams: maxStreams, tls: tls, breaker: breaker, lifetime: lifetime) else {
            connectionSlotFreed(breaker)   // wakes requests that may be waiting for it
            return nil
        }
        h2[id].append(c)
        return c.newStream()
    }

    /// A closed HTTP/2 connection leaves its pool.
    func forget(_ c: H2UpstreamConnection) {
        let id = c.endpoint.poolID
        guard id < h2.count, let i = h2[id].firstIndex(where: { $0 === c }) else { return }
        h2[id].remove(at: i)
    }

    /// A connection whose exchange ended cleanly goes back to its pool — unless it has
    /// carried all it may, or requests wait for its connection slot (closing it frees the slot).
    func release(_ c: UpstreamConnection) {
        let id = c.endpoint.poolID
        if id >= idle.count { idle.append(contentsOf: repeatElement([], count: id + 1 - idle.count)) }
        guard !draining, idle[id].count < ProxyWorker.maxIdlePerEndpoint, c.canCarryMore,
              c.breaker.map({ $0.count(.pendingRequests) == 0 }) ?? true else { c.close(); return }
        idle[id].append(c)
        c.enterPool()
    }

    /// An idle connection closed by its peer leaves the pool.
    func forget(_ c: UpstreamConnection) {
        let id = c.endpoint.poolID
        guard id < idle.count, let i = idle[id].firstIndex(where: { $0 === c }) else { return }
        idle[id].remove(at: i)
    }

    /// Closes one idle pooled connection counted by `breaker` (its slot is wanted by a
    /// pending request). Whether there was one.
    @discardableResult
    func closeOneIdle(of breaker: CircuitBreaker) -> Bool {
        for pool in idle {
            if let c = pool.last(where: { $0.breaker === breaker }) {
                forget(c)
                c.close()
                return true
            }
        }
        return false
    }

    // MARK: downstream bookkeeping

    func accepted(_ c: DownstreamHandle) {
        downstreams[ObjectIdentifier(c)] = c
        downstreamCount += 1
    }

    func closed(_ c: DownstreamHandle) {
        if downstreams.removeValue(forKey: ObjectIdentifier(c)) != nil { downstreamCount -= 1 }
        if draining && downstreamCount == 0 { finishDrain() }
    }

    /// Stops accepting, closes idle connections, lets in-flight exchanges finish with
    /// `Connection: close`; calls `onDrained` when none is left.
    func beginDrain() {
        guard !draining else { return }
        draining = true
        for l in listeners { l.close() }
        listeners.removeAll()
        for c in Array(downstreams.values) { c.drain() }
        for pool in idle { for c in pool { c.close() } }
        idle.removeAll()
        for pool in h2 { for c in pool where c.load == 0 { c.close() } }
        if downstreamCount == 0 { finishDrain() }
    }

    private func finishDrain() {
        let done = onDrained
        onDrained = nil
        done?()
    }
}
