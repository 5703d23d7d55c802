import RemoraConfig

public enum ListenerKind: Sendable, Hashable {
    case meshOutbound
    case meshInbound
    case gateway
}

public struct ListenerSpec: Sendable, Hashable {
    /// "0.0.0.0_8080": address and port, unique.
    public var name: String
    public var address: ListenAddress
    public var kind: ListenerKind
    /// "HTTP", "HTTPS", "HTTP2", "GRPC" (mesh: "HTTP"); TCP/TLS/MONGO/GRPC-WEB for such Gateway servers.
    public var serverProtocol: String
    /// A server on this port terminates TLS (served later; the proxy skips such listeners for now).
    public var tls: Bool
    /// The Gateway servers bound to this listener (empty for mesh listeners).
    public var servers: [GatewayServerRef]

    public init(name: String, address: ListenAddress, kind: ListenerKind, serverProtocol: String, tls: Bool, servers: [GatewayServerRef] = []) {
        self.name = name
        self.address = address
        self.kind = kind
        self.serverProtocol = serverProtocol
        self.tls = tls
        self.servers = servers
    }
}

/// One `servers[]` entry of a Gateway, kept with its listener (for TLS settings and host restrictions).
public struct GatewayServerRef: Sendable, Hashable {
    public var gateway: ResourceKey
    public var index: Int
    public var server: GatewayServer
}

enum ListenerBuilder {
    /// A Gateway applies to this proxy when its selector is a subset of the Proxy's labels, or the
    /// Proxy has no labels, or there is no Proxy at all (a standalone gateway runs every Gateway).
    static func applies(_ gw: Gateway, settings: ProxySettings, hasProxy: Bool) -> Bool {
        if !hasProxy || settings.labels.isEmpty { return true }
        return gw.spec.selector.allSatisfy { settings.labels[$0.key] == $0.value }
    }

    static func build(config: ConfigSet, settings: ProxySettings, errors: inout [ConfigError]) -> [ListenerSpec] {
        var listeners: [ListenerSpec] = []
        // Everything this proxy binds, to report two users of one port (the second fails to bind otherwise).
        var bound: [(addr: ListenAddress, owner: String, resource: String?, path: String, file: String?)] = []
        let proxyRes = config.resources.first { $0.kind == .proxy }
        func claim(_ a: ListenAddress, owner: String, resource: String?, path: String, file: String?) -> Bool {
            if let other = bound.first(where: { $0.addr.port == a.port && overlaps($0.addr.address, a.address) }) {
                errors.append(ConfigError(kind: .invalid, file: file, resource: resource, path: path,
                                          message: "port \(a) conflicts with \(other.owner) on \(other.addr)"))
                return false
            }
            bound.append((a, owner, resource, path, file))
            return true
        }
        let pres = proxyRes?.key.description
        for (field, a) in [("admin", settings.admin), ("health", settings.health), ("metrics", settings.metrics)] {
            if let a { _ = claim(a, owner: "the \(field) endpoint", resource: pres, path: "spec.\(field).port", file: proxyRes?.source) }
        }
        if let a = settings.meshOutbound,
           claim(a, owner: "the mesh outbound listener", resource: pres, path: "spec.meshListeners.outbound.port", file: proxyRes?.source) {
            listeners.append(ListenerSpec(name: "\(a.address)_\(a.port)", address: a, kind: .meshOutbound, serverProtocol: "HTTP", tls: false))
        }
        if let a = settings.meshInbound,
           claim(a, owner: "the mesh inbound listener", resource: pres, path: "spec.meshListeners.inbound.port", file: proxyRes?.source) {
            listeners.append(ListenerSpec(name: "\(a.address)_\(a.port)", address: a, kind: .meshInbound, serverProtocol: "HTTP", tls: false))
        }
        let hasProxy = proxyRes != nil
        for r in config.resources {
            guard let gw = r.gateway, applies(gw, settings: settings, hasProxy: hasProxy) else { continue }
            for (i, server) in gw.spec.servers.enumerated() {
                let addr = ListenAddress(address: server.bind ?? "0.0.0.0", port: server.port.number)
                let ref = GatewayServerRef(gateway: r.key, index: i, server: server)
                // Servers of several Gateways on one address:port share one listener, as in Istio.
                if let j = listeners.firstIndex(where: { $0.kind == .gateway && $0.address == addr }) {
                    listeners[j].servers.append(ref)
                    if server.terminatesTLS { listeners[j].tls = true }
                    continue
                }
                guard claim(addr, owner: "\(r.key) spec.servers[\(i)]", resource: r.key.description,
                            path: "spec.servers[\(i)].port.number", file: r.source) else { continue }
                listeners.append(ListenerSpec(name: "\(addr.address)_\(addr.port)", address: addr, kind: .gateway,
                                              serverProtocol: server.port.protocol, tls: server.terminatesTLS, servers: [ref]))
            }
        }
        return listeners
    }

    private static func overlaps(_ a: String, _ b: String) -> Bool {
        a == b || ["0.0.0.0", "::", "[::]"].contains(a) || ["0.0.0.0", "::", "[::]"].contains(b)
    }
}
