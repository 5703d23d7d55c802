/// Istio VirtualService (networking.istio.io): routing rules for a set of hosts.
public struct VirtualService: Sendable, Hashable {
    public var apiVersion: String
    public var metadata: ObjectMeta
    public var spec: VirtualServiceSpec
}

public struct VirtualServiceSpec: Sendable, Hashable {
    public var hosts: [String]
    /// nil when absent: then the mesh listeners only (Istio's default).
    public var gateways: [String]?
    public var http: [HTTPRoute]
    public var tls: [TLSRoute]
    public var tcp: [TCPRoute]
    public var exportTo: [String]

    static func decode(_ r: ObjectReader) -> VirtualServiceSpec {
        let hosts = r.stringList("hosts") ?? []
        for (i, h) in hosts.enumerated() where h.isEmpty { r.ctx.error("\(r.p("hosts"))[\(i)]", "host must not be empty") }
        let gateways = r.stringList("gateways")
        let http = r.objectList("http", HTTPRoute.decode) ?? []
        let tls = r.objectList("tls", TLSRoute.decode) ?? []
        let tcp = r.objectList("tcp", TCPRoute.decode) ?? []
        let exportTo = r.stringList("exportTo") ?? []
        // A missing `hosts` is checked across resources: only a delegate target may omit it.
        // Istio: a catch-all `*` is for gateways only; on the mesh it would capture every destination.
        if gateways == nil || gateways!.isEmpty || gateways!.contains("mesh") {
            for (i, h) in hosts.enumerated() where h == "*" {
                r.ctx.error("\(r.p("hosts"))[\(i)]", "wildcard host * is not allowed for VirtualServices bound to the mesh")
            }
        }
        return VirtualServiceSpec(hosts: hosts, gateways: gateways, http: http, tls: tls, tcp: tcp, exportTo: exportTo)
    }
}

public struct HTTPRoute: Sendable, Hashable {
    public var name: String?
    public var match: [HTTPMatchRequest]
    public var route: [HTTPRouteDestination]
    public var redirect: HTTPRedirect?
    public var directResponse: HTTPDirectResponse?
    public var delegate: Delegate?
    public var rewrite: HTTPRewrite?
    public var timeout: ConfigDuration?
    public var retries: HTTPRetry?
    public var fault: HTTPFaultInjection?
    public var mirror: Destination?
    public var mirrors: [HTTPMirrorPolicy]
    public var mirrorPercentage: Percent?
    /// Deprecated Istio field (integer percent), superseded by mirrorPercentage.
    public var mirrorPercent: Int?
    public var corsPolicy: CorsPolicy?
    public var headers: HeadersPolicy?

    public init(name: String? = nil, match: [HTTPMatchRequest] = [], route: [HTTPRouteDestination] = [], redirect: HTTPRedirect? = nil,
                directResponse: HTTPDirectResponse? = nil, delegate: Delegate? = nil, rewrite: HTTPRewrite? = nil,
                timeout: ConfigDuration? = nil, retries: HTTPRetry? = nil, fault: HTTPFaultInjection? = nil, mirror: Destination? = nil,
                mirrors: [HTTPMirrorPolicy] = [], mirrorPercentage: Percent? = nil, mirrorPercent: Int? = nil,
                corsPolicy: CorsPolicy? = nil, headers: HeadersPolicy? = nil) {
        self.name = name
        self.match = match
        self.route = route
        self.redirect = redirect
        self.directResponse = directResponse
        self.delegate = delegate
        self.rewrite = rewrite
        self.timeout = timeout
        self.retries = retries
        self.fault = fault
        self.mirror = mirror
        self.mirrors = mirrors
        self.mirrorPercentage = mirrorPercentage
        self.mirrorPercent = mirrorPercent
        self.corsPolicy = corsPolicy
        self.headers = headers
    }

