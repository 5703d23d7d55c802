import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraPolicy
import RemoraTLS
import RemoraResilience

/// What happens to a routed request, decided in Istio's HTTP filter order — fault, then
/// CORS, then the router (redirect, directResponse, forwarding) — for both downstream
/// protocols.
enum ExchangeStep {
    /// A reply the configuration asks for: fault abort, CORS preflight, redirect, directResponse.
    case respond(CustomReply)
    /// Hold the request for a fault delay, then go on (or abort).
    case delay(ms: Int, abort: CustomReply?)
    case forward
}

struct CustomReply {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var contentType: StaticString?

    /// Envoy's fault abort: the status asked for, or for `grpcStatus` a 200 carrying it.
    static func faultAbort(_ status: Int, _ grpc: Int?) -> CustomReply {
        if let g = grpc {
            return CustomReply(status: 200, headers: [("grpc-status", String(g)), ("grpc-message", "fault filter abort")],
                               body: [], contentType: "application/grpc")
        }
        return CustomReply(status: status, headers: [], body: Array("fault filter abort".utf8), contentType: "text/plain")
    }
}

enum ExchangePlan {
    /// The fault filter: nil when no fault applies to this request.
    static func fault(_ match: RouteMatchResult, random: inout FastRandom) -> ExchangeStep? {
        switch match.entry.actions.fault(random1: random.next32(), random2: random.next32()) {
        case .none: return nil
        case .abort(let status, let grpc): return .respond(.faultAbort(status, grpc))
        case .delay(let ms): return .delay(ms: ms, abort: nil)
        case .delayThenAbort(let ms, let status, let grpc): return .delay(ms: ms, abort: .faultAbort(status, grpc))
        }
    }

    /// CORS, then the rule's action. `corsHeaders` receives what the response must carry.
    static func router<R: RouteRequest>(_ match: RouteMatchResult, _ req: R, corsHeaders: inout [(String, String)]) -> ExchangeStep {
        let actions = match.entry.actions
        if let cors = actions.cors {
            let origin = req.header("origin")
            let preflight = cors.preflight(method: req.method, origin: origin,
                                           requestMethod: req.header("access-control-request-method"),
                                           requestHeaders: req.header("access-control-request-headers"))
            if case .respond(let headers) = preflight {
                return .respond(CustomReply(status: 200, headers: headers, body: [], contentType: nil))
            }
            corsHeaders = cors.responseHeaders(origin: origin)
        }
        if let r = actions.redirect(scheme: req.scheme, authority: req.authority, path: req.path,
                                    matchedPrefix: match.matchedPrefix, listenerPort: req.port) {
            return .respond(CustomReply(status: r.status, headers: [("location", r.location)], body: [], contentType: nil))
        }
        if let d = actions.directResponse {
            return .respond(CustomReply(status: d.status, headers: [], body: d.body, contentType: "text/plain"))
        }
        return .forward
    }
}

/// Everything decided before a request goes upstream.
struct Forwarding {
    let destination: Int
    let clusterIndex: Int
    let cluster: ClusterTarget
    /// The endpoint of the attempt in progress, and its index in the cluster (host index).
    var endpoint: EndpointRef
    var hostIndex: Int
    /// The route's retry policy towards this cluster (Istio's default when none is set).
    let retryPolicy: RetryPolicy
    /// The consistent-hash key of the request, when the cluster hashes.
    let hash: UInt64?
    /// Seeds the x-request-id of every attempt, so retries carry the same id.
    let requestIDSeed: UInt64
    var ctx: HeadWriter.RequestContext
    let responseOps: HeaderOps
    let mirrorClusters: [Int]
    /// The route timeout, or a shorter `grpc-timeout` from the client.
    let timeoutMs: Int?
    let http2: Bool
    /// Upstream TLS for this protocol (nil: plain text).
    let tls: TLSClientContext?
}

enum ForwardPlan {
    case forward(Forwarding)
    case local(LocalReply)
}

