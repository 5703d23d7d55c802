import RemoraConfig

public struct Endpoint: Sendable, Hashable {
    public var address: String
    public var port: Int
    public var labels: [String: String]
    /// ServiceEntry endpoint weight (nil: equal share).
    public var weight: Int?
    public var locality: String?

    public init(address: String, port: Int, labels: [String: String] = [:], weight: Int? = nil, locality: String? = nil) {
        self.address = address
        self.port = port
        self.labels = labels
        self.weight = weight
        self.locality = locality
    }
}

public enum ClusterResolution: Sendable, Hashable {
    case staticEndpoints([Endpoint])
    case dns(host: String, port: Int)
}

public struct ClusterSpec: Sendable, Hashable {
    /// Envoy/Istio style: "outbound|PORT|SUBSET|HOST".
    public var name: String
    public var host: String
    public var port: Int
    public var subset: String?
    public var resolution: ClusterResolution
    /// DestinationRule connectionPool.tcp.connectTimeout, default 10_000.
    public var connectTimeoutMs: Int
    /// The DestinationRule policy in force for this host, port and subset (`TrafficPolicy.merged`:
    /// Istio's port-level, then subset, order), for load balancing, circuit breaking, outlier
    /// detection, TLS and the retry budget. Its `portLevelSettings` are resolved (empty).
    public var trafficPolicy: TrafficPolicy?
    /// The ServiceEntry port's protocol (HTTP, GRPC, TCP, …) when a ServiceEntry defines the host.
    public var serviceProtocol: String?
    /// ServiceEntry `resolution: NONE`: send to the connection's original destination
    /// (`resolution` then holds the DNS fallback for traffic that was not redirected).
    public var originalDestination: Bool
    public var serviceEntry: ResourceKey?
    public var destinationRule: ResourceKey?
    /// Neither the destination nor a ServiceEntry named a port, so 80 was assumed: SPEC §2 lets the
    /// proxy use the port of the listener's original destination instead.
    public var portIsDefault: Bool = false

    public init(name: String, host: String, port: Int, subset: String?, resolution: ClusterResolution, connectTimeoutMs: Int = 10_000,
                trafficPolicy: TrafficPolicy? = nil, serviceProtocol: String? = nil, originalDestination: Bool = false,
                serviceEntry: ResourceKey? = nil, destinationRule: ResourceKey? = nil) {
        self.name = name
        self.host = host
        self.port = port
        self.subset = subset
        self.resolution = resolution
        self.connectTimeoutMs = connectTimeoutMs
        self.trafficPolicy = trafficPolicy
        self.serviceProtocol = serviceProtocol
        self.originalDestination = originalDestination
        self.serviceEntry = serviceEntry
        self.destinationRule = destinationRule
    }
}

/// Builds one cluster per distinct (host, port, subset) that routes reference.
final class ClusterBuilder {
    private(set) var clusters: [ClusterSpec] = []
    private var index: [String: Int] = [:]
    private let config: ConfigSet
    private let entries: [Resource]
    private let rules: [Resource]
    var errors: [ConfigError] = []

    /// Exact hosts by qualified name → the first (load order) resource index declaring them;
    /// wildcard hosts are few and scanned. Keeps compiling 1 000 services linear, not quadratic.
    private var entryIndex: [String: Int] = [:]
    private var entryWildcards: [(host: String, index: Int)] = []
    private var ruleIndex: [String: Int] = [:]
    private var ruleWildcards: [(host: String, index: Int)] = []

    init(config: ConfigSet) {
        self.config = config
        entries = config.resources.filter { $0.kind == .serviceEntry }
        rules = config.resources.filter { $0.kind == .destinationRule }
        for (i, r) in entries.enumerated() {
            guard let se = r.serviceEntry else { continue }
            for h in se.spec.hosts {
                if HostNames.normalize(h).hasPrefix("*") { entryWildcards.append((h, i)); continue }
                for q in HostNames.qualifiedNames(h, namespace: r.namespace) where entryIndex[q] == nil { entryIndex[q] = i }
            }
        }
        for (i, r) in rules.enumerated() {
            guard let dr = r.destinationRule else { continue }
            let h = dr.spec.host
            if HostNames.normalize(h).hasPrefix("*") { ruleWildcards.append((h, i)); continue }
            for q in HostNames.qualifiedNames(h, namespace: r.namespace) where ruleIndex[q] == nil { ruleIndex[q] = i }
        }
    }

    /// The first resource (load order) with an exact host naming the same service as `host`,
    /// else the first wildcard that matches it.
    private func lookup(_ host: String, namespace: String, exact: [String: Int], wildcards: [(host: String, index: Int)],
                        in list: [Resource]) -> Int? {
        if !HostNames.normalize(host).hasPrefix("*") {
            let hit = HostNames.qualifiedNames(host, namespace: namespace).compactMap { exact[$0] }.min()
            if let hit { return hit }
        }
        return wildcards.first { HostNames.sameService($0.host, namespace: list[$0.index].namespace, host, namespace: namespace) }?.index
    }

