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
    /// Everything the rule does besides choosing a destination, compiled once (Actions/RouteActions.swift).
    public let actions: RouteActions
    private let cumulative: [Int]

    init(virtualService: ResourceKey, ruleIndex: Int, rule: HTTPRoute, destinations: [WeightedCluster], mirrors: [MirrorTarget],
         actions: RouteActions) {
        self.actions = actions
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
        let i = pickDestination(random: random)
        return i >= 0 ? destinations[i].cluster : -1
    }

    /// The same weighted choice as an index into `destinations` (for `actions.requestHeaders(destination:)`),
    /// -1 when there is none. Envoy's weighted clusters: `random % total` falls in one destination's range.
    public func pickDestination(random: UInt32) -> Int {
        if destinations.count <= 1 { return destinations.isEmpty ? -1 : 0 }
        guard let total = cumulative.last, total > 0 else { return 0 }
        let r = Int(random % UInt32(total))
        for (i, c) in cumulative.enumerated() where r < c { return i }
        return destinations.count - 1
    }
}

public enum RouteDecision: Sendable {
    case noRoute
    case route(RouteEntry)
}

/// One `match` entry, compiled. All conditions ANDed. A class, filled in by Snapshot.compile and never
/// changed after: trying a rule then costs one reference, not a copy of every field (10 000 rules
/// spent most of their time retaining fields of copied structs).
final class CompiledMatch: @unchecked Sendable {
    struct Named: Sendable {
        var name: String
        var matcher: StringMatcher
        /// Index of this header name in the request's header cache (RequestContext); -1: not cached.
        var slot: Int = -1
    }

    var uri: StringMatcher?
    var ignoreUriCase = false
    /// What RouteMatchResult.matchedPrefix reports: the `uri.prefix` as written, or "/" when the entry
    /// has no `uri` condition (Istio gives Envoy a prefix "/" route then, and rewrites act on it).
    var matchedPrefix: String? = "/"
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

    /// Why this entry does not match (the first failing condition), or nil when it matches. For explain.
    func failure<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> String? {
        func show(_ v: String?) -> String { v.map { "\"\($0)\"" } ?? "absent" }
        if let port, req.port != port { return "port \(req.port) is not \(port)" }
        if let uri, !uriMatches(uri, req, &ctx) { return "uri \(show(ctx.path(req))) does not match \(uri)" }
        if let scheme, !scheme.matches(ctx.scheme(req)) { return "scheme \(show(ctx.scheme(req))) does not match \(scheme)" }
        if let method, !method.matches(ctx.method(req)) { return "method \(show(ctx.method(req))) does not match \(method)" }
        if let authority, !authority.matches(ctx.authority(req)) {
            return "authority \(show(ctx.authority(req))) does not match \(authority)"
        }
        for h in headers {
            let v = ctx.header(h.name, slot: h.slot, req)
            if !h.matcher.matches(v) { return "header \(h.name) \(show(v)) does not match \(h.matcher)" }
        }
        for h in withoutHeaders {
            let v = ctx.header(h.name, slot: h.slot, req)
            if Self.withoutMatches(h, v) { return "header \(h.name) \(show(v)) matches withoutHeaders \(h.matcher)" }
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
        if let uri, !uriMatches(uri, req, &ctx) { return false }
        if let scheme, !scheme.matches(ctx.scheme(req)) { return false }
        if let method, !method.matches(ctx.method(req)) { return false }
        if let authority, !authority.matches(ctx.authority(req)) { return false }
        for h in headers where !h.matcher.matches(ctx.header(h.name, slot: h.slot, req)) { return false }
        for h in withoutHeaders where Self.withoutMatches(h, ctx.header(h.name, slot: h.slot, req)) { return false }
        for q in queryParams where !q.matcher.matches(ctx.queryParam(q.name, req)) { return false }
        for c in cookies where !c.matcher.matches(ctx.cookie(c.name, req)) { return false }
        return true
    }

    /// Envoy matches a prefix against the whole :path (query included), exact and regex against the path
    /// without its query; `ignoreUriCase` applies to exact and prefix, never to a regex.
    private func uriMatches<R: RouteRequest>(_ uri: StringMatcher, _ req: R, _ ctx: inout RequestContext) -> Bool {
        switch uri {
        case .prefix(let p): return (ignoreUriCase ? ctx.lowercasedPath(req) : ctx.path(req)).hasPrefix(p)
        case .exact: return uri.matches(ignoreUriCase ? ctx.lowercasedPathWithoutQuery(req) : ctx.pathWithoutQuery(req))
        default: return uri.matches(ctx.pathWithoutQuery(req))
        }
    }

    /// Istio sets Envoy's treat_missing_header_as_empty on withoutHeaders (except presence tests): an
    /// absent header is compared as "" — so `withoutHeaders: {x: {exact: ""}}` excludes requests without x.
    private static func withoutMatches(_ h: Named, _ value: String?) -> Bool {
        if case .present = h.matcher { return value != nil }
        return h.matcher.matches(value ?? "")
    }

    /// When this entry's only condition is one header (or cookie) `exact` value, the key and the value:
    /// runs of such rules are looked up in a dictionary instead of compared one by one (RuleList).
    var soleExact: (key: ExactKey, value: String)? {
        guard port == nil, uri == nil, scheme == nil, method == nil, authority == nil,
              withoutHeaders.isEmpty, queryParams.isEmpty, headers.count + cookies.count == 1 else { return nil }
        if let h = headers.first, case .exact(let v) = h.matcher { return (.header(h.name, slot: h.slot), v) }
        if let c = cookies.first, case .exact(let v) = c.matcher { return (.cookie(c.name), v) }
        return nil
    }
}

enum ExactKey: Hashable, Sendable {
    case header(String, slot: Int)
    case cookie(String)
}

/// A rule as it applies on one listener: the match entries that apply there (ORed).
final class CompiledRule: Sendable {
    let entry: RouteEntry
    let matches: [CompiledMatch]

