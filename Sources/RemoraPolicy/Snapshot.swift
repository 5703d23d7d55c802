import RemoraConfig

/// An immutable, compiled configuration: everything a worker needs to route a request, built
/// once per configuration change and shared read-only by all workers.
public final class Snapshot: Sendable {
    public let settings: ProxySettings
    public let listeners: [ListenerSpec]
    public let clusters: [ClusterSpec]
    public let config: ConfigSet
    /// Every compiled http rule, in VirtualService load order then rule order.
    public let routeEntries: [RouteEntry]
    /// Parallel to `listeners`.
    let tables: [HostTable<RuleList>]
    /// Distinct header names in conditions, by slot of each request's header cache.
    let headerNames: [String]

    init(settings: ProxySettings, listeners: [ListenerSpec], clusters: [ClusterSpec], config: ConfigSet,
         routeEntries: [RouteEntry], tables: [HostTable<RuleList>], headerNames: [String] = []) {
        self.headerNames = headerNames
        self.settings = settings
        self.listeners = listeners
        self.clusters = clusters
        self.config = config
        self.routeEntries = routeEntries
        self.tables = tables
    }

    /// The defaults with no resources (no Gateway, no VirtualService): mesh listeners only.
    public static func empty() -> Snapshot {
        (try? compile(ConfigSet())) ?? Snapshot(settings: ProxySettings(), listeners: [], clusters: [], config: ConfigSet(), routeEntries: [], tables: [])
    }

    public func listenerIndex(named name: String) -> Int? { listeners.firstIndex { $0.name == name } }

    /// First match wins over the VirtualServices bound to this listener whose hosts match the
    /// authority (port stripped). A matched rule without destinations (redirect, directResponse,
    /// delegate: not served yet) is `.noRoute`; `matchedRule` returns it.
    public func route<R: RouteRequest>(listener: Int, _ request: R) -> RouteDecision {
        guard let entry = matchedRule(listener: listener, request), !entry.destinations.isEmpty else { return .noRoute }
        return .route(entry)
    }

    /// The first rule that matches, whatever its action.
    public func matchedRule<R: RouteRequest>(listener: Int, _ request: R) -> RouteEntry? {
        resolve(listener: listener, request)?.entry
    }

    /// Like `route`, for every action (route, redirect, directResponse); nil when nothing matches.
    /// Each header a condition names is read from the request once (RequestContext), and runs of
    /// exact header/cookie rules are one dictionary lookup (RuleList).
    public func resolve<R: RouteRequest>(listener: Int, _ request: R) -> RouteMatchResult? {
        guard listener >= 0, listener < tables.count,
              let rules = tables[listener].lookup(Self.hostKey(request.authority)) else { return nil }
        var ctx = RequestContext(headerNames: headerNames)
        guard let (rule, m) = rules.resolve(request, &ctx) else { return nil }
        return RouteMatchResult(entry: rule.entry, matchedPrefix: rule.matches[m].matchedPrefix)
    }

    /// HostNames.stripPort for the request path: one pass over the bytes, and no new String when the
    /// authority is already a lowercase host without port (stripPort walks Characters and lowercases
    /// always: half of a host-indexed lookup). Non-ASCII authorities take the general path.
    static func hostKey(_ authority: String) -> String {
        var a = authority
        let fast: (end: Int, copy: Bool)? = a.withUTF8 { b in
            var end = b.count
            var upper = false
            if b.first == UInt8(ascii: "[") {
                // "[v6]:port": up to and including the bracket.
                guard let close = b.firstIndex(of: UInt8(ascii: "]")) else { return nil }
                end = close + 1
            } else if let colon = b.lastIndex(of: UInt8(ascii: ":")) {
                end = colon
            }
            for i in 0..<end {
                let c = b[i]
                if c >= 0x80 { return nil }
                if c >= 0x41 && c <= 0x5A { upper = true }
            }
            if end > 1 && b[end - 1] == UInt8(ascii: ".") { end -= 1 }  // trailing dot of a FQDN
            return (end, upper || end != b.count)
        }
        guard let fast else { return HostNames.stripPort(authority) }
        if !fast.copy { return authority }
        return a.withUTF8 { b in
            String(unsafeUninitializedCapacity: fast.end) { out in
                for i in 0..<fast.end {
                    let c = b[i]
                    out[i] = c >= 0x41 && c <= 0x5A ? c | 0x20 : c
                }
                return fast.end
            }
        }
    }

    /// For the admin API's explain: the rules tried in order for this request, each with whether it
    /// matched and, if not, why (one reason per match entry); the list stops at the first match.
    /// Empty when no VirtualService host on this listener matches the authority.
    public func explain<R: RouteRequest>(listener: Int, _ request: R) -> [RouteExplanation] {
        guard listener >= 0, listener < tables.count,
              let list = tables[listener].lookup(Self.hostKey(request.authority)) else { return [] }
        var ctx = RequestContext(headerNames: headerNames)
        var out: [RouteExplanation] = []
        for rule in list.rules {
            let reasons = rule.failures(request, &ctx)
            out.append(RouteExplanation(entry: rule.entry, matched: reasons.isEmpty, reasons: reasons))
            if reasons.isEmpty { break }
        }
        return out
    }

