/// The five kinds Remora understands.
public enum ResourceKind: String, Sendable, Hashable, CaseIterable {
    case gateway = "Gateway"
    case virtualService = "VirtualService"
    case destinationRule = "DestinationRule"
    case serviceEntry = "ServiceEntry"
    case proxy = "Proxy"

    /// The admin API's collection name (`/config/virtualservices`).
    public var plural: String {
        switch self {
        case .gateway: return "gateways"
        case .virtualService: return "virtualservices"
        case .destinationRule: return "destinationrules"
        case .serviceEntry: return "serviceentries"
        case .proxy: return "proxies"
        }
    }

    /// Accepts the kind, its plural or singular lowercase form ("virtualservices", "virtualservice", "VirtualService").
    public init?(name: String) {
        let n = name.lowercased()
        guard let k = ResourceKind.allCases.first(where: { $0.rawValue.lowercased() == n || $0.plural == n }) else { return nil }
        self = k
    }

    public var apiVersions: [String] {
        self == .proxy ? ["remora.dev/v1alpha1"] : ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    }
}

/// Identity of a resource: kind, namespace, name (duplicates are rejected).
public struct ResourceKey: Sendable, Hashable, CustomStringConvertible, Comparable {
    public var kind: ResourceKind
    public var namespace: String
    public var name: String

    public init(kind: ResourceKind, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// "VirtualService default/adservice"
    public var description: String { "\(kind.rawValue) \(namespace)/\(name)" }

    public static func < (a: ResourceKey, b: ResourceKey) -> Bool {
        (a.kind.rawValue, a.namespace, a.name) < (b.kind.rawValue, b.namespace, b.name)
    }
}

/// One decoded, validated resource with where it came from and the document as written.
public struct Resource: Sendable {
    public enum Body: Sendable, Hashable {
        case gateway(Gateway)
        case virtualService(VirtualService)
        case destinationRule(DestinationRule)
        case serviceEntry(ServiceEntry)
        case proxy(ProxyResource)
    }

    public var body: Body
    /// The file (or "admin API" etc.) it was read from.
    public var source: String?
    /// The document as given, `status` removed.
    public var raw: ConfigValue

    public init(body: Body, source: String?, raw: ConfigValue) {
        self.body = body
        self.source = source
        self.raw = raw
    }

    public var metadata: ObjectMeta {
        switch body {
        case .gateway(let x): return x.metadata
        case .virtualService(let x): return x.metadata
        case .destinationRule(let x): return x.metadata
        case .serviceEntry(let x): return x.metadata
        case .proxy(let x): return x.metadata
        }
    }

    public var kind: ResourceKind {
        switch body {
        case .gateway: return .gateway
        case .virtualService: return .virtualService
        case .destinationRule: return .destinationRule
        case .serviceEntry: return .serviceEntry
        case .proxy: return .proxy
        }
    }

    public var key: ResourceKey { ResourceKey(kind: kind, namespace: metadata.namespace, name: metadata.name) }
    public var name: String { metadata.name }
    public var namespace: String { metadata.namespace }

    public var gateway: Gateway? { if case .gateway(let x) = body { return x }; return nil }
    public var virtualService: VirtualService? { if case .virtualService(let x) = body { return x }; return nil }
    public var destinationRule: DestinationRule? { if case .destinationRule(let x) = body { return x }; return nil }
    public var serviceEntry: ServiceEntry? { if case .serviceEntry(let x) = body { return x }; return nil }
    public var proxyResource: ProxyResource? { if case .proxy(let x) = body { return x }; return nil }
}
