/// Istio ServiceEntry: where a host's endpoints are and how its ports speak.
public struct ServiceEntry: Sendable, Hashable {
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: ServiceEntrySpec
}

public struct ServiceEntrySpec: Sendable, Hashable {
    public var hosts: [String]
    public var addresses: [String]
    public var ports: [ServicePort]
    /// MESH_EXTERNAL or MESH_INTERNAL
    public var location: String?
    /// NONE (default), STATIC, DNS, DNS_ROUND_ROBIN
    public var resolution: String
    public var endpoints: [WorkloadEntry]
    public var workloadSelector: WorkloadSelector?
    public var exportTo: [String]
    public var subjectAltNames: [String]

    static func decode(_ r: ObjectReader) -> ServiceEntrySpec {
        let hosts = r.stringList("hosts", required: true) ?? []
        if r.has("hosts") && hosts.isEmpty { r.ctx.error(r.p("hosts"), "at least one host is required") }
        let ports = r.objectList("ports", ServicePort.decode) ?? []
        var numbers = Set<Int>()
        for (i, p) in ports.enumerated() where p.number != 0 && !numbers.insert(p.number).inserted {
            r.ctx.error("\(r.p("ports"))[\(i)].number", "duplicate port \(p.number)")
        }
        let resolution = r.enumValue("resolution", ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]) ?? "NONE"
        let endpoints = r.objectList("endpoints", WorkloadEntry.decode) ?? []
        let ws = r.object("workloadSelector") { w in WorkloadSelector(labels: w.stringMap("labels") ?? [:]) }
        if resolution == "STATIC" && endpoints.isEmpty && ws == nil {
            r.ctx.error(r.p("endpoints"), "resolution STATIC requires endpoints")
        }
        if !endpoints.isEmpty && ws != nil {
            r.ctx.error(r.p("workloadSelector"), "workloadSelector and endpoints cannot both be set")
        }
        // Endpoint port names must name a port of the entry (Istio's validation).
        for (i, e) in endpoints.enumerated() {
            for name in e.ports.keys.sorted() where !ports.contains(where: { $0.name == name }) {
                r.ctx.error("\(r.p("endpoints"))[\(i)].ports.\(name)", "no port named \"\(name)\" in spec.ports")
            }
        }
        return ServiceEntrySpec(hosts: hosts, addresses: r.stringList("addresses") ?? [], ports: ports,
                                location: r.enumValue("location", ["MESH_EXTERNAL", "MESH_INTERNAL"]), resolution: resolution,
                                endpoints: endpoints, workloadSelector: ws, exportTo: r.stringList("exportTo") ?? [],
                                subjectAltNames: r.stringList("subjectAltNames") ?? [])
    }
}

public struct ServicePort: Sendable, Hashable {
    public var number: Int
    /// Upper-cased: HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MYSQL, MONGO, REDIS, …
    public var `protocol`: String?
    public var name: String?
    public var targetPort: Int?

    static func decode(_ r: ObjectReader) -> ServicePort {
        ServicePort(number: r.port("number", required: true) ?? 0, protocol: r.string("protocol")?.uppercased(),
                    name: r.string("name"), targetPort: r.port("targetPort"))
    }
}

/// An endpoint of a ServiceEntry (Istio's WorkloadEntry).
public struct WorkloadEntry: Sendable, Hashable {
    public var address: String?
    /// Port name → port number on this endpoint.
    public var ports: [String: Int]
    public var labels: [String: String]
    public var network: String?
    public var locality: String?
    public var weight: Int?
    public var serviceAccount: String?

    static func decode(_ r: ObjectReader) -> WorkloadEntry {
        WorkloadEntry(address: r.nonEmptyString("address"), ports: r.intMap("ports", min: 1, max: 65535) ?? [:],
                      labels: r.stringMap("labels") ?? [:], network: r.string("network"), locality: r.string("locality"),
                      weight: r.int("weight", min: 0, max: Int(UInt32.max)), serviceAccount: r.string("serviceAccount"))
    }
}
