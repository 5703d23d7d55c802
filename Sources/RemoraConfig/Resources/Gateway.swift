/// Istio Gateway: the listeners of a gateway proxy.
public struct Gateway: Sendable, Hashable {
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: GatewaySpec
}

public struct GatewaySpec: Sendable, Hashable {
    public var servers: [GatewayServer]
    /// Labels of the proxies this gateway applies to (matched against the Proxy's metadata.labels).
    public var selector: [String: String]

    static func decode(_ r: ObjectReader) -> GatewaySpec {
        let servers = r.objectList("servers", required: true, GatewayServer.decode) ?? []
        var names = Set<String>()
        for (i, s) in servers.enumerated() {
            if let n = s.name, !names.insert(n).inserted {
                r.ctx.error("\(r.p("servers"))[\(i)].name", "duplicate server name \"\(n)\"")
            }
        }
        return GatewaySpec(servers: servers, selector: r.stringMap("selector") ?? [:])
    }
}

/// Istio's Gateway `Server` (one `servers[]` entry).
public struct GatewayServer: Sendable, Hashable {
    public var port: GatewayPort
    public var bind: String?
    /// `host`, `ns/host`, `./host`, `*/host`; `*` wildcards.
    public var hosts: [String]
    public var tls: ServerTLSSettings?
    public var defaultEndpoint: String?
    public var name: String?

    /// The listener serves TLS itself: `tls` is set and is not only an HTTP→HTTPS redirect.
    public var terminatesTLS: Bool {
        guard let tls else { return false }
        return tls.mode != nil || tls.credentialName != nil || tls.serverCertificate != nil || port.protocol == "HTTPS" || port.protocol == "TLS"
    }

    static func decode(_ r: ObjectReader) -> GatewayServer {
        let port = r.object("port", required: true, GatewayPort.decode) ?? GatewayPort(number: 0, protocol: "HTTP", name: nil, targetPort: nil)
        let hosts = r.stringList("hosts", required: true) ?? []
        if r.has("hosts") && hosts.isEmpty { r.ctx.error(r.p("hosts"), "at least one host is required") }
        for (i, h) in hosts.enumerated() {
            let parts = h.split(separator: "/", omittingEmptySubsequences: false)
            if h.isEmpty || parts.count > 2 || parts.contains(where: \.isEmpty) {
                r.ctx.error("\(r.p("hosts"))[\(i)]", "invalid host \"\(h)\" (expected HOST or NAMESPACE/HOST)")
            }
        }
        let tls = r.object("tls", ServerTLSSettings.decode)
        let server = GatewayServer(port: port, bind: r.nonEmptyString("bind"), hosts: hosts, tls: tls,
                            defaultEndpoint: r.string("defaultEndpoint"), name: r.string("name"))
        if ["HTTPS", "TLS"].contains(port.protocol) && tls == nil && r.has("port") {
            r.ctx.error(r.p("tls"), "a server with protocol \(port.protocol) requires tls settings")
        }
        return server
    }
}

public struct GatewayPort: Sendable, Hashable {
    public var number: Int
    /// Upper-cased: HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS.
    public var `protocol`: String
    public var name: String?
    public var targetPort: Int?

    static let protocols = ["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"]

    static func decode(_ r: ObjectReader) -> GatewayPort {
        let number = r.port("number", required: true) ?? 0
        var proto = r.string("protocol", required: true) ?? "HTTP"
        // Istio parses protocols case-insensitively.
        proto = proto.uppercased()
        if r.has("protocol") && !protocols.contains(proto) {
            r.ctx.error(r.p("protocol"), "invalid protocol \"\(proto)\" (expected one of \(protocols.joined(separator: ", ")))")
        }
        return GatewayPort(number: number, protocol: proto, name: r.string("name"), targetPort: r.port("targetPort"))
    }
}

public struct ServerTLSSettings: Sendable, Hashable {
    public var httpsRedirect: Bool?
    /// PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL
    public var mode: String?
    public var serverCertificate: String?
    public var privateKey: String?
    public var caCertificates: String?
    public var caCrl: String?
    public var credentialName: String?
    public var credentialNames: [String]
    public var subjectAltNames: [String]
    public var verifyCertificateSpki: [String]
    public var verifyCertificateHash: [String]
    /// TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3
    public var minProtocolVersion: String?
    public var maxProtocolVersion: String?
    public var cipherSuites: [String]

    static let versions = ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]

    static func decode(_ r: ObjectReader) -> ServerTLSSettings {
        let v = ServerTLSSettings(
            httpsRedirect: r.bool("httpsRedirect"),
            mode: r.enumValue("mode", ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]),
            serverCertificate: r.string("serverCertificate"), privateKey: r.string("privateKey"),
            caCertificates: r.string("caCertificates"), caCrl: r.string("caCrl"), credentialName: r.string("credentialName"),
            credentialNames: r.stringList("credentialNames") ?? [], subjectAltNames: r.stringList("subjectAltNames") ?? [],
            verifyCertificateSpki: r.stringList("verifyCertificateSpki") ?? [], verifyCertificateHash: r.stringList("verifyCertificateHash") ?? [],
            minProtocolVersion: r.enumValue("minProtocolVersion", versions), maxProtocolVersion: r.enumValue("maxProtocolVersion", versions),
            cipherSuites: r.stringList("cipherSuites") ?? [])
        _ = r.node("tlsCertificates")  // accepted (Istio's multi-certificate form); not used yet
        // Istio: SIMPLE/MUTUAL terminate TLS with a certificate from a credential or from files.
        if v.mode == "SIMPLE" || v.mode == "MUTUAL" || v.mode == "OPTIONAL_MUTUAL" {
            let hasCred = v.credentialName != nil || !v.credentialNames.isEmpty || r.has("tlsCertificates")
            if !hasCred && (v.serverCertificate == nil || v.privateKey == nil) {
                r.ctx.error(r.path, "\(v.mode!) mode requires credentialName or serverCertificate and privateKey")
            }
        }
        if let mn = v.minProtocolVersion, let mx = v.maxProtocolVersion, mn != "TLS_AUTO", mx != "TLS_AUTO",
           versions.firstIndex(of: mn)! > versions.firstIndex(of: mx)! {
            r.ctx.error(r.p("minProtocolVersion"), "minProtocolVersion \(mn) is above maxProtocolVersion \(mx)")
        }
        return v
    }
}