    /// The cluster index for a destination written in `namespace`; nil (with an error) when the
    /// destination cannot be resolved to one port.
    func cluster(for d: Destination, namespace: String, resource: Resource, path: String) -> Int? {
        let host = HostNames.normalize(d.host)
        let se = serviceEntry(for: d.host, namespace: namespace)
        var port = d.port?.number
        var sePort: ServicePort?
        if let (seRes, spec) = se {
            if let p = port {
                sePort = spec.ports.first { $0.number == p }
                if sePort == nil && !spec.ports.isEmpty {
                    fail(resource, joinPath2(path, "port.number"), "port \(p) is not a port of \(seRes.key) (ports: \(spec.ports.map { String($0.number) }.joined(separator: ", ")))")
                    return nil
                }
            } else if spec.ports.count == 1 {
                sePort = spec.ports[0]
                port = sePort!.number
            } else if spec.ports.count > 1 {
                fail(resource, joinPath2(path, "port"), "\(seRes.key) has several ports: destination.port.number is required")
                return nil
            }
        }
        let number = port ?? 80
        let seHost = se.map { chooseHost($0.1.hosts, for: d.host, seNs: $0.0.namespace, ns: namespace) }
        let nameHost = seHost ?? host
        let key = "outbound|\(number)|\(d.subset ?? "")|\(nameHost)"
        if let i = index[key] { return i }

        let dr = destinationRule(for: d.host, namespace: namespace)
        let subset = d.subset.flatMap { name in dr?.1.spec.subsets.first { $0.name == name } }
        let subsetLabels = subset?.labels ?? [:]
        let policy = TrafficPolicy.merged(destination: dr?.1.spec.trafficPolicy, subset: subset?.trafficPolicy, port: number)
        let connectTimeoutMs = policy?.connectionPool?.tcp?.connectTimeout?.milliseconds ?? 10_000

        var resolution: ClusterResolution = .dns(host: d.host, port: number)
        var originalDst = false
        if let (_, spec) = se {
            let targetPort = sePort?.targetPort ?? number
            func endpointPort(_ e: WorkloadEntry) -> Int {
                if let name = sePort?.name, let p = e.ports[name] { return p }
                return targetPort
            }
            let eps = spec.endpoints.filter { e in subsetLabels.allSatisfy { e.labels[$0.key] == $0.value } }
            let listed = ClusterResolution.staticEndpoints(eps.compactMap { e in
                e.address.map { Endpoint(address: $0, port: endpointPort(e), labels: e.labels, weight: e.weight, locality: e.locality) }
            })
            switch spec.resolution {
            case "STATIC":
                resolution = listed
            case "DNS", "DNS_ROUND_ROBIN":
                // The endpoints' addresses are the names to resolve (every address of each
                // becomes an endpoint; labels and weights stay with their entry); without
                // endpoints, the host itself. One name keeps the DNS form (shown in /clusters).
                if spec.endpoints.isEmpty {
                    resolution = .dns(host: d.host, port: targetPort)
                } else if eps.count == 1, let a = eps[0].address {
                    resolution = .dns(host: a, port: endpointPort(eps[0]))
                } else {
                    resolution = listed
                }
            default:  // NONE
                originalDst = true
                resolution = .dns(host: d.host, port: targetPort)
            }
        }
        let spec = ClusterSpec(name: key, host: nameHost, port: number, subset: d.subset, resolution: resolution,
                               connectTimeoutMs: connectTimeoutMs, trafficPolicy: policy, serviceProtocol: sePort?.protocol,
                               originalDestination: originalDst, serviceEntry: se?.0.key, destinationRule: dr?.0.key)
        var final = spec
        final.portIsDefault = port == nil
        clusters.append(final)
        index[key] = clusters.count - 1
        return clusters.count - 1
    }

    private func fail(_ r: Resource, _ path: String, _ message: String) {
        errors.append(ConfigError(kind: .invalid, file: r.source, resource: r.key.description, path: path, message: message))
    }

    /// The ServiceEntry whose hosts contain `host` (short and long Kubernetes names alike),
    /// preferring an exact name over a wildcard, then load order.
    private func serviceEntry(for host: String, namespace: String) -> (Resource, ServiceEntrySpec)? {
        guard let i = lookup(host, namespace: namespace, exact: entryIndex, wildcards: entryWildcards, in: entries),
              let se = entries[i].serviceEntry else { return nil }
        return (entries[i], se.spec)
    }

    private func chooseHost(_ hosts: [String], for host: String, seNs: String, ns: String) -> String {
        let exact = hosts.first { !$0.hasPrefix("*") && HostNames.sameService($0, namespace: seNs, host, namespace: ns) }
        return HostNames.normalize(exact ?? host)
    }

    private func destinationRule(for host: String, namespace: String) -> (Resource, DestinationRule)? {
        guard let i = lookup(host, namespace: namespace, exact: ruleIndex, wildcards: ruleWildcards, in: rules),
              let dr = rules[i].destinationRule else { return nil }
        return (rules[i], dr)
    }
}
func joinPath2(_ base: String, _ key: String) -> String { base.isEmpty ? key : base + "." + key }

/// Which protocol the proxy speaks to a cluster's endpoints.
public enum UpstreamProtocol: Sendable, Hashable {
    case http1
    /// h2c, prior knowledge.
    case http2
    /// Whatever the client spoke (DestinationRule `useClientProtocol`).
    case client
}

extension ClusterSpec {
    /// Istio's rules: a ServiceEntry port declared HTTP2 or GRPC is spoken to in HTTP/2; a
    /// DestinationRule may upgrade HTTP/1.1 (`h2UpgradePolicy: UPGRADE`) or follow the client.
    public var upstreamProtocol: UpstreamProtocol {
        let http = trafficPolicy?.connectionPool?.http
        if http?.useClientProtocol == true { return .client }
        switch serviceProtocol {
        case "HTTP2", "GRPC": return .http2
        default: return http?.h2UpgradePolicy == "UPGRADE" ? .http2 : .http1
        }
    }

    /// DestinationRule `connectionPool.http.maxConcurrentStreams` (0 or absent: the peer's limit).
    public var maxStreamsPerConnection: Int? {
        guard let n = trafficPolicy?.connectionPool?.http?.maxConcurrentStreams, n > 0 else { return nil }
        return n
    }
}
