/// Kubernetes object metadata. Only name, namespace, labels and annotations are kept; the
/// server-set fields (uid, resourceVersion, managedFields, …) are accepted and dropped so a
/// resource copied from `kubectl get -o yaml` loads as it is.
public struct ObjectMeta: Sendable, Hashable {
    public var name: String
    public var namespace: String
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(name: String, namespace: String = "default", labels: [String: String] = [:], annotations: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }

    static func decode(_ r: ObjectReader) -> ObjectMeta {
        let name = r.nonEmptyString("name", required: true) ?? ""
        if name.contains("/") || name.contains(where: \.isWhitespace) {
            r.ctx.error(r.p("name"), "invalid name \"\(name)\"")
        }
        let ns = r.nonEmptyString("namespace") ?? "default"
        if ns.contains("/") || ns.contains(where: \.isWhitespace) {
            r.ctx.error(r.p("namespace"), "invalid namespace \"\(ns)\"")
        }
        let labels = r.stringMap("labels") ?? [:]
        let annotations = r.stringMap("annotations") ?? [:]
        r.ignore("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                 "generateName", "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences",
                 "finalizers", "clusterName")
        return ObjectMeta(name: name, namespace: ns, labels: labels, annotations: annotations)
    }
}

/// Istio's StringMatch: one of exact, prefix, regex (RE2, whole value). `{}` (none of them)
/// is a presence test where Istio allows it (headers, query parameters, cookies).
public enum StringMatch: Sendable, Hashable {
    case exact(String)
    case prefix(String)
    case regex(String)
    case present

    static func decode(_ r: ObjectReader) -> StringMatch {
        let exact = r.string("exact")
        let prefix = r.string("prefix")
        let regex = r.string("regex")
        let set = [exact != nil, prefix != nil, regex != nil].filter { $0 }.count
        if set > 1 {
            r.ctx.error(r.path, "only one of exact, prefix, regex may be set")
        }
        if let regex {
            if case .failure(let e) = RE2Regex.compile(regex) {
                r.ctx.error(r.p("regex"), "invalid RE2 regular expression \"\(regex)\": \(e.message)")
            }
            return .regex(regex)
        }
        if let exact { return .exact(exact) }
        if let prefix { return .prefix(prefix) }
        return .present
    }
}

/// Istio's Percent: a double in [0, 100].
public struct Percent: Sendable, Hashable {
    public var value: Double
    public init(_ value: Double) { self.value = value }

    static func decode(_ r: ObjectReader) -> Percent {
        Percent(r.double("value", min: 0, max: 100) ?? 0)
    }
}

/// Istio's PortSelector.
public struct PortSelector: Sendable, Hashable {
    public var number: Int?

    static func decode(_ r: ObjectReader) -> PortSelector {
        PortSelector(number: r.port("number"))
    }
}

/// Istio's Destination: a service host, optional subset (from a DestinationRule) and port.
public struct Destination: Sendable, Hashable {
    public var host: String
    public var subset: String?
    public var port: PortSelector?

    public init(host: String, subset: String? = nil, port: Int? = nil) {
        self.host = host
        self.subset = subset
        self.port = port.map { PortSelector(number: $0) }
    }

    static func decode(_ r: ObjectReader) -> Destination {
        let host = r.nonEmptyString("host", required: true) ?? ""
        let subset = r.nonEmptyString("subset")
        let port = r.object("port", PortSelector.decode)
        return Destination(host: host, subset: subset, port: port?.number)
    }
}

/// Header manipulation (Istio's Headers.HeaderOperations).
public struct HeaderOperations: Sendable, Hashable {
    public var set: [String: String]
    public var add: [String: String]
    public var remove: [String]

    static func decode(_ r: ObjectReader) -> HeaderOperations {
        HeaderOperations(set: r.stringMap("set") ?? [:], add: r.stringMap("add") ?? [:], remove: r.stringList("remove") ?? [])
    }
}

/// Istio's `Headers` (request/response operations), named to stay clear of HTTP header types.
public struct HeadersPolicy: Sendable, Hashable {
    public var request: HeaderOperations?
    public var response: HeaderOperations?

    static func decode(_ r: ObjectReader) -> HeadersPolicy {
        HeadersPolicy(request: r.object("request", HeaderOperations.decode), response: r.object("response", HeaderOperations.decode))
    }
}

/// `workloadSelector` of DestinationRule (matchLabels) and ServiceEntry (labels).
public struct WorkloadSelector: Sendable, Hashable {
    public var labels: [String: String]
}
