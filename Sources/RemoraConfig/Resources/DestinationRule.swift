/// Istio DestinationRule: per-host traffic policy and subsets.
public struct DestinationRule: Sendable, Hashable {
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: DestinationRuleSpec
}

public struct DestinationRuleSpec: Sendable, Hashable {
    public var host: String
    public var trafficPolicy: TrafficPolicy?
    public var subsets: [Subset]
    public var exportTo: [String]
    public var workloadSelector: WorkloadSelector?

    static func decode(_ r: ObjectReader) -> DestinationRuleSpec {
        let host = r.nonEmptyString("host", required: true) ?? ""
        let tp = r.object("trafficPolicy", TrafficPolicy.decode)
        let subsets = r.objectList("subsets", Subset.decode) ?? []
        var names = Set<String>()
        for (i, s) in subsets.enumerated() where !s.name.isEmpty && !names.insert(s.name).inserted {
            r.ctx.error("\(r.p("subsets"))[\(i)].name", "duplicate subset name \"\(s.name)\"")
        }
        let ws = r.object("workloadSelector") { w in WorkloadSelector(labels: w.stringMap("matchLabels") ?? [:]) }
        return DestinationRuleSpec(host: host, trafficPolicy: tp, subsets: subsets, exportTo: r.stringList("exportTo") ?? [], workloadSelector: ws)
    }
}

public struct Subset: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var trafficPolicy: TrafficPolicy?

    static func decode(_ r: ObjectReader) -> Subset {
        Subset(name: r.nonEmptyString("name", required: true) ?? "", labels: r.stringMap("labels") ?? [:],
               trafficPolicy: r.object("trafficPolicy", TrafficPolicy.decode))
    }
}

public struct TrafficPolicy: Sendable, Hashable {
    public var loadBalancer: LoadBalancerSettings?
    public var connectionPool: ConnectionPoolSettings?
    public var outlierDetection: OutlierDetection?
    public var tls: ClientTLSSettings?
    public var portLevelSettings: [PortTrafficPolicy]
    public var tunnel: TunnelSettings?
    public var proxyProtocol: ProxyProtocol?
    public var retryBudget: RetryBudget?

    /// Envoy's `retry_budget`: the retries in flight may be `percent` % of the requests in
    /// flight, never fewer than `minRetryConcurrency`. When set it replaces
    /// `connectionPool.http.maxRetries`. nil fields: Istio's defaults, 20 % and 3.
    public struct RetryBudget: Sendable, Hashable {
        public var percent: Double?
        public var minRetryConcurrency: Int?

        static func decode(_ r: ObjectReader) -> RetryBudget {
            RetryBudget(percent: r.double("percent", min: 0, max: 100),
                        minRetryConcurrency: r.int("minRetryConcurrency", min: 0, max: Int(UInt32.max)))
        }
    }

    static func decode(_ r: ObjectReader) -> TrafficPolicy {
        TrafficPolicy(loadBalancer: r.object("loadBalancer", LoadBalancerSettings.decode),
                      connectionPool: r.object("connectionPool", ConnectionPoolSettings.decode),
                      outlierDetection: r.object("outlierDetection", OutlierDetection.decode),
                      tls: r.object("tls", ClientTLSSettings.decode),
                      portLevelSettings: r.objectList("portLevelSettings", PortTrafficPolicy.decode) ?? [],
                      tunnel: r.object("tunnel", TunnelSettings.decode),
                      proxyProtocol: r.object("proxyProtocol") { p in ProxyProtocol(version: p.enumValue("version", ["V1", "V2"])) },
                      retryBudget: r.object("retryBudget", RetryBudget.decode))
    }

    /// The policy for one port, as Istio's `GetPortLevelTrafficPolicy`: a `portLevelSettings`
    /// entry for `port` *replaces* the policy — its four sections (load balancer, connection
    /// pool, outlier detection, TLS) are taken as written, a section it omits is nil (the
    /// default, not the top level's), and nothing else of the top level is kept. Without such
    /// an entry the policy itself. `portLevel` says which; the result has no port-level settings.
    public func forPort(_ port: Int) -> (policy: TrafficPolicy, portLevel: Bool) {
        guard let pl = portLevelSettings.first(where: { $0.port?.number == port }) else {
            var out = self
            out.portLevelSettings = []
            return (out, false)
        }
        return (TrafficPolicy(loadBalancer: pl.loadBalancer, connectionPool: pl.connectionPool, outlierDetection: pl.outlierDetection,
                              tls: pl.tls, portLevelSettings: [], tunnel: nil, proxyProtocol: nil, retryBudget: nil), true)
    }
}

public struct PortTrafficPolicy: Sendable, Hashable {
    public var port: PortSelector?
    public var loadBalancer: LoadBalancerSettings?
    public var connectionPool: ConnectionPoolSettings?
    public var outlierDetection: OutlierDetection?
    public var tls: ClientTLSSettings?

