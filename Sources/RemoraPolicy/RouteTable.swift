import RemoraConfig

public struct WeightedCluster: Sendable {
    /// Index into Snapshot.clusters.
    public var cluster: Int
    public var weight: Int

    public init(cluster: Int, weight: Int) {
        self.cluster = cluster
        self.weight = weight
    }
}

/// A mirror target of a rule (`mirror` + `mirrorPercentage`, or each of `mirrors`).
public struct MirrorTarget: Sendable {
    public var cluster: Int
    /// 0...100; Istio's default is 100.
    public var percentage: Double
}

/// One VirtualService http rule, compiled: what to do once it matched.
public final class RouteEntry: Sendable {
    public enum Action: Sendable {
        case route
        case redirect(HTTPRedirect)
        case directResponse(HTTPDirectResponse)
        /// A `delegate` rule: not supported yet (it routes nowhere).
        case delegate(Delegate)
    }

    /// "default/adservice#0" (namespace/name#rule-index, or #rule-name when the rule has a `name`).
    public let name: String
    public let destinations: [WeightedCluster]
    /// VirtualService http[].timeout; nil when absent or 0s (Istio: no timeout).
    public let timeoutMs: Int?
    public let virtualService: ResourceKey
    public let ruleIndex: Int
    /// The whole rule as configured (rewrite, retries, fault, headers, corsPolicy, …).
    public let rule: HTTPRoute
    public let action: Action
    public let mirrors: [MirrorTarget]
    private let cumulative: [Int]

    init(virtualService: ResourceKey, ruleIndex: Int, rule: HTTPRoute, destinations: [WeightedCluster], mirrors: [MirrorTarget]) {
        self.virtualService = virtualService
        self.ruleIndex = ruleIndex
        self.rule = rule
        self.name = "\(virtualService.namespace)/\(virtualService.name)#\(rule.name ?? String(ruleIndex))"
        self.destinations = destinations
        self.mirrors = mirrors
        if let t = rule.timeout, t.nanoseconds > 0 { timeoutMs = t.milliseconds } else { timeoutMs = nil }
        if let r = rule.redirect { action = .redirect(r) }
        else if let d = rule.directResponse { action = .directResponse(d) }
        else if let d = rule.delegate { action = .delegate(d) }
        else { action = .route }
        var acc = 0
        cumulative = destinations.map { acc += max(0, $0.weight); return acc }
    }

    /// Weighted choice, returning a cluster index (into Snapshot.clusters); the only destination
    /// when there is one. Pass a uniformly random value. Zero-weight destinations are never chosen.
    /// Precondition: `destinations` is not empty (true for every entry `Snapshot.route` returns).
    public func pickCluster(random: UInt32) -> Int {
        if destinations.count == 1 { return destinations[0].cluster }
        guard let total = cumulative.last, total > 0 else { return destinations.first?.cluster ?? -1 }
        let r = Int(random % UInt32(total))
        for (i, c) in cumulative.enumerated() where r < c { return destinations[i].cluster }
        return destinations[destinations.count - 1].cluster
    }
}

public enum RouteDecision: Sendable {
    case noRoute
    case route(RouteEntry)
}

/// One `match` entry, compiled. All conditions ANDed.
struct CompiledMatch: Sendable {
    struct Named: Sendable {
        var name: String
        var matcher: StringMatcher
    }

    var uri: StringMatcher?
    var ignoreUriCase = false
    var scheme: StringMatcher?
    var method: StringMatcher?
    var authority: StringMatcher?
    var headers: [Named] = []
    var withoutHeaders: [Named] = []
    var queryParams: [Named] = []
    var cookies: [Named] = []
    var port: Int?
    /// Gateways ("ns/name" or "mesh") where this entry applies; resolved per listener at compile time.
    var gateways: Set<String> = []

    static let matchAll = CompiledMatch()

    /// Why this entry does not match (the first failing condition), or nil when it matches. For explain.
    func failure<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> String? {
        func show(_ v: String?) -> String { v.map { "\"\($0)\"" } ?? "absent" }
        if let port, req.port != port { return "port \(req.port) is not \(port)" }
        if let uri {
            let one = CompiledMatch(uri: uri, ignoreUriCase: ignoreUriCase)
            if !one.matches(req, &ctx) { return "uri \(show(req.path)) does not match \(uri)" }
        }
        if let scheme, !scheme.matches(req.scheme) { return "scheme \(show(req.scheme)) does not match \(scheme)" }
        if let method, !method.matches(req.method) { return "method \(show(req.method)) does not match \(method)" }
        if let authority, !authority.matches(req.authority) { return "authority \(show(req.authority)) does not match \(authority)" }
        for h in headers {
            let v = req.routeHeader(h.name)
            if !h.matcher.matches(v) { return "header \(h.name) \(show(v)) does not match \(h.matcher)" }
        }
        for h in withoutHeaders {
            let v = req.routeHeader(h.name)
            if h.matcher.matches(v) { return "header \(h.name) \(show(v)) matches withoutHeaders \(h.matcher)" }
        }
        for q in queryParams {
            let v = ctx.queryParam(q.name, req)
            if !q.matcher.matches(v) { return "query parameter \(q.name) \(show(v)) does not match \(q.matcher)" }
        }
        for c in cookies {
            let v = ctx.cookie(c.name, req)
            if !c.matcher.matches(v) { return "cookie \(c.name) \(show(v)) does not match \(c.matcher)" }
        }
        return nil
    }