    static func decode(_ r: ObjectReader) -> HTTPRoute {
        let name = r.string("name")
        let match = r.objectList("match", HTTPMatchRequest.decode) ?? []
        let route = r.objectList("route", HTTPRouteDestination.decode) ?? []
        let redirect = r.object("redirect", HTTPRedirect.decode)
        let directResponse = r.object("directResponse", HTTPDirectResponse.decode)
        let delegate = r.object("delegate", Delegate.decode)
        let rewrite = r.object("rewrite", HTTPRewrite.decode)
        let timeout = r.duration("timeout")
        let retries = r.object("retries", HTTPRetry.decode)
        let fault = r.object("fault", HTTPFaultInjection.decode)
        let mirror = r.object("mirror", Destination.decode)
        let mirrors = r.objectList("mirrors", HTTPMirrorPolicy.decode) ?? []
        let mirrorPercentage = r.object("mirrorPercentage", Percent.decode)
        let mirrorPercent = r.int("mirrorPercent", min: 0, max: 100)
        let corsPolicy = r.object("corsPolicy", CorsPolicy.decode)
        let headers = r.object("headers", HeadersPolicy.decode)

        // Istio's rule: exactly one action per rule.
        if redirect != nil && !route.isEmpty {
            r.ctx.error(r.p("redirect"), "redirect and route cannot both be set")
        }
        if directResponse != nil && !route.isEmpty {
            r.ctx.error(r.p("directResponse"), "directResponse and route cannot both be set")
        }
        if directResponse != nil && redirect != nil {
            r.ctx.error(r.p("directResponse"), "directResponse and redirect cannot both be set")
        }
        if delegate != nil && (!route.isEmpty || redirect != nil || directResponse != nil) {
            r.ctx.error(r.p("delegate"), "delegate cannot be set together with route, redirect or directResponse")
        }
        if route.isEmpty && redirect == nil && directResponse == nil && delegate == nil {
            r.ctx.error(r.path, "one of route, redirect, directResponse or delegate is required")
        }
        if rewrite != nil && redirect != nil {
            r.ctx.error(r.p("rewrite"), "rewrite cannot be used with redirect")
        }
        if mirror != nil && !mirrors.isEmpty {
            r.ctx.error(r.p("mirrors"), "mirror and mirrors cannot both be set")
        }
        if mirrorPercent != nil && mirrorPercentage != nil {
            r.ctx.error(r.p("mirrorPercent"), "mirrorPercent and mirrorPercentage cannot both be set")
        }
        if route.count > 1 {
            let total = route.reduce(0) { $0 + ($1.weight ?? 0) }
            if total != 100 {
                r.ctx.error(r.p("route"), "total destination weight \(total) != 100")
            }
        }
        return HTTPRoute(name: name, match: match, route: route, redirect: redirect, directResponse: directResponse,
                         delegate: delegate, rewrite: rewrite, timeout: timeout, retries: retries, fault: fault,
                         mirror: mirror, mirrors: mirrors, mirrorPercentage: mirrorPercentage, mirrorPercent: mirrorPercent,
                         corsPolicy: corsPolicy, headers: headers)
    }
}

public struct HTTPMatchRequest: Sendable, Hashable {
    public var name: String?
    public var uri: StringMatch?
    public var scheme: StringMatch?
    public var method: StringMatch?
    public var authority: StringMatch?
    /// Header name as written (matching lowercases it), in document order.
    public var headers: [NamedStringMatch]
    public var withoutHeaders: [NamedStringMatch]
    public var queryParams: [NamedStringMatch]
    /// Remora extension: one cookie of the Cookie header, by name.
    public var cookies: [NamedStringMatch]
    public var port: Int?
    public var ignoreUriCase: Bool
    public var sourceLabels: [String: String]
    public var gateways: [String]
    public var sourceNamespace: String?
    public var statPrefix: String?

    public init(name: String? = nil, uri: StringMatch? = nil, scheme: StringMatch? = nil, method: StringMatch? = nil,
                authority: StringMatch? = nil, headers: [NamedStringMatch] = [], withoutHeaders: [NamedStringMatch] = [],
                queryParams: [NamedStringMatch] = [], cookies: [NamedStringMatch] = [], port: Int? = nil, ignoreUriCase: Bool = false,
                sourceLabels: [String: String] = [:], gateways: [String] = [], sourceNamespace: String? = nil, statPrefix: String? = nil) {
        self.name = name
        self.uri = uri
        self.scheme = scheme
        self.method = method
        self.authority = authority
        self.headers = headers
        self.withoutHeaders = withoutHeaders
        self.queryParams = queryParams
        self.cookies = cookies
        self.port = port
        self.ignoreUriCase = ignoreUriCase
        self.sourceLabels = sourceLabels
        self.gateways = gateways
        self.sourceNamespace = sourceNamespace
        self.statPrefix = statPrefix
    }

