import RemoraConfig
import RemoraCore
import RemoraIO
import RemoraPolicy
import RemoraTLS
import RemoraTelemetry
import RemoraResilience

/// One upstream endpoint as the workers use it: its address and a process-wide stable id
/// that indexes each worker's connection pools (so pools outlive configuration changes
/// that keep the endpoint).
public struct EndpointRef: Sendable {
    public let address: SocketAddress
    public let poolID: Int
}

/// A cluster with its endpoints resolved (names are resolved by `DNSRefresh` on the resolver
/// thread and taken from its answers when the state is built; the request path never
/// resolves names).
/// A class, not a struct: exchanges keep a reference to theirs, and the ClusterSpec inside
/// (traffic policy and all) is kilobytes that must not be copied into every connection.
public final class ClusterTarget: Sendable {
    public let spec: ClusterSpec
    public let endpoints: [EndpointRef]
    /// DestinationRule `tls` SIMPLE/MUTUAL: the contexts to originate TLS with.
    let tls: UpstreamTLS?
    /// Metric label ids (NameTable) of the cluster and its destination service.
    let stats: StatsIDs
    /// Circuit breaker, outlier detection and load-balancing state, shared by every worker
    /// (host i is endpoints[i]); kept across reloads by cluster name. nil for passthrough.
    let resilience: ClusterResilience?
    /// Upstream connection idle timeout, maximum duration and requests (worked out once).
    let lifetime: ConnectionLifetime

    init(spec: ClusterSpec, endpoints: [EndpointRef], tls: UpstreamTLS?, stats: StatsIDs, resilience: ClusterResilience?) {
        self.spec = spec
        lifetime = spec.connectionLifetime
        self.endpoints = endpoints
        self.tls = tls
        self.stats = stats
        self.resilience = resilience
    }
}

struct StatsIDs: Sendable {
    let cluster: Int32
    let service: Int32
    let serviceName: Int32
    let namespace: Int32

    /// Istio's labels: the service host, its first label, and the namespace of a
    /// Kubernetes name ("adservice.shop.svc.cluster.local" → "shop"), else "unknown".
    init(_ spec: ClusterSpec, names: NameTable) {
        cluster = names.id(spec.name)
        service = names.id(spec.host)
        let labels = spec.host.split(separator: ".")
        serviceName = names.id(labels.first.map(String.init) ?? spec.host)
        namespace = labels.count >= 3 && labels[2] == "svc" ? names.id(String(labels[1])) : -1
    }
}

/// Everything a worker needs for new requests, immutable: the compiled snapshot and
/// its resolved clusters. A request keeps the state it started with.
public final class ProxyState: Sendable {
    public let snapshot: Snapshot
    public let clusters: [ClusterTarget]
    public let version: Int
    /// Ports a ServiceEntry declares with a non-HTTP protocol (TCP, MYSQL, REDIS, MONGO, TLS,
    /// HTTPS, …): intercepted connections to them are proxied as plain TCP, unsniffed.
    let tcpPorts: Set<Int>

    init(snapshot: Snapshot, clusters: [ClusterTarget], version: Int) {
        self.snapshot = snapshot
        self.clusters = clusters
        self.version = version
        var tcp = Set<Int>()
        for se in snapshot.config.serviceEntries {
            for p in se.spec.ports where !ProxyState.httpProtocols.contains(p.protocol ?? "HTTP") {
                tcp.insert(p.number)
            }
        }
        tcpPorts = tcp
    }

    /// ServiceEntry port protocols carried as HTTP; every other one is proxied as plain TCP.
    static let httpProtocols: Set<String> = ["HTTP", "HTTP2", "GRPC", "GRPC-WEB"]

    /// Whether every cluster resolved to the same addresses (a DNS refresh changed nothing).
    func sameEndpoints(as other: ProxyState) -> Bool {
        guard clusters.count == other.clusters.count else { return false }
        return zip(clusters, other.clusters).allSatisfy { a, b in
            a.endpoints.map(\.poolID) == b.endpoints.map(\.poolID)
        }
    }

