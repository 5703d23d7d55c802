import RemoraCore
import RemoraIO
import RemoraPolicy
import RemoraTLS

/// One listening socket on one worker (each worker has its own, SO_REUSEPORT).
final class ListenerRuntime: EventHandler {
    unowned let worker: ProxyWorker
    let fd: Int32
    /// Replaced (on this worker's thread) when a reload changes the listener's servers but
    /// not its address: the socket and its connections stay.
    private(set) var spec: ListenerSpec
    /// Set when the listener's Gateway servers terminate TLS (shared by every worker).
    private(set) var tls: TLSServerContext?
    /// Hosts of plain servers with `tls.httpsRedirect`: their requests get a 301 to https.
    private(set) var httpsRedirectHosts: [String]
    private var registration = EventLoop.Registration.none
    private var closed = false

    init(worker: ProxyWorker, fd: Int32, spec: ListenerSpec, tls: TLSServerContext?) {
        self.worker = worker
        self.fd = fd
        self.spec = spec
        self.tls = tls
        httpsRedirectHosts = ListenerRuntime.redirectHosts(spec)
        // Level-triggered: a burst beyond one batch is picked up on the next iteration.
        registration = worker.loop.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    func handleEvent(_ events: UInt32) {
        for _ in 0..<64 {
            guard !closed, let (cfd, peer) = Socket.accept(fd) else { return }
            if worker.downstreamCount >= worker.limits.maxConnections {
                Socket.close(cfd)
                continue
            }
            accepted(cfd, peer: peer)
        }
    }

    /// A mesh listener's connection that iptables redirected has an original destination:
    /// non-HTTP ports become plain TCP proxies, others are sniffed; everything else is HTTP.
    private func accepted(_ cfd: Int32, peer: SocketAddress) {
        guard spec.kind != .gateway, let orig = Socket.originalDestination(cfd),
              let local = Socket.localAddress(cfd), orig != local else {
            _ = DownstreamConnection(worker: worker, fd: cfd, peer: peer, listener: self)
            return
        }
        // Inbound: the application listens on the original port, on loopback.
        let target = spec.kind == .meshInbound ? (SocketAddress(host: "127.0.0.1", port: orig.port) ?? orig) : orig
        if worker.state.tcpPorts.contains(orig.port) || Sniff.serverFirstPorts.contains(orig.port) {
            TCPProxyConnection(worker: worker, clientFD: cfd, initial: UnsafeRawBufferPointer(start: nil, count: 0), target: target,
                               timeouts: worker.tcpTimeouts(port: orig.port))
            return
        }
        let c = DownstreamConnection(worker: worker, fd: cfd, peer: peer, listener: self)
        c.passthrough = target
        c.startSniffing()
    }

    /// Index of this listener in the worker's current snapshot (listeners are matched by
    /// name, so a configuration change that keeps the listener keeps serving it).
    func listenerIndex(in st: ProxyState) -> Int? {
        st.snapshot.listeners.firstIndex { $0.name == spec.name }
    }

    func update(spec: ListenerSpec, tls: TLSServerContext?) {
        self.spec = spec
        self.tls = tls
        httpsRedirectHosts = ListenerRuntime.redirectHosts(spec)
    }

    private static func redirectHosts(_ spec: ListenerSpec) -> [String] {
        spec.servers.filter { $0.server.tls?.httpsRedirect == true && !$0.server.terminatesTLS }
            .flatMap { $0.server.hosts.map { TLSSettings.hostPart($0).lowercased() } }
    }

    /// The `https://` location for a request that must be redirected, else nil.
    func httpsRedirect<R: RouteRequest>(_ req: R) -> String? {
        guard !httpsRedirectHosts.isEmpty else { return nil }
        var host = req.authority.lowercased()
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
        let matches = httpsRedirectHosts.contains { h in
            h == "*" || h == host || (h.hasPrefix("*.") && host.hasSuffix(h.dropFirst()))
        }
        return matches ? "https://\(host)\(req.path)" : nil
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
    }
}