    static func decode(_ r: ObjectReader) -> HTTPMatchRequest {
        func named(_ key: String) -> [NamedStringMatch] {
            (r.objectMap(key, StringMatch.decode) ?? []).map { NamedStringMatch(name: $0.0, match: $0.1) }
        }
        func presenceNotAllowed(_ key: String, _ m: StringMatch?) -> StringMatch? {
            if m == .present { r.ctx.error(r.p(key), "one of exact, prefix, regex is required"); return nil }
            return m
        }
        let name = r.string("name")
        let uri = presenceNotAllowed("uri", r.object("uri", StringMatch.decode))
        let scheme = presenceNotAllowed("scheme", r.object("scheme", StringMatch.decode))
        let method = presenceNotAllowed("method", r.object("method", StringMatch.decode))
        let authority = presenceNotAllowed("authority", r.object("authority", StringMatch.decode))
        let headers = named("headers")
        let withoutHeaders = named("withoutHeaders")
        let queryParams = named("queryParams")
        let cookies = named("cookies")
        for h in headers + withoutHeaders where h.name.isEmpty {
            r.ctx.error(r.p("headers"), "header name must not be empty")
        }
        let port = r.port("port")
        let ignoreUriCase = r.bool("ignoreUriCase") ?? false
        let sourceLabels = r.stringMap("sourceLabels") ?? [:]
        let gateways = r.stringList("gateways") ?? []
        let sourceNamespace = r.string("sourceNamespace")
        let statPrefix = r.string("statPrefix")
        return HTTPMatchRequest(name: name, uri: uri, scheme: scheme, method: method, authority: authority,
                                headers: headers, withoutHeaders: withoutHeaders, queryParams: queryParams, cookies: cookies,
                                port: port, ignoreUriCase: ignoreUriCase, sourceLabels: sourceLabels, gateways: gateways,
                                sourceNamespace: sourceNamespace, statPrefix: statPrefix)
    }
}

public struct NamedStringMatch: Sendable, Hashable {
    public var name: String
    public var match: StringMatch

    public init(name: String, match: StringMatch) {
        self.name = name
        self.match = match
    }
}

public struct HTTPRouteDestination: Sendable, Hashable {
    public var destination: Destination
    public var weight: Int?
    public var headers: HeadersPolicy?

    public init(destination: Destination, weight: Int? = nil, headers: HeadersPolicy? = nil) {
        self.destination = destination
        self.weight = weight
        self.headers = headers
    }

    static func decode(_ r: ObjectReader) -> HTTPRouteDestination {
        let d = r.object("destination", required: true, Destination.decode) ?? Destination(host: "")
        return HTTPRouteDestination(destination: d, weight: r.int("weight", min: 0, max: 100), headers: r.object("headers", HeadersPolicy.decode))
    }
}

public struct HTTPRedirect: Sendable, Hashable {
    public var uri: String?
    public var authority: String?
    public var port: Int?
    /// FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT
    public var derivePort: String?
    public var scheme: String?
    /// Default 301.
    public var redirectCode: Int?