    func matches<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> Bool {
        if let port, req.port != port { return false }
        if let uri {
            switch uri {
            case .prefix(let p):
                // Envoy matches a prefix against the whole :path (query included), exact and regex without the query.
                let path = ignoreUriCase ? req.path.lowercased() : req.path
                if !path.hasPrefix(p) { return false }
            case .exact:
                if !uri.matches(ignoreUriCase ? ctx.pathWithoutQuery(req).lowercased() : ctx.pathWithoutQuery(req)) { return false }
            default:
                if !uri.matches(ctx.pathWithoutQuery(req)) { return false }
            }
        }
        if let scheme, !scheme.matches(req.scheme) { return false }
        if let method, !method.matches(req.method) { return false }
        if let authority, !authority.matches(req.authority) { return false }
        for h in headers where !h.matcher.matches(req.routeHeader(h.name)) { return false }
        for h in withoutHeaders where h.matcher.matches(req.routeHeader(h.name)) { return false }
        for q in queryParams where !q.matcher.matches(ctx.queryParam(q.name, req)) { return false }
        for c in cookies where !c.matcher.matches(ctx.cookie(c.name, req)) { return false }
        return true
    }
}

/// A rule as it applies on one listener: the match entries that apply there (ORed).
final class CompiledRule: Sendable {
    let entry: RouteEntry
    let matches: [CompiledMatch]

    init(entry: RouteEntry, matches: [CompiledMatch]) {
        self.entry = entry
        self.matches = matches
    }

    func matches<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> Bool {
        for m in matches where m.matches(req, &ctx) { return true }
        return false
    }

    /// One reason per match entry (ORed), or [] when the rule matches.
    func failures<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> [String] {
        var out: [String] = []
        for m in matches {
            guard let f = m.failure(req, &ctx) else { return [] }
            out.append(matches.count > 1 ? "match[\(out.count)]: \(f)" : f)
        }
        return out
    }
}

/// Per-request values computed at most once, only when a condition needs them.
struct RequestContext {
    private var path: String?
    private var query: [(String, String)]?
    private var cookieList: [(String, String)]?

    mutating func pathWithoutQuery<R: RouteRequest>(_ req: R) -> String {
        if let path { return path }
        let p = req.path
        let v = p.firstIndex(of: "?").map { String(p[..<$0]) } ?? p
        path = v
        return v
    }

    mutating func queryParam<R: RouteRequest>(_ name: String, _ req: R) -> String? {
        if query == nil {
            var out: [(String, String)] = []
            let p = req.path
            if let q = p.firstIndex(of: "?") {
                var rest = p[p.index(after: q)...]
                if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
                for pair in rest.split(separator: "&", omittingEmptySubsequences: true) {
                    if let eq = pair.firstIndex(of: "=") {
                        out.append((percentDecode(pair[..<eq]), percentDecode(pair[pair.index(after: eq)...])))
                    } else {
                        out.append((percentDecode(pair), ""))
                    }
                }
            }
            query = out
        }
        return query!.first { $0.0 == name }?.1
    }

    /// One cookie of the Cookie header by name: the header is split on `;` (and `,` between
    /// joined repeated headers), each part trimmed.
    mutating func cookie<R: RouteRequest>(_ name: String, _ req: R) -> String? {
        if cookieList == nil {
            var out: [(String, String)] = []
            if let h = req.header("cookie") {
                for part in h.split(whereSeparator: { $0 == ";" || $0 == "," }) {
                    let t = part.trimmingSpaces()
                    if let eq = t.firstIndex(of: "=") {
                        var v = t[t.index(after: eq)...].trimmingSpaces()
                        if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = v.dropFirst().dropLast() }
                        out.append((String(t[..<eq].trimmingSpaces()), String(v)))
                    } else if !t.isEmpty {
                        out.append((String(t), ""))
                    }
                }
            }
            cookieList = out
        }
        return cookieList!.first { $0.0 == name }?.1
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}

/// Percent-decoding of query components ('+' is a space in forms).
func percentDecode(_ s: Substring) -> String {
    guard s.contains("%") || s.contains("+") else { return String(s) }
    var bytes: [UInt8] = []
    var it = Array(s.utf8)[...]
    while let b = it.popFirst() {
        if b == UInt8(ascii: "+") { bytes.append(UInt8(ascii: " ")); continue }
        if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
            bytes.append(v)
            it = it.dropFirst(2)
            continue
        }
        bytes.append(b)
    }
    return String(decoding: bytes, as: UTF8.self)
}
