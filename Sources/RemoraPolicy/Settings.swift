import RemoraConfig

public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var address: String
    public var port: Int

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }

    /// "0.0.0.0:15001", "[::]:80"
    public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
}

public struct ProxyLimits: Sendable, Hashable {
    public var maxRequestHeadersKb: Int = 60
    public var maxHeaders: Int = 100
    public var maxConnections: Int = 10000
    public var bufferLimitBytes: Int = 1_048_576
    public var maxConcurrentStreams: Int = 100
    /// HTTP/2 receive windows, per stream and per connection. Envoy's edge guidance is 64 KiB
    /// and 1 MiB; 256 KiB per stream keeps one large gRPC stream fast. Windows re-open only
    /// as the other side drains, so they bound what a peer can make the proxy hold.
    public var http2StreamWindowBytes: Int = 262_144
    public var http2ConnectionWindowBytes: Int = 1_048_576

    public init() {}
}

/// How cluster names are resolved (`Proxy.spec.dns`).
public struct DNSSettings: Sendable, Hashable {
    /// Name servers instead of /etc/resolv.conf's; empty: resolv.conf's.
    public var servers: [ListenAddress] = []
    /// How often an answer without a TTL (/etc/hosts) is looked up again.
    public var refreshRateMs: Int = 60_000

    public init() {}
}

public enum AccessLogTarget: Sendable, Equatable {
    case stdout
    case off
    case file(String)
}

/// The Proxy resource with SPEC §2 defaults applied (all defaults when there is no Proxy resource).
public struct ProxySettings: Sendable {
    public var name: String = "sidecar"
    public var namespace: String = "default"
    public var labels: [String: String] = [:]
    /// 0 means one per core (the caller resolves it).
    public var workers: Int = 0
    /// nil when disabled with an explicit `null`.
    public var admin: ListenAddress? = ListenAddress(address: "127.0.0.1", port: 15000)
    public var health: ListenAddress? = ListenAddress(address: "0.0.0.0", port: 15021)
    public var metrics: ListenAddress? = ListenAddress(address: "0.0.0.0", port: 15090)
    /// nil when omitted from a `meshListeners` that is present (SPEC: "omit one to disable it").
    public var meshOutbound: ListenAddress? = ListenAddress(address: "0.0.0.0", port: 15001)
    public var meshInbound: ListenAddress? = ListenAddress(address: "0.0.0.0", port: 15006)
    public var credentialsDir: String = "/etc/remora/credentials"
    public var accessLog: AccessLogTarget = .stdout
    public var drainTimeoutMs: Int = 30_000
    /// Reload when the configuration files change.
    public var watch = false
    public var limits = ProxyLimits()
    public var dns = DNSSettings()

    /// All defaults.
    public init() {}

    public init(_ spec: ProxySpec?) {
        guard let spec else { return }
        name = spec.name
        namespace = spec.namespace
        labels = spec.labels
        if let w = spec.workers { workers = w }
        admin = Self.resolve(spec.admin, default: admin)
        health = Self.resolve(spec.health, default: health)
        metrics = Self.resolve(spec.metrics, default: metrics)
        if let mesh = spec.meshListeners {
            meshOutbound = mesh.outbound.map { Self.merge($0, default: meshOutbound!) }
            meshInbound = mesh.inbound.map { Self.merge($0, default: meshInbound!) }
        }
        if let d = spec.credentialsDir { credentialsDir = d }
        switch spec.accessLog {
        case nil, "stdout", "/dev/stdout": accessLog = .stdout
        case "off": accessLog = .off
        case let path?: accessLog = .file(path)
        }
        if let d = spec.drainTimeout { drainTimeoutMs = d.milliseconds }
        if let w = spec.watch { watch = w }
        if let l = spec.limits {
            if let v = l.maxRequestHeadersKb { limits.maxRequestHeadersKb = v }
            if let v = l.maxHeaders { limits.maxHeaders = v }
            if let v = l.maxConnections { limits.maxConnections = v }
            if let v = l.bufferLimitBytes { limits.bufferLimitBytes = v }
            if let v = l.maxConcurrentStreams { limits.maxConcurrentStreams = v }
            if let v = l.http2StreamWindowBytes { limits.http2StreamWindowBytes = v }
            if let v = l.http2ConnectionWindowBytes { limits.http2ConnectionWindowBytes = v }
        }
        if let d = spec.dns {
            if let list = d.servers { dns.servers = list.map { ListenAddress(address: $0.address, port: $0.port ?? 53) } }
            if let r = d.refreshRate { dns.refreshRateMs = r.milliseconds }
        }
    }

    private static func resolve(_ s: ProxySpec.Setting<ProxySpec.Address>, default d: ListenAddress?) -> ListenAddress? {
        switch s {
        case .absent: return d
        case .disabled: return nil
        case .set(let a): return merge(a, default: d!)
        }
    }

    private static func merge(_ a: ProxySpec.Address, default d: ListenAddress) -> ListenAddress {
        ListenAddress(address: a.address ?? d.address, port: a.port ?? d.port)
    }
}