    init(entry: RouteEntry, matches: [CompiledMatch]) {
        self.entry = entry
        self.matches = matches
    }

    func matches<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> Bool { firstMatch(req, &ctx) != nil }

    /// The index of the first match entry that matches.
    func firstMatch<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> Int? {
        for i in matches.indices where matches[i].matches(req, &ctx) { return i }
        return nil
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

/// The ordered rules of one virtual host, with the program that finds the first match. Rules are tried
/// one by one, except that a run of consecutive rules each testing only `exact` equality of the same
/// header or cookie (the feature-branch runbook adds one per session) is a single dictionary lookup: the
/// first rule of the run whose value equals the request's is the one a linear scan would find.
struct RuleList: Sendable {
    let rules: [CompiledRule]
    private let steps: [Step]

    private enum Step: Sendable {
        /// A rule tried in full — after its gate, when it has one.
        case rule(Int, gate: Gate?)
        case exactRun(key: ExactKey, first: [String: Int])
    }

    /// The first header condition of a single-entry rule, kept inline in the step: most rules of a long
    /// scan fail on it, and checking it here skips loading the rule's objects (and their reference
    /// counting), which was most of the cost of a scan.
    private struct Gate: Sendable {
        var slot: Int
        var matcher: StringMatcher
    }

    private static func gate(_ rule: CompiledRule) -> Gate? {
        guard rule.matches.count == 1, let h = rule.matches[0].headers.first, h.slot >= 0 else { return nil }
        return Gate(slot: h.slot, matcher: h.matcher)
    }

    /// Shorter runs are scanned: a few string compares cost less than hashing the value.
    static let minimumRun = 4

    init(_ rules: [CompiledRule]) {
        self.rules = rules
        var steps: [Step] = []
        var i = 0
        while i < rules.count {
            guard rules[i].matches.count == 1, let (key, _) = rules[i].matches[0].soleExact else {
                steps.append(.rule(i, gate: Self.gate(rules[i]))); i += 1; continue
            }
            var j = i
            var first: [String: Int] = [:]
            while j < rules.count, rules[j].matches.count == 1, let (k, v) = rules[j].matches[0].soleExact, k == key {
                if first[v] == nil { first[v] = j }
                j += 1
            }
            if j - i >= Self.minimumRun {
                steps.append(.exactRun(key: key, first: first))
            } else {
                steps += (i..<j).map { .rule($0, gate: Self.gate(rules[$0])) }
            }
            i = j
        }
        self.steps = steps
    }

    /// The first rule that matches and the index of its match entry that did.
    func resolve<R: RouteRequest>(_ req: R, _ ctx: inout RequestContext) -> (rule: CompiledRule, match: Int)? {
        for step in steps {
            switch step {
            case .rule(let i, let gate):
                if let gate, !gate.matcher.matches(ctx.header(slot: gate.slot, req)) { continue }
                let rule = rules[i]
                if let m = rule.firstMatch(req, &ctx) { return (rule, m) }
            case .exactRun(let key, let first):
                let value: String?
                switch key {
                case .header(let name, let slot): value = ctx.header(name, slot: slot, req)
                case .cookie(let name): value = ctx.cookie(name, req)
                }
                if let value, let i = first[value] { return (rules[i], 0) }
            }
        }
        return nil
    }
}

/// Gives each header name used by a condition a slot in the per-request header cache, so a header is
/// looked up (and its String made) once per request however many rules test it.
final class HeaderSlots {
    private var slots: [String: Int] = [:]
    /// Indexed by slot.
    private(set) var names: [String] = []

    func slot(_ name: String) -> Int {
        if let s = slots[name] { return s }
        slots[name] = names.count
        names.append(name)
        return names.count - 1
    }
}

/// Per-request values computed at most once, only when a condition needs them.
struct RequestContext {
    private enum Cached {
        case unknown
        case absent
        case value(String)
    }

    /// Header names by slot (Snapshot.headerNames).
    private let headerNames: [String]
    /// Allocated on the first header condition.
    private var headerCache: [Cached] = []
    private var fullPath: String?
    private var lowerPath: String?
    private var path: String?
    private var lowerPathNoQuery: String?
    private var methodValue: String?
    private var authorityValue: String?
    private var schemeValue: String?
    private var query: [(String, String)]?
    private var cookieList: [(String, String)]?

    init(headerNames: [String] = []) { self.headerNames = headerNames }

    mutating func header<R: RouteRequest>(_ name: String, slot: Int, _ req: R) -> String? {
        guard slot >= 0, slot < headerNames.count else { return req.routeHeader(name) }
        return header(slot: slot, req)
    }

    /// `slot` must be a slot of this snapshot's headerNames.
    mutating func header<R: RouteRequest>(slot: Int, _ req: R) -> String? {
        if headerCache.isEmpty { headerCache = Array(repeating: .unknown, count: headerNames.count) }
        switch headerCache[slot] {
        case .absent: return nil
        case .value(let v): return v
        case .unknown:
            let v = req.routeHeader(headerNames[slot])
            headerCache[slot] = v.map { .value($0) } ?? .absent
            return v
        }
    }

    mutating func path<R: RouteRequest>(_ req: R) -> String {
        if let fullPath { return fullPath }
        let p = req.path
        fullPath = p
        return p
    }

    mutating func lowercasedPath<R: RouteRequest>(_ req: R) -> String {
        if let lowerPath { return lowerPath }
        let p = path(req).lowercased()
        lowerPath = p
        return p
    }

    mutating func lowercasedPathWithoutQuery<R: RouteRequest>(_ req: R) -> String {
        if let lowerPathNoQuery { return lowerPathNoQuery }
        let p = pathWithoutQuery(req).lowercased()
        lowerPathNoQuery = p
        return p
    }

    mutating func method<R: RouteRequest>(_ req: R) -> String {
        if let methodValue { return methodValue }
        let v = req.method
        methodValue = v
        return v
    }

    mutating func authority<R: RouteRequest>(_ req: R) -> String {
        if let authorityValue { return authorityValue }
        let v = req.authority
        authorityValue = v
        return v
    }

    mutating func scheme<R: RouteRequest>(_ req: R) -> String {
        if let schemeValue { return schemeValue }
        let v = req.scheme
        schemeValue = v
        return v
    }

    mutating func pathWithoutQuery<R: RouteRequest>(_ req: R) -> String {
        if let path { return path }
        let p = self.path(req)
        let v = p.firstIndex(of: "?").map { String(p[..<$0]) } ?? p
        path = v
        return v
    }

    /// Envoy's parseQueryString: split on `&`, name and value at the first `=` (a bare `key` has the
    /// value ""), no percent-decoding; the first occurrence of a name is the one matched.
    mutating func queryParam<R: RouteRequest>(_ name: String, _ req: R) -> String? {
        if query == nil {
            var out: [(String, String)] = []
            let p = self.path(req)
            if let q = p.firstIndex(of: "?") {
                var rest = p[p.index(after: q)...]
                if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
                for pair in rest.split(separator: "&", omittingEmptySubsequences: true) {
                    if let eq = pair.firstIndex(of: "=") {
                        out.append((String(pair[..<eq]), String(pair[pair.index(after: eq)...])))
                    } else {
                        out.append((String(pair), ""))
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
