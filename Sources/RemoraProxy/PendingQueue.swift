import RemoraResilience

/// Pending requests (Envoy's `http1MaxPendingRequests`): an HTTP/1.1 request that finds its
/// cluster at `tcp.maxConnections` waits for a connection slot instead of failing, as long
/// as the cluster's pending count allows. It waits as a queued `UpstreamConnection` in its
/// worker's `pendingQueue`; the exchange already talks to it as to any connection.
///
/// Slots are counted per cluster across every worker (the circuit breaker's atomics), so a
/// slot freed on one worker may serve a request waiting on another: whenever a connection
/// closes while requests are pending, every worker is asked to look at its queue. An idle
/// keep-alive connection would hold its slot forever, so while requests are pending:
/// - a connection whose exchange ends closes instead of going back to the pool;
/// - queuing a request asks every worker to close one idle connection of that cluster.
/// A pending request leaves the queue when it gets its slot, or when its exchange gives up
/// (route timeout, client gone), which releases its pending count.
extension ProxyWorker {
    func enqueue(_ f: Forwarding, breaker: CircuitBreaker, lifetime: ConnectionLifetime) -> UpstreamConnection {
        let c = UpstreamConnection.queued(worker: self, endpoint: f.endpoint, connectTimeoutMs: f.cluster.spec.connectTimeoutMs,
                                          tls: f.tls, breaker: breaker, lifetime: lifetime)
        pendingQueue.append(c)
        if !closeOneIdle(of: breaker) {
            for w in peers where w !== self { w.loop.post { w.closeOneIdle(of: breaker) } }
        }
        return c
    }

    /// A queued connection closed before it got a slot.
    func dequeue(_ c: UpstreamConnection) {
        if let i = pendingQueue.firstIndex(where: { $0 === c }) { pendingQueue.remove(at: i) }
    }

    /// A connection counted by `breaker` closed: give its slot back, and wake the pending
    /// requests if there are any (on every worker, this one after the current event).
    func connectionSlotFreed(_ breaker: CircuitBreaker?) {
        guard let b = breaker else { return }
        b.release(.connections)
        guard b.count(.pendingRequests) > 0 else { return }
        for w in peers { w.loop.post { w.servePending() } }
    }

    /// Connects the oldest queued requests whose cluster has a free connection slot.
    func servePending() {
        while let i = pendingQueue.firstIndex(where: { $0.breaker?.tryAcquire(.connections, countingOverflow: false) ?? true }) {
            let c = pendingQueue.remove(at: i)
            c.leaveQueue()   // may fail and retry, which may queue again (at the end)
        }
    }
}