    static func decode(_ r: ObjectReader) -> HTTPRedirect {
        let v = HTTPRedirect(uri: r.string("uri"), authority: r.string("authority"), port: r.port("port"),
                             derivePort: r.enumValue("derivePort", ["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]),
                             scheme: r.string("scheme"), redirectCode: r.int("redirectCode", min: 300, max: 399))
        if v.port != nil && v.derivePort != nil { r.ctx.error(r.p("derivePort"), "port and derivePort cannot both be set") }
        return v
    }
}

public struct HTTPDirectResponse: Sendable, Hashable {
    public var status: Int
    public var body: HTTPBody?

    static func decode(_ r: ObjectReader) -> HTTPDirectResponse {
        HTTPDirectResponse(status: r.int("status", min: 200, max: 599, required: true) ?? 200, body: r.object("body", HTTPBody.decode))
    }
}

public struct HTTPBody: Sendable, Hashable {
    public var string: String?
    /// Base64 as written (protobuf `bytes` in JSON/YAML form).
    public var bytes: String?

    static func decode(_ r: ObjectReader) -> HTTPBody {
        let v = HTTPBody(string: r.string("string"), bytes: r.string("bytes"))
        if v.string != nil && v.bytes != nil { r.ctx.error(r.path, "only one of string, bytes may be set") }
        return v
    }
}

public struct Delegate: Sendable, Hashable {
    public var name: String
    public var namespace: String?

    static func decode(_ r: ObjectReader) -> Delegate {
        Delegate(name: r.nonEmptyString("name", required: true) ?? "", namespace: r.string("namespace"))
    }
}

public struct HTTPRewrite: Sendable, Hashable {
    public var uri: String?
    public var authority: String?
    public var uriRegexRewrite: RegexRewrite?

    static func decode(_ r: ObjectReader) -> HTTPRewrite {
        let v = HTTPRewrite(uri: r.string("uri"), authority: r.string("authority"), uriRegexRewrite: r.object("uriRegexRewrite", RegexRewrite.decode))
        if v.uri != nil && v.uriRegexRewrite != nil { r.ctx.error(r.p("uriRegexRewrite"), "uri and uriRegexRewrite cannot both be set") }
        return v
    }
}

public struct RegexRewrite: Sendable, Hashable {
    public var match: String
    public var rewrite: String

    static func decode(_ r: ObjectReader) -> RegexRewrite {
        let match = r.string("match", required: true) ?? ""
        if r.has("match"), case .failure(let e) = RE2Regex.compile(match) {
            r.ctx.error(r.p("match"), "invalid RE2 regular expression \"\(match)\": \(e.message)")
        }
        return RegexRewrite(match: match, rewrite: r.string("rewrite", required: true) ?? "")
    }
}

public struct HTTPFaultInjection: Sendable, Hashable {
    public var delay: Delay?
    public var abort: Abort?

    public struct Delay: Sendable, Hashable {
        public var fixedDelay: ConfigDuration?
        public var exponentialDelay: ConfigDuration?
        public var percentage: Percent?
        /// Deprecated integer percent.
        public var percent: Int?

        static func decode(_ r: ObjectReader) -> Delay {
            let v = Delay(fixedDelay: r.duration("fixedDelay"), exponentialDelay: r.duration("exponentialDelay"),
                          percentage: r.object("percentage", Percent.decode), percent: r.int("percent", min: 0, max: 100))
            if v.fixedDelay == nil && v.exponentialDelay == nil && !r.has("fixedDelay") && !r.has("exponentialDelay") {
                r.missing("fixedDelay")
            }
            return v
        }
    }

    public struct Abort: Sendable, Hashable {
        public var httpStatus: Int?
        public var grpcStatus: String?
        public var http2Error: String?
        public var percentage: Percent?

        static func decode(_ r: ObjectReader) -> Abort {
            let v = Abort(httpStatus: r.int("httpStatus", min: 200, max: 599), grpcStatus: r.string("grpcStatus"),
                          http2Error: r.string("http2Error"), percentage: r.object("percentage", Percent.decode))
            let set = [r.has("httpStatus"), r.has("grpcStatus"), r.has("http2Error")].filter { $0 }.count
            if set == 0 { r.ctx.error(r.path, "one of httpStatus, grpcStatus, http2Error is required") }
            if set > 1 { r.ctx.error(r.path, "only one of httpStatus, grpcStatus, http2Error may be set") }
            return v
        }
    }

    static func decode(_ r: ObjectReader) -> HTTPFaultInjection {
        let v = HTTPFaultInjection(delay: r.object("delay", Delay.decode), abort: r.object("abort", Abort.decode))
        if v.delay == nil && v.abort == nil && !r.has("delay") && !r.has("abort") {
            r.ctx.error(r.path, "one of delay, abort is required")
        }
        return v
    }
}

public struct HTTPMirrorPolicy: Sendable, Hashable {
    public var destination: Destination
    public var percentage: Percent?

    static func decode(_ r: ObjectReader) -> HTTPMirrorPolicy {
        HTTPMirrorPolicy(destination: r.object("destination", required: true, Destination.decode) ?? Destination(host: ""),
                         percentage: r.object("percentage", Percent.decode))
    }
}

public struct CorsPolicy: Sendable, Hashable {
    public var allowOrigins: [StringMatch]
    /// Deprecated exact-origin list.
    public var allowOrigin: [String]
    public var allowMethods: [String]
    public var allowHeaders: [String]
    public var exposeHeaders: [String]
    public var maxAge: ConfigDuration?
    public var allowCredentials: Bool?
    /// UNSPECIFIED, FORWARD or IGNORE
    public var unmatchedPreflights: String?

    static func decode(_ r: ObjectReader) -> CorsPolicy {
        CorsPolicy(allowOrigins: r.objectList("allowOrigins", StringMatch.decode) ?? [], allowOrigin: r.stringList("allowOrigin") ?? [],
                   allowMethods: r.stringList("allowMethods") ?? [], allowHeaders: r.stringList("allowHeaders") ?? [],
                   exposeHeaders: r.stringList("exposeHeaders") ?? [], maxAge: r.duration("maxAge"),
                   allowCredentials: r.bool("allowCredentials"),
                   unmatchedPreflights: r.enumValue("unmatchedPreflights", ["UNSPECIFIED", "FORWARD", "IGNORE"]))
    }
}

/// TLS and TCP routes: decoded and validated so resources load; the proxy does not act on them yet.
public struct TLSRoute: Sendable, Hashable {
    public var match: [TLSMatchAttributes]
    public var route: [RouteDestination]

    static func decode(_ r: ObjectReader) -> TLSRoute {
        TLSRoute(match: r.objectList("match", required: true, TLSMatchAttributes.decode) ?? [],
                 route: r.objectList("route", RouteDestination.decode) ?? [])
    }
}

public struct TLSMatchAttributes: Sendable, Hashable {
    public var sniHosts: [String]
    public var destinationSubnets: [String]
    public var port: Int?
    public var sourceLabels: [String: String]
    public var gateways: [String]
    public var sourceNamespace: String?

    static func decode(_ r: ObjectReader) -> TLSMatchAttributes {
        TLSMatchAttributes(sniHosts: r.stringList("sniHosts", required: true) ?? [], destinationSubnets: r.stringList("destinationSubnets") ?? [],
                           port: r.port("port"), sourceLabels: r.stringMap("sourceLabels") ?? [:], gateways: r.stringList("gateways") ?? [],
                           sourceNamespace: r.string("sourceNamespace"))
    }
}

public struct TCPRoute: Sendable, Hashable {
    public var match: [L4MatchAttributes]
    public var route: [RouteDestination]

    static func decode(_ r: ObjectReader) -> TCPRoute {
        TCPRoute(match: r.objectList("match", L4MatchAttributes.decode) ?? [], route: r.objectList("route", RouteDestination.decode) ?? [])
    }
}

public struct L4MatchAttributes: Sendable, Hashable {
    public var destinationSubnets: [String]
    public var port: Int?
    public var sourceSubnet: String?
    public var sourceLabels: [String: String]
    public var gateways: [String]
    public var sourceNamespace: String?

    static func decode(_ r: ObjectReader) -> L4MatchAttributes {
        L4MatchAttributes(destinationSubnets: r.stringList("destinationSubnets") ?? [], port: r.port("port"),
                          sourceSubnet: r.string("sourceSubnet"), sourceLabels: r.stringMap("sourceLabels") ?? [:],
                          gateways: r.stringList("gateways") ?? [], sourceNamespace: r.string("sourceNamespace"))
    }
}

public struct RouteDestination: Sendable, Hashable {
    public var destination: Destination
    public var weight: Int?

    static func decode(_ r: ObjectReader) -> RouteDestination {
        RouteDestination(destination: r.object("destination", required: true, Destination.decode) ?? Destination(host: ""),
                         weight: r.int("weight", min: 0, max: 100))
    }
}
