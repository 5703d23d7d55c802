/// A decoded and validated configuration: the resources in load order.
public struct ConfigSet: Sendable {
    public private(set) var resources: [Resource]

    /// An empty configuration (every default applies).
    public init() { resources = [] }

    /// Validates the cross-resource rules over already decoded resources (e.g. after the admin
    /// API replaced one of them) and returns the set, or every error found.
    public static func validated(_ resources: [Resource]) throws(ConfigErrors) -> ConfigSet {
        let errors = Validation.crossResource(resources)
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return ConfigSet(validatedResources: resources)
    }

    init(validatedResources: [Resource]) { resources = validatedResources }

    /// The Proxy resource's spec (its name, namespace and labels included), if there is one.
    public var proxy: ProxySpec? {
        guard let p = proxyResource else { return nil }
        var spec = p.spec
        spec.name = p.metadata.name
        spec.namespace = p.metadata.namespace
        spec.labels = p.metadata.labels
        return spec
    }

    public var proxyResource: ProxyResource? { resources.lazy.compactMap(\.proxyResource).first }
    public var gateways: [Gateway] { resources.compactMap(\.gateway) }
    public var virtualServices: [VirtualService] { resources.compactMap(\.virtualService) }
    public var destinationRules: [DestinationRule] { resources.compactMap(\.destinationRule) }
    public var serviceEntries: [ServiceEntry] { resources.compactMap(\.serviceEntry) }

    public func resource(_ key: ResourceKey) -> Resource? { resources.first { $0.key == key } }
    public func resources(of kind: ResourceKind) -> [Resource] { resources.filter { $0.kind == kind } }

    /// The Gateway a VirtualService's `gateways` entry names: "name" (in the VirtualService's
    /// namespace), "namespace/name", or the older "name.namespace.svc.cluster.local" form.
    /// nil for "mesh" and for names no Gateway defines.
    public func gatewayKey(for ref: String, namespace: String) -> ResourceKey? {
        ConfigSet.gatewayKey(for: ref, namespace: namespace, existing: Set(resources(of: .gateway).map(\.key)))
    }

    /// As above, against a precomputed set of Gateway keys (for callers resolving many references).
    public static func gatewayKey(for ref: String, namespace: String, existing: Set<ResourceKey>) -> ResourceKey? {
        Validation.gatewayKey(for: ref, namespace: namespace, existing: existing)
    }
}