    static func decode(_ r: ObjectReader) -> PortTrafficPolicy {
        PortTrafficPolicy(port: r.object("port", required: true, PortSelector.decode),
                          loadBalancer: r.object("loadBalancer", LoadBalancerSettings.decode),
                          connectionPool: r.object("connectionPool", ConnectionPoolSettings.decode),
                          outlierDetection: r.object("outlierDetection", OutlierDetection.decode),
                          tls: r.object("tls", ClientTLSSettings.decode))
    }
}

public struct LoadBalancerSettings: Sendable, Hashable {
    /// UNSPECIFIED, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN
    public var simple: String?
    public var consistentHash: ConsistentHash?
    public var localityLbSetting: LocalityLoadBalancerSetting?
    public var warmupDurationSecs: ConfigDuration?
    public var warmup: Warmup?

    public struct ConsistentHash: Sendable, Hashable {
        public var httpHeaderName: String?
        public var httpCookie: HTTPCookie?
        public var useSourceIp: Bool?
        public var httpQueryParameterName: String?
        public var ringHashMinimumRingSize: Int?
        public var maglevTableSize: Int?
        /// Deprecated top-level form of ringHash.minimumRingSize.
        public var minimumRingSize: Int?

        public struct HTTPCookie: Sendable, Hashable {
            public var name: String
            public var path: String?
            public var ttl: ConfigDuration?
            public var attributes: [String: String]
        }

        static func decode(_ r: ObjectReader) -> ConsistentHash {
            let v = ConsistentHash(
                httpHeaderName: r.string("httpHeaderName"),
                httpCookie: r.object("httpCookie") { c in
                    HTTPCookie(name: c.nonEmptyString("name", required: true) ?? "", path: c.string("path"), ttl: c.duration("ttl"),
                               attributes: Dictionary((c.objectList("attributes") { a in (a.string("name", required: true) ?? "", a.string("value") ?? "") } ?? []),
                                                      uniquingKeysWith: { _, b in b }))
                },
                useSourceIp: r.bool("useSourceIp"),
                httpQueryParameterName: r.string("httpQueryParameterName"),
                ringHashMinimumRingSize: r.object("ringHash") { $0.int("minimumRingSize", min: 0) } ?? nil,
                maglevTableSize: r.object("maglev") { $0.int("tableSize", min: 0) } ?? nil,
                minimumRingSize: r.int("minimumRingSize", min: 0))
            let keys = ["httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"].filter { r.has($0) }
            if keys.count != 1 { r.ctx.error(r.path, "exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required") }
            return v
        }
    }

    public struct Warmup: Sendable, Hashable {
        public var duration: ConfigDuration?
        public var minimumPercent: Double?
        public var aggression: Double?
    }