    /// Builds every cluster of `snapshot` with the addresses DNS has given so far (`lookup`:
    /// a name's last good answer, empty when there is none). IP literals are used as they
    /// are; nothing here blocks.
    public static func build(_ snapshot: Snapshot, version: Int, registry: EndpointRegistry,
                             lookup: (String) -> [String]) -> ProxyState {
        let clusters = snapshot.clusters.map { spec -> ClusterTarget in
            var addresses: [SocketAddress] = []
            switch spec.resolution {
            case .staticEndpoints(let eps):
                for ep in eps { addresses.append(contentsOf: endpointAddresses(ep.address, port: ep.port, lookup)) }
            case .dns(let host, let port):
                addresses = endpointAddresses(host, port: port, lookup)
            }
            let endpoints = addresses.map { EndpointRef(address: $0, poolID: registry.id(for: $0)) }
            return ClusterTarget(spec: spec, endpoints: endpoints,
                                 tls: registry.upstreamTLS(spec, credentialsDir: snapshot.settings.credentialsDir),
                                 stats: StatsIDs(spec, names: registry.names),
                                 resilience: registry.resilience(spec, endpoints: endpoints))
        }
        return ProxyState(snapshot: snapshot, clusters: clusters, version: version)
    }

    private static func endpointAddresses(_ host: String, port: Int, _ lookup: (String) -> [String]) -> [SocketAddress] {
        if let literal = SocketAddress(host: host, port: port) { return [literal] }
        return lookup(host).compactMap { SocketAddress(host: $0, port: port) }
    }

    /// The names `snapshot`'s clusters need DNS for: DNS clusters' hosts and STATIC endpoints
    /// written as names. IP literals, wildcards and unix sockets are not names.
    public static func dnsNames(_ snapshot: Snapshot) -> Set<String> {
        var names = Set<String>()
        func add(_ host: String) {
            guard !host.isEmpty, SocketAddress(host: host, port: 0) == nil,
                  !host.contains(where: { $0 == "*" || $0 == "/" || $0 == " " }) else { return }
            names.insert(host)
        }
        for spec in snapshot.clusters {
            switch spec.resolution {
            case .staticEndpoints(let eps): for ep in eps { add(ep.address) }
            case .dns(let host, _): add(host)
            }
        }
        return names
    }
}

/// Gives each distinct endpoint address a small integer for the lifetime of the process.
public final class EndpointRegistry: @unchecked Sendable {
    private var ids: [SocketAddress: Int] = [:]
    /// Metric label values, for the process's lifetime.
    public let names = NameTable()
    /// Upstream TLS contexts by settings, kept across rebuilds so TLS sessions resume.
    private var tls: [TLSKey: UpstreamTLS] = [:]
    private let lock = Lock()
    public init() {}

    private struct TLSKey: Hashable {
        let settings: ClientTLSSettings
        let host: String
        let credentialsDir: String
    }

    private var resilienceByCluster: [String: ClusterResilience] = [:]

    /// A cluster's shared resilience state: the one it had (same settings and endpoints), or
    /// carried over into new settings/endpoints, or new.
    func resilience(_ spec: ClusterSpec, endpoints: [EndpointRef]) -> ClusterResilience {
        let descriptors = endpoints.map { EndpointDescriptor(key: $0.address.description) }
        let settings = ResilienceSettings(spec.trafficPolicy)
        return lock.withLock {
            let r: ClusterResilience
            if let old = resilienceByCluster[spec.name] {
                if old.settings == settings && old.hosts.hosts.map(\.key) == descriptors.map(\.key) { return old }
                r = old.updated(settings: settings, endpoints: descriptors)
            } else {
                r = ClusterResilience(name: spec.name, settings: settings, endpoints: descriptors)
            }
            resilienceByCluster[spec.name] = r
            return r
        }
    }

    /// Every cluster's resilience state now known (outlier ticks, metrics).
    func allResilience() -> [ClusterResilience] { lock.withLock { Array(resilienceByCluster.values) } }

    /// The TLS contexts for a cluster, built once per distinct settings (files are read
    /// then; a reload with the same settings keeps them).
    func upstreamTLS(_ spec: ClusterSpec, credentialsDir: String) -> UpstreamTLS? {
        guard let settings = spec.trafficPolicy?.tls else { return nil }
        let key = TLSKey(settings: settings, host: spec.host, credentialsDir: credentialsDir)
        if let t = lock.withLock({ tls[key] }) { return t }
        guard let built = TLSSettings.clientContexts(spec, credentialsDir: credentialsDir) else { return nil }
        lock.withLock { tls[key] = built }
        return built
    }

    public func id(for a: SocketAddress) -> Int {
        lock.withLock {
            if let i = ids[a] { return i }
            let i = ids.count
            ids[a] = i
            return i
        }
    }
}