extension ProxyWorker {
    /// Picks the destination and endpoint and works out the forwarded head.
    func planForward(_ match: RouteMatchResult, state st: ProxyState, request req: ParsedRequest,
                     peerIP: String, listener: ListenerSpec, downstreamH2: Bool) -> ForwardPlan {
        let entry = match.entry
        guard !entry.destinations.isEmpty else { return .local(.noRoute) }
        let destination = entry.pickDestination(random: random.next32())
        let clusterIndex = entry.destinations[destination].cluster
        let cluster = st.clusters[clusterIndex]
        var hash: UInt64?
        var setCookie: String?
        if let lb = cluster.resilience?.settings.loadBalancer, lb.isConsistentHash {
            let h = lb.requestHash(header: { req.header($0) }, cookieHeader: { req.header("cookie") }, sourceIP: { peerIP },
                                   path: { req.path }, connectionIdentity: { peerIP })
            hash = h?.hash
            setCookie = h?.setCookie?.headerValue
        }
        guard let (ep, hostIndex) = pickEndpoint(cluster: clusterIndex, in: st, hash: hash) else { return .local(.noHealthyUpstream) }
        let actions = entry.actions
        let head = req.head
        var ctx = HeadWriter.RequestContext(
            peerIP: peerIP, forwardedProto: req.scheme == "https" ? "https" : "http", edge: listener.kind == .gateway,
            path: req.pathRange,
            hostFallback: head.hostIndex == nil ? (req.authorityRange.map(req.string) ?? cluster.spec.host) : nil,
            pathRewrite: actions.rewritePath(req.path, matchedPrefix: match.matchedPrefix),
            authorityRewrite: actions.authorityRewrite(destination: destination),
            headerOps: actions.requestHeaders(destination: destination))
        let mirrorClusters = entry.mirrors.isEmpty || head.upgrade ? [] : actions.mirrorClusters { _ in self.random.next32() }
        if !mirrorClusters.isEmpty || accessLog != nil {
            // The primary and its shadows (and the access log line) carry the same request id.
            ctx.requestID = req.header("x-request-id") == nil ? RequestID.string(random: &random) : nil
        }
        var timeoutMs = entry.timeoutMs
        if let g = Grpc.timeoutMs(req), g < (timeoutMs ?? Int.max) { timeoutMs = max(1, g) }
        let http2: Bool = switch cluster.spec.upstreamProtocol {
        case .http1: false
        case .http2: !head.upgrade   // an Upgrade (WebSocket) request needs HTTP/1.1
        case .client: downstreamH2
        }
        var tls: TLSClientContext?
        if let u = cluster.tls {
            // Configured but not loadable: fail rather than send plain text.
            guard let c = http2 ? u.http2 : u.http1 else { return .local(.upstreamTLSFailure) }
            tls = c
        }
        var responseOps = actions.responseHeaders(destination: destination)
        if let c = setCookie { responseOps.add.append((name: "set-cookie", value: c)) }
        return .forward(Forwarding(destination: destination, clusterIndex: clusterIndex, cluster: cluster, endpoint: ep,
                                   hostIndex: hostIndex, retryPolicy: head.upgrade ? .disabled : retryPolicy(entry, cluster: cluster),
                                   hash: hash, requestIDSeed: random.next(),
                                   ctx: ctx, responseOps: responseOps,
                                   mirrorClusters: mirrorClusters, timeoutMs: timeoutMs, http2: http2, tls: tls))
    }

    /// Intercepted traffic that no rule routes: to the connection's original destination
    /// (Envoy's PassthroughCluster), or for the inbound listener to the local application
    /// at the original port (InboundPassthroughCluster).
    func planPassthrough(to target: SocketAddress, inbound: Bool, request req: ParsedRequest, peerIP: String,
                         listener: ListenerSpec) -> Forwarding {
        let cluster = passthroughCluster(target, inbound: inbound)
        let ep = cluster.endpoints[0]
        let head = req.head
        var ctx = HeadWriter.RequestContext(
            peerIP: peerIP, forwardedProto: "http", edge: false, path: req.pathRange,
            hostFallback: head.hostIndex == nil ? (req.authorityRange.map(req.string) ?? target.description) : nil)
        if accessLog != nil, req.header("x-request-id") == nil { ctx.requestID = RequestID.string(random: &random) }
        return Forwarding(destination: 0, clusterIndex: -1, cluster: cluster, endpoint: ep, hostIndex: 0, retryPolicy: .disabled,
                          hash: nil, requestIDSeed: random.next(), ctx: ctx, responseOps: HeaderOps(),
                          mirrorClusters: [], timeoutMs: nil, http2: false, tls: nil)
    }

    /// The passthrough cluster of one original destination, made once per worker (its
    /// endpoint id and metric names take process-wide locks) and kept while few.
    private func passthroughCluster(_ target: SocketAddress, inbound: Bool) -> ClusterTarget {
        let key = PassthroughKey(target: target, inbound: inbound)
        if let c = passthroughClusters[key] { return c }
        if passthroughClusters.count >= ProxyWorker.maxPassthroughClusters { passthroughClusters.removeAll() }
        let name = inbound ? "InboundPassthroughCluster" : "PassthroughCluster"
        let spec = ClusterSpec(name: name, host: name, port: target.port, subset: nil,
                               resolution: .staticEndpoints([Endpoint(address: target.ip, port: target.port)]))
        let ep = EndpointRef(address: target, poolID: registry.id(for: target))
        let c = ClusterTarget(spec: spec, endpoints: [ep], tls: nil, stats: StatsIDs(spec, names: registry.names), resilience: nil)
        passthroughClusters[key] = c
        return c
    }

    /// A shadow copy of the request to `cluster` (Envoy's shadowing: Host gets "-shadow").
    /// It never delays or affects the primary exchange.
    func startMirror(cluster: Int, state st: ProxyState, request req: ParsedRequest,
                     context: HeadWriter.RequestContext) -> MirrorConnection? {
        // Shadows go in plain text only: a TLS cluster is not mirrored.
        guard st.clusters[cluster].tls == nil, let (ep, _) = pickEndpoint(cluster: cluster, in: st),
              let m = MirrorConnection.start(worker: self, endpoint: ep) else { return nil }
        var ctx = context
        ctx.authorityRewrite = MirrorConnection.shadowHost(context.authorityRewrite ?? req.authority)
        ctx.connectionClose = true
        HeadWriter.writeRequest(req.head, buf: req.buf, ctx: ctx, into: m.outBuf, random: &random)
        m.flush()
        return m
    }
}