    static func decode(_ r: ObjectReader) -> LoadBalancerSettings {
        let v = LoadBalancerSettings(
            simple: r.enumValue("simple", ["UNSPECIFIED", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN"]),
            consistentHash: r.object("consistentHash", ConsistentHash.decode),
            localityLbSetting: r.object("localityLbSetting", LocalityLoadBalancerSetting.decode),
            warmupDurationSecs: r.duration("warmupDurationSecs"),
            warmup: r.object("warmup") { w in Warmup(duration: w.duration("duration"), minimumPercent: w.double("minimumPercent", min: 0, max: 100),
                                                     aggression: w.double("aggression", min: 1)) })
        if r.has("simple") && r.has("consistentHash") { r.ctx.error(r.path, "only one of simple, consistentHash may be set") }
        return v
    }
}

public struct LocalityLoadBalancerSetting: Sendable, Hashable {
    public struct Distribute: Sendable, Hashable { public var from: String?; public var to: [String: Int] }
    public struct Failover: Sendable, Hashable { public var from: String?; public var to: String? }
    public var distribute: [Distribute]
    public var failover: [Failover]
    public var failoverPriority: [String]
    public var enabled: Bool?

    static func decode(_ r: ObjectReader) -> LocalityLoadBalancerSetting {
        LocalityLoadBalancerSetting(
            distribute: r.objectList("distribute") { d in Distribute(from: d.string("from"), to: d.intMap("to", min: 0, max: 100) ?? [:]) } ?? [],
            failover: r.objectList("failover") { f in Failover(from: f.string("from"), to: f.string("to")) } ?? [],
            failoverPriority: r.stringList("failoverPriority") ?? [],
            enabled: r.bool("enabled"))
    }
}

public struct ConnectionPoolSettings: Sendable, Hashable {
    public var tcp: TCPSettings?
    public var http: HTTPSettings?

    public struct TCPSettings: Sendable, Hashable {
        public var maxConnections: Int?
        public var connectTimeout: ConfigDuration?
        public var tcpKeepalive: TCPKeepalive?
        public var maxConnectionDuration: ConfigDuration?
        public var idleTimeout: ConfigDuration?

        public struct TCPKeepalive: Sendable, Hashable {
            public var probes: Int?
            public var time: ConfigDuration?
            public var interval: ConfigDuration?
        }
    }

    public struct HTTPSettings: Sendable, Hashable {
        public var http1MaxPendingRequests: Int?
        public var http2MaxRequests: Int?
        public var maxRequestsPerConnection: Int?
        public var maxRetries: Int?
        public var idleTimeout: ConfigDuration?
        /// DEFAULT, DO_NOT_UPGRADE, UPGRADE
        public var h2UpgradePolicy: String?
        public var useClientProtocol: Bool?
        public var maxConcurrentStreams: Int?
    }

    static func decode(_ r: ObjectReader) -> ConnectionPoolSettings {
        let i32 = Int(Int32.max)
        return ConnectionPoolSettings(
            tcp: r.object("tcp") { t in
                TCPSettings(maxConnections: t.int("maxConnections", min: 0, max: i32), connectTimeout: t.duration("connectTimeout"),
                            tcpKeepalive: t.object("tcpKeepalive") { k in
                                TCPSettings.TCPKeepalive(probes: k.int("probes", min: 0), time: k.duration("time"), interval: k.duration("interval"))
                            },
                            maxConnectionDuration: t.duration("maxConnectionDuration"), idleTimeout: t.duration("idleTimeout"))
            },
            http: r.object("http") { h in
                HTTPSettings(http1MaxPendingRequests: h.int("http1MaxPendingRequests", min: 0, max: i32),
                             http2MaxRequests: h.int("http2MaxRequests", min: 0, max: i32),
                             maxRequestsPerConnection: h.int("maxRequestsPerConnection", min: 0, max: i32),
                             maxRetries: h.int("maxRetries", min: 0, max: i32), idleTimeout: h.duration("idleTimeout"),
                             h2UpgradePolicy: h.enumValue("h2UpgradePolicy", ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]),
                             useClientProtocol: h.bool("useClientProtocol"),
                             maxConcurrentStreams: h.int("maxConcurrentStreams", min: 0, max: i32))
            })
    }
}

public struct OutlierDetection: Sendable, Hashable {
    public var splitExternalLocalOriginErrors: Bool?
    public var consecutiveLocalOriginFailures: Int?
    public var consecutiveGatewayErrors: Int?
    public var consecutive5xxErrors: Int?
    /// Deprecated alias of consecutive5xxErrors (counted 502/503/504 in old Istio).
    public var consecutiveErrors: Int?
    public var interval: ConfigDuration?
    public var baseEjectionTime: ConfigDuration?
    public var maxEjectionPercent: Int?
    public var minHealthPercent: Int?

    static func decode(_ r: ObjectReader) -> OutlierDetection {
        OutlierDetection(splitExternalLocalOriginErrors: r.bool("splitExternalLocalOriginErrors"),
                         consecutiveLocalOriginFailures: r.int("consecutiveLocalOriginFailures", min: 0),
                         consecutiveGatewayErrors: r.int("consecutiveGatewayErrors", min: 0),
                         consecutive5xxErrors: r.int("consecutive5xxErrors", min: 0),
                         consecutiveErrors: r.int("consecutiveErrors", min: 0),
                         interval: r.duration("interval"), baseEjectionTime: r.duration("baseEjectionTime"),
                         maxEjectionPercent: r.int("maxEjectionPercent", min: 0, max: 100),
                         minHealthPercent: r.int("minHealthPercent", min: 0, max: 100))
    }
}

public struct ClientTLSSettings: Sendable, Hashable {
    /// DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL
    public var mode: String?
    public var clientCertificate: String?
    public var privateKey: String?
    public var caCertificates: String?
    public var credentialName: String?
    public var subjectAltNames: [String]
    public var sni: String?
    public var insecureSkipVerify: Bool?
    public var caCrl: String?

    static func decode(_ r: ObjectReader) -> ClientTLSSettings {
        let v = ClientTLSSettings(mode: r.enumValue("mode", ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]),
                                  clientCertificate: r.string("clientCertificate"), privateKey: r.string("privateKey"),
                                  caCertificates: r.string("caCertificates"), credentialName: r.string("credentialName"),
                                  subjectAltNames: r.stringList("subjectAltNames") ?? [], sni: r.string("sni"),
                                  insecureSkipVerify: r.bool("insecureSkipVerify"), caCrl: r.string("caCrl"))
        if v.mode == "MUTUAL" && v.credentialName == nil && (v.clientCertificate == nil || v.privateKey == nil) {
            r.ctx.error(r.path, "MUTUAL mode requires credentialName or clientCertificate and privateKey")
        }
        return v
    }
}

public struct TunnelSettings: Sendable, Hashable {
    public var `protocol`: String?
    public var targetHost: String
    public var targetPort: Int

    static func decode(_ r: ObjectReader) -> TunnelSettings {
        TunnelSettings(protocol: r.enumValue("protocol", ["CONNECT", "POST"]), targetHost: r.nonEmptyString("targetHost", required: true) ?? "",
                       targetPort: r.port("targetPort", required: true) ?? 0)
    }
}

public struct ProxyProtocol: Sendable, Hashable {
    public var version: String?
}
