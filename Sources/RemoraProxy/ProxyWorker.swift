import RemoraCore
import RemoraIO
import RemoraPolicy

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
    private var roundRobin: [Int]

    var listeners: [ListenerRuntime] = []
    /// Idle keep-alive upstream connections by endpoint pool id.
    private var idle: [[UpstreamConnection]] = []
    static let maxIdlePerEndpoint = 256

    /// Live downstream connections, for the connection limit and for draining.
    private(set) var downstreamCount = 0
    private var downstreams: [ObjectIdentifier: DownstreamConnection] = [:]
    private(set) var draining = false
    var onDrained: (() -> Void)?

    init(index: Int, loop: EventLoop, state: ProxyState) {
        self.index = index
        self.loop = loop
        self.state = state
        limits = state.snapshot.settings.limits
        roundRobin = Array(repeating: 0, count: state.clusters.count)
        random = FastRandom(seed: MonotonicClock.nowNanoseconds() &* UInt64(index + 1) | 1)
    }

    /// Installs a new configuration for requests that start from now on.
    func install(_ newState: ProxyState) {
        state = newState
        limits = newState.snapshot.settings.limits
        roundRobin = Array(repeating: 0, count: newState.clusters.count)
    }

    // MARK: endpoints and pools

    /// Round robin over the cluster's endpoints.
    func pickEndpoint(cluster: Int, in st: ProxyState) -> EndpointRef? {
        let eps = st.clusters[cluster].endpoints
        guard !eps.isEmpty else { return nil }
        if st !== state { return eps[Int(random.next32()) % eps.count] }
        let i = roundRobin[cluster] % eps.count
        roundRobin[cluster] = i &+ 1
        return eps[i]
    }

    /// An idle connection to `endpoint`, or a new one (connect in progress). nil when the
    /// connect failed at once.
    func acquireUpstream(_ endpoint: EndpointRef, connectTimeoutMs: Int) -> (UpstreamConnection, reused: Bool)? {
        if endpoint.poolID < idle.count {
            while let c = idle[endpoint.poolID].popLast() {
                if c.takeFromPool() { return (c, true) }
            }
        }
        guard let c = UpstreamConnection.connect(worker: self, endpoint: endpoint, connectTimeoutMs: connectTimeoutMs) else {
            return nil
        }
        return (c, false)
    }

    /// A connection whose exchange ended cleanly goes back to its pool.
    func release(_ c: UpstreamConnection) {
        let id = c.endpoint.poolID
        if id >= idle.count { idle.append(contentsOf: repeatElement([], count: id + 1 - idle.count)) }
        guard !draining, idle[id].count < ProxyWorker.maxIdlePerEndpoint else { c.close(); return }
        idle[id].append(c)
        c.enterPool()
    }

    /// An idle connection closed by its peer leaves the pool.
    func forget(_ c: UpstreamConnection) {
        let id = c.endpoint.poolID
        guard id < idle.count, let i = idle[id].firstIndex(where: { $0 === c }) else { return }
        idle[id].remove(at: i)
    }

    // MARK: downstream bookkeeping

    func accepted(_ c: DownstreamConnection) {
        downstreams[ObjectIdentifier(c)] = c
        downstreamCount += 1
    }

    func closed(_ c: DownstreamConnection) {
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
        if downstreamCount == 0 { finishDrain() }
    }

    private func finishDrain() {
        let done = onDrained
        onDrained = nil
        done?()
    }
}
