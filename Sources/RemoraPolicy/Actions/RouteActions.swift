import RemoraConfig

/// What to do with a request once its rule matched, compiled once per RouteEntry in Snapshot.compile:
/// everything a worker needs is precomputed, so the request path only indexes and compares.
public final class RouteActions: Sendable {
    /// Per destination (parallel to RouteEntry.destinations): route-level ops then that destination's.
    private let requestOps: [HeaderOps]
    private let responseOps: [HeaderOps]
    /// Route level only (rules without destinations: redirect, directResponse).
    private let routeRequestOps: HeaderOps
    private let routeResponseOps: HeaderOps
    /// Per destination: a `host`/`:authority` set in that destination's headers (used only when the
    /// route level rewrites nothing, as Istio does).
    private let destinationAuthority: [String?]
    private let pathRewrite: PathRewrite?
    private let redirectSpec: CompiledRedirect?
    private let faultSpec: CompiledFault?
    /// Parallel to RouteEntry.mirrors.
    private let mirrorTargets: [(cluster: Int, fraction: Fraction)]

    /// `rewrite.authority`, else a `host`/`:authority` in the rule's `headers.request.set` (or `add`).
    public let authorityRewrite: String?
    /// For a `directResponse` rule: status and body bytes (string, or base64 `bytes`). nil otherwise.
    public let directResponse: (status: Int, body: [UInt8])?
    public let cors: CompiledCors?

    /// Compiles `rule`; errors (bad gRPC status name, bad base64, bad rewrite substitution) go to `fail`
    /// with their field path under `path` ("spec.http[2]").
    init(rule: HTTPRoute, mirrors: [MirrorTarget], path: String, fail: (String, String) -> Void) {
        let (routeReq, routeAuthority) = HeaderOps.compile(rule.headers?.request)
        let (routeResp, _) = HeaderOps.compile(rule.headers?.response)
        routeRequestOps = routeReq
        routeResponseOps = routeResp
        var req: [HeaderOps] = []
        var resp: [HeaderOps] = []
        var auth: [String?] = []
        for d in rule.route {
            let (dq, da) = HeaderOps.compile(d.headers?.request)
            let (dr, _) = HeaderOps.compile(d.headers?.response)
            req.append(routeReq.merged(with: dq))
            resp.append(routeResp.merged(with: dr))
            auth.append(da)
        }
        requestOps = req
        responseOps = resp
        destinationAuthority = auth
        authorityRewrite = rule.rewrite?.authority.flatMap { $0.isEmpty ? nil : $0 } ?? routeAuthority

        pathRewrite = PathRewrite.compile(rule.rewrite, path: "\(path).rewrite", fail: fail)
        redirectSpec = rule.redirect.map(CompiledRedirect.init)
        faultSpec = CompiledFault.compile(rule.fault, path: "\(path).fault", fail: fail)
        cors = CompiledCors.compile(rule.corsPolicy, path: "\(path).corsPolicy", fail: fail)
        // Istio: an explicit 0 % mirrors nothing; the per-million fraction keeps fractional percentages.
        mirrorTargets = mirrors.map { m in
            let pct = max(0, min(100, m.percentage))
            return (m.cluster, Fraction(numerator: UInt32(pct * 10_000), denominator: 1_000_000))
        }

        if let d = rule.directResponse {
            var body: [UInt8] = []
            if let s = d.body?.string {
                body = Array(s.utf8)
            } else if let b = d.body?.bytes {
                if let bytes = Base64.decode(b) {
                    body = bytes
                } else {
                    fail("\(path).directResponse.body.bytes", "not valid base64")
                }
            }
            directResponse = (d.status, body)
        } else {
            directResponse = nil
        }
    }

    /// Route-level ops followed by the chosen destination's ops (destination index into entry.destinations).
    public func requestHeaders(destination: Int) -> HeaderOps {
        destination >= 0 && destination < requestOps.count ? requestOps[destination] : routeRequestOps
    }

    public func responseHeaders(destination: Int) -> HeaderOps {
        destination >= 0 && destination < responseOps.count ? responseOps[destination] : routeResponseOps
    }

    /// The authority to send upstream for this destination, or nil to keep the request's: the route-level
    /// rewrite wins over a destination's `host` header (Istio's processDestination).
    public func authorityRewrite(destination: Int) -> String? {
        if let a = authorityRewrite { return a }
        return destination >= 0 && destination < destinationAuthority.count ? destinationAuthority[destination] : nil
    }

    public var hasPathRewrite: Bool { pathRewrite != nil }

    /// New path (with the original query kept) or nil when unchanged. `rewrite.uri` replaces the matched prefix when the
    /// match was a uri prefix, else the whole path (Istio/Envoy); `uriRegexRewrite` is RE2 replace with \1-style captures
    /// applied to the path without its query (Envoy regex_rewrite).
    /// `matchedPrefix` is RouteMatchResult.matchedPrefix: "/" for a match entry without a `uri` condition,
    /// because that is the Envoy route Istio generates for it (so `uri: /v2/` turns `/a` into `/v2/a`).
    public func rewritePath(_ path: String, matchedPrefix: String?) -> String? {
        guard let pathRewrite else { return nil }
        let out = pathRewrite.apply(path, matchedPrefix: matchedPrefix)
        return out == path ? nil : out
    }

    /// For a `redirect` rule: status (redirectCode, default 301) and Location (scheme, authority, port/derivePort, uri).
    /// nil for other rules. As in Istio, `uri` replaces the whole path even when the rule matched by prefix
    /// (`matchedPrefix` is accepted and unused); the request's query is kept unless `uri` has one.
    public func redirect(scheme: String, authority: String, path: String, matchedPrefix: String?) -> (status: Int, location: String)? {
        redirect(scheme: scheme, authority: authority, path: path, matchedPrefix: matchedPrefix, listenerPort: nil)
    }

    /// The same, with the listener port Istio uses for `derivePort: FROM_REQUEST_PORT` (without it: the
    /// authority's port).
    public func redirect(scheme: String, authority: String, path: String, matchedPrefix: String?,
                         listenerPort: Int?) -> (status: Int, location: String)? {
        guard let r = redirectSpec else { return nil }
        return (r.status, r.location(scheme: scheme, authority: authority, path: path, listenerPort: listenerPort))
    }

    /// Fault injection (delay with percentage, abort with httpStatus or grpcStatus and percentage); pass two uniformly
    /// random values so tests are deterministic. random1 decides the delay, random2 the abort.
    public func fault(random1: UInt32, random2: UInt32) -> FaultDecision {
        faultSpec?.decide(random1: random1, random2: random2) ?? .none
    }

    public var hasFault: Bool { faultSpec != nil }

    /// The mirror clusters (indices into Snapshot.clusters) to shadow this request to, given a random value per target
    /// (called with the target's index into RouteEntry.mirrors).
    public func mirrorClusters(random: (Int) -> UInt32) -> [Int] {
        if mirrorTargets.isEmpty { return [] }
        var out: [Int] = []
        for (i, m) in mirrorTargets.enumerated() where m.fraction.numerator > 0 && m.fraction.contains(random(i)) {
            out.append(m.cluster)
        }
        return out
    }
}