    public static func compile(_ config: ConfigSet) throws(ConfigErrors) -> Snapshot {
        var errors: [ConfigError] = []
        let settings = ProxySettings(config.proxy)
        let listeners = ListenerBuilder.build(config: config, settings: settings, errors: &errors)
        let clusterBuilder = ClusterBuilder(config: config)
        let gatewayKeys = Set(config.resources.filter { $0.kind == .gateway }.map(\.key))
        let headerSlots = HeaderSlots()

        // 1. Compile every VirtualService's rules once (clusters, RE2 objects), listener-independent.
        struct CompiledVS {
            var resource: Resource
            var vs: VirtualService
            /// VirtualService-level gateways ("mesh" included), as "ns/name".
            var gateways: Set<String>
            /// Every gateway any part of it applies to (VS level and match level).
            var allGateways: Set<String>
            var rules: [(entry: RouteEntry, matches: [CompiledMatch])]
        }
        var compiled: [CompiledVS] = []
        var entries: [RouteEntry] = []
        for r in config.resources {
            guard let vs = r.virtualService else { continue }
            let ns = vs.metadata.namespace
            func resolve(_ refs: [String]) -> Set<String> {
                Set(refs.compactMap { ref in
                    ref == "mesh" ? "mesh" : ConfigSet.gatewayKey(for: ref, namespace: ns, existing: gatewayKeys).map { "\($0.namespace)/\($0.name)" }
                })
            }
            let vsGateways = (vs.spec.gateways ?? []).isEmpty ? ["mesh"] : resolve(vs.spec.gateways!)
            var all = vsGateways
            var rules: [(RouteEntry, [CompiledMatch])] = []
            for (i, rule) in vs.spec.http.enumerated() {
                let base = "spec.http[\(i)]"
                var dests: [WeightedCluster] = []
                for (j, d) in rule.route.enumerated() {
                    if let c = clusterBuilder.cluster(for: d.destination, namespace: ns, resource: r, path: "\(base).route[\(j)].destination") {
                        dests.append(WeightedCluster(cluster: c, weight: rule.route.count == 1 ? 100 : (d.weight ?? 0)))
                    }
                }
                var mirrors: [MirrorTarget] = []
                if let m = rule.mirror, let c = clusterBuilder.cluster(for: m, namespace: ns, resource: r, path: "\(base).mirror") {
                    mirrors.append(MirrorTarget(cluster: c, percentage: rule.mirrorPercentage?.value ?? rule.mirrorPercent.map(Double.init) ?? 100))
                }
                for (j, m) in rule.mirrors.enumerated() {
                    if let c = clusterBuilder.cluster(for: m.destination, namespace: ns, resource: r, path: "\(base).mirrors[\(j)].destination") {
                        mirrors.append(MirrorTarget(cluster: c, percentage: m.percentage?.value ?? 100))
                    }
                }
                let actions = RouteActions(rule: rule, mirrors: mirrors, path: base) { path, message in
                    errors.append(ConfigError(kind: .invalid, file: r.source, resource: r.key.description, path: path, message: message))
                }
                let entry = RouteEntry(virtualService: r.key, ruleIndex: i, rule: rule, destinations: dests, mirrors: mirrors,
                                       actions: actions)
                entries.append(entry)

                var matches: [CompiledMatch] = []
                if rule.match.isEmpty {
                    let m = CompiledMatch()
                    m.gateways = vsGateways
                    matches.append(m)
                }
                for (j, mr) in rule.match.enumerated() {
                    // sourceLabels / sourceNamespace name the workload this proxy serves: known now.
                    if !mr.sourceLabels.allSatisfy({ settings.labels[$0.key] == $0.value }) { continue }
                    if let sns = mr.sourceNamespace, sns != settings.namespace { continue }
                    let m = CompiledMatch()
                    let mpath = "\(base).match[\(j)]"
                    func compile(_ sm: StringMatch?, _ field: String, lowercase: Bool = false) -> StringMatcher? {
                        guard let sm else { return nil }
                        switch StringMatcher.compile(sm, lowercase: lowercase) {
                        case .success(let x): return x
                        case .failure(let e):
                            errors.append(ConfigError(kind: .invalid, file: r.source, resource: r.key.description, path: "\(mpath).\(field).regex", message: e.message))
                            return nil
                        }
                    }
                    func named(_ list: [NamedStringMatch], _ field: String, lower: Bool) -> [CompiledMatch.Named] {
                        list.compactMap { n in
                            compile(n.match, "\(field).\(n.name)").map { CompiledMatch.Named(name: lower ? n.name.lowercased() : n.name, matcher: $0) }
                        }
                    }
                    m.ignoreUriCase = mr.ignoreUriCase
                    m.uri = compile(mr.uri, "uri", lowercase: mr.ignoreUriCase)
                    switch mr.uri {
                    case .prefix(let p)?: m.matchedPrefix = p
                    case nil: m.matchedPrefix = "/"
                    default: m.matchedPrefix = nil
                    }
                    m.scheme = compile(mr.scheme, "scheme")
                    m.method = compile(mr.method, "method")
                    m.authority = compile(mr.authority, "authority")
                    m.headers = named(mr.headers, "headers", lower: true).map { var h = $0; h.slot = headerSlots.slot(h.name); return h }
                    m.withoutHeaders = named(mr.withoutHeaders, "withoutHeaders", lower: true)
                        .map { var h = $0; h.slot = headerSlots.slot(h.name); return h }
                    m.queryParams = named(mr.queryParams, "queryParams", lower: false)
                    m.cookies = named(mr.cookies, "cookies", lower: false)
                    m.port = mr.port
                    m.gateways = mr.gateways.isEmpty ? vsGateways : resolve(mr.gateways)
                    all.formUnion(m.gateways)
                    matches.append(m)
                }
                // A rule whose every match entry is for another workload never matches here.
                if !matches.isEmpty { rules.append((entry, matches)) }
            }
            compiled.append(CompiledVS(resource: r, vs: vs, gateways: vsGateways, allGateways: all, rules: rules))
        }
        errors += clusterBuilder.errors

        // 2. Per listener: which VirtualServices apply, under which domains, with which rules.
        var tables: [HostTable<RuleList>] = []
        for l in listeners {
            let here: Set<String> = l.kind == .gateway
                ? Set(l.servers.map { "\($0.gateway.namespace)/\($0.gateway.name)" })
                : ["mesh"]
            var builder = HostTableBuilder<Int>()
            var ruleCache: [Int: [CompiledRule]] = [:]
            for (vi, c) in compiled.enumerated() where !c.allGateways.isDisjoint(with: here) {
                let rules: [CompiledRule] = c.rules.compactMap { rule in
                    let ms = rule.matches.filter { !$0.gateways.isDisjoint(with: here) }
                    return ms.isEmpty ? nil : CompiledRule(entry: rule.entry, matches: ms)
                }
                if rules.isEmpty { continue }
                ruleCache[vi] = rules
                let ns = c.vs.metadata.namespace
                let vsHosts = c.vs.spec.hosts.flatMap { HostNames.aliases($0, namespace: ns) }
                if l.kind == .gateway {
                    // Gateway servers' hosts restrict the VirtualService hosts served on this listener.
                    var serverHosts: [String] = []
                    for s in l.servers where c.allGateways.contains("\(s.gateway.namespace)/\(s.gateway.name)") {
                        for h in s.server.hosts {
                            let parts = h.split(separator: "/", maxSplits: 1).map(String.init)
                            let (hns, host) = parts.count == 2 ? (parts[0], parts[1]) : ("*", parts[0])
                            let allowed = hns == "*" || (hns == "." ? s.gateway.namespace == ns : hns == ns)
                            if allowed { serverHosts.append(HostNames.normalize(host)) }
                        }
                    }
                    for vh in vsHosts {
                        for sh in serverHosts {
                            if let d = HostPatterns.intersect(vh, sh) { builder.add(d, vi, same: ==) }
                        }
                    }
                } else {
                    for vh in vsHosts { builder.add(vh, vi, same: ==) }
                }
            }
            func rulesFor(_ vss: [Int]) -> RuleList { RuleList(vss.flatMap { ruleCache[$0] ?? [] }) }
            tables.append(HostTable(exact: builder.exact.mapValues(rulesFor), wildcards: builder.wildcards.mapValues(rulesFor),
                                    star: builder.star.isEmpty ? nil : rulesFor(builder.star)))
        }

        if !errors.isEmpty { throw ConfigErrors(errors) }
        return Snapshot(settings: settings, listeners: listeners, clusters: clusterBuilder.clusters, config: config,
                        routeEntries: entries, tables: tables, headerNames: headerSlots.names)
    }
}

/// The rule that matched a request, and how.
public struct RouteMatchResult: Sendable {
    public let entry: RouteEntry
    /// The `uri.prefix` of the match entry that matched, if it matched by prefix — "/" when that entry has
    /// no `uri` condition (the Envoy route Istio makes for it is prefix "/"); nil for exact/regex uri.
    /// Pass it to `entry.actions.rewritePath`.
    public let matchedPrefix: String?

    public init(entry: RouteEntry, matchedPrefix: String?) {
        self.entry = entry
        self.matchedPrefix = matchedPrefix
    }
}

public struct RouteExplanation: Sendable {
    public var entry: RouteEntry
    public var matched: Bool
    /// Why it did not match: the first failing condition of each match entry.
    public var reasons: [String]
}
