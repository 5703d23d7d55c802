/// Remora's own `Proxy` resource (remora.dev/v1alpha1): this proxy's settings, SPEC §2.
/// Fields are optional here; RemoraPolicy applies the defaults.
public struct ProxyResource: Sendable, Hashable {
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: ProxySpec
}

public struct ProxySpec: Sendable, Hashable {
    /// An address field: absent, explicitly null (disabled) or set.
    public enum Setting<T: Sendable & Hashable>: Sendable, Hashable {
        case absent
        case disabled
        case set(T)
    }

    public struct Address: Sendable, Hashable {
        public var address: String?
        public var port: Int?
    }

    public struct MeshListeners: Sendable, Hashable {
        public var outbound: Address?
        public var inbound: Address?
    }

    public struct Limits: Sendable, Hashable {
        public var maxRequestHeadersKb: Int?
        public var maxHeaders: Int?
        public var maxConnections: Int?
        public var bufferLimitBytes: Int?
        public var maxConcurrentStreams: Int?
        public var http2StreamWindowBytes: Int?
        public var http2ConnectionWindowBytes: Int?
    }

    /// `dns`: how names are resolved (ServiceEntry `resolution: DNS`, hosts without a ServiceEntry).
    public struct DNS: Sendable, Hashable {
        /// Name servers to ask instead of /etc/resolv.conf's: an IP address, optionally with a port.
        public var servers: [Server]?
        /// How often an answer without a TTL (e.g. from /etc/hosts) is looked up again.
        public var refreshRate: ConfigDuration?

        public struct Server: Sendable, Hashable {
            public var address: String
            /// nil: 53.
            public var port: Int?
        }
    }

    /// The resource's name and labels, carried with the spec so that `ConfigSet.proxy` alone
    /// is enough to build the proxy's settings.
    public var name: String = "sidecar"
    public var namespace: String = "default"
    public var labels: [String: String] = [:]

    public var workers: Int?
    public var admin: Setting<Address> = .absent
    public var health: Setting<Address> = .absent
    public var metrics: Setting<Address> = .absent
    /// nil when absent (both defaults); present with a listener omitted disables that one.
    public var meshListeners: MeshListeners?
    public var credentialsDir: String?
    /// "stdout", "off" or a file path.
    public var accessLog: String?
    public var drainTimeout: ConfigDuration?
    /// Reload when the `-c` files change (a ConfigMap volume update swaps a symlink).
    public var watch: Bool?
    public var limits: Limits?
    public var dns: DNS?

    public init() {}

    static func decode(_ r: ObjectReader) -> ProxySpec {
        var s = ProxySpec()
        func address(_ key: String) -> Setting<Address> {
            if !r.has(key) { return .absent }
            guard let a = r.object(key, decodeAddress) else {
                return r.node(key) == nil ? .disabled : .absent
            }
            return .set(a)
        }
        s.workers = r.int("workers", min: 0, max: 1024)
        s.admin = address("admin")
        s.health = address("health")
        s.metrics = address("metrics")
        if r.has("meshListeners") {
            s.meshListeners = r.object("meshListeners") { m in
                MeshListeners(outbound: m.object("outbound", decodeAddress), inbound: m.object("inbound", decodeAddress))
            } ?? MeshListeners()
        }
        s.credentialsDir = r.nonEmptyString("credentialsDir")
        if let n = r.node("accessLog") {
            // `accessLog: off` is accepted as shorthand for `{path: off}`.
            if case .scalar(let v, _, _) = n {
                s.accessLog = v
            } else {
                s.accessLog = ObjectReader.read(r.ctx, n, r.p("accessLog")) { a in a.nonEmptyString("path", required: true) } ?? nil
            }
        }
        s.drainTimeout = r.duration("drainTimeout")
        s.watch = r.bool("watch")
        s.limits = r.object("limits") { l in
            Limits(maxRequestHeadersKb: l.int("maxRequestHeadersKb", min: 1, max: 8192), maxHeaders: l.int("maxHeaders", min: 1, max: 100_000),
                   maxConnections: l.int("maxConnections", min: 1), bufferLimitBytes: l.int("bufferLimitBytes", min: 0),
                   maxConcurrentStreams: l.int("maxConcurrentStreams", min: 1, max: Int(Int32.max)),
                   // RFC 9113 §6.9.2: a window is at least the 65 535 default here and at most 2^31-1
                   http2StreamWindowBytes: l.int("http2StreamWindowBytes", min: 65_535, max: Int(Int32.max)),
                   http2ConnectionWindowBytes: l.int("http2ConnectionWindowBytes", min: 65_535, max: Int(Int32.max)))
        }
        s.dns = r.object("dns", decodeDNS)
        return s
    }

    private static func decodeDNS(_ r: ObjectReader) -> DNS {
        var servers: [DNS.Server]?
        if let list = r.stringList("servers") {
            servers = []
            for (i, text) in list.enumerated() {
                guard let (address, port) = IPLiteral.parseHostPort(text) else {
                    r.ctx.error("\(r.p("servers"))[\(i)]", "invalid name server \"\(text)\" (expected an IP address, optionally with a port: 10.0.0.10, 10.0.0.10:5353, [fd00::10]:53)")
                    continue
                }
                servers?.append(DNS.Server(address: address, port: port))
            }
        }
        var refreshRate = r.duration("refreshRate")
        if let d = refreshRate, d.nanoseconds < 1_000_000_000 {
            r.ctx.error(r.p("refreshRate"), "must be at least 1s")
            refreshRate = nil
        }
        return DNS(servers: servers, refreshRate: refreshRate)
    }

    private static func decodeAddress(_ r: ObjectReader) -> Address {
        Address(address: r.nonEmptyString("address"), port: r.port("port"))
    }
}
