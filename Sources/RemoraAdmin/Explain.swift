import RemoraConfig
import RemoraPolicy

/// A request described in a `POST /routes/explain` body, as routing sees it.
struct ExplainRequest: RouteRequest {
    var authority: String
    var path: String
    var method: String
    var scheme: String
    var port: Int
    /// Lowercased names; repeated values joined with ",".
    var headers: [String: String]

    func header(_ lowercasedName: String) -> String? { headers[lowercasedName] }
}

extension AdminServer {
    /// `POST /routes/explain` with `{listener, authority, method, path, headers}` (JSON or YAML): the
    /// listener chosen, every rule tried in order with whether it matched and why not, and the rule and
    /// destination(s) chosen.
    func explain(_ req: AdminRequest, yaml: Bool) -> AdminResponse {
        func bad(_ path: String, _ message: String) -> AdminResponse {
            AdminServer.errorsReply(ConfigErrors([ConfigError(path: path, message: message)]), yaml: yaml, etag: nil)
        }
        guard let text = AdminServer.bodyText(req) else { return bad("", "the body is not UTF-8 text") }
        let body: ConfigValue
        do {
            body = try ConfigValue.parse(text)
        } catch {
            return AdminServer.errorsReply(error, yaml: yaml, etag: nil)
        }
        switch body {
        case .object, .null: break
        default: return bad("", "expected an object {listener, authority, method, path, headers}")
        }
        let snapshot = store.currentSnapshot
        let index: Int
        switch AdminServer.pickListener(body["listener"], in: snapshot) {
        case .success(let i): index = i
        case .failure(let e): return bad("listener", e.message)
        }
        let listener = snapshot.listeners[index]

        var headers: [String: String] = [:]
        switch body["headers"] {
        case nil, .null?: break
        case .object(let entries)?:
            for e in entries {
                let name = e.key.lowercased()
                let values: [String]
                switch e.value {
                case .array(let items): values = items.compactMap(AdminServer.scalarText)
                default:
                    guard let s = AdminServer.scalarText(e.value) else { return bad("headers.\(e.key)", "expected a string") }
                    values = [s]
                }
                for v in values { headers[name] = headers[name].map { $0 + "," + v } ?? v }
            }
        default:
            return bad("headers", "expected an object of header names and values")
        }
        func field(_ key: String) -> Result<String?, ConfigError> {
            switch body[key] {
            case nil, .null?: return .success(nil)
            case let v?:
                guard let s = AdminServer.scalarText(v) else { return .failure(ConfigError(path: key, message: "expected a string")) }
                return .success(s)
            }
        }
        var values: [String: String] = [:]
        for key in ["authority", "method", "path", "scheme", "port"] {
            switch field(key) {
            case .success(let v): if let v { values[key] = v }
            case .failure(let e): return AdminServer.errorsReply(ConfigErrors([e]), yaml: yaml, etag: nil)
            }
        }
        guard let authority = values["authority"] ?? headers["host"] ?? headers[":authority"] else {
            return bad("authority", "authority is required (the Host of the request)")
        }
        var port = listener.address.port
        if let p = values["port"] {
            guard let n = Int(p), n > 0, n < 65536 else { return bad("port", "not a port number: \(p)") }
            port = n
        }
        var path = values["path"] ?? "/"
        if path.isEmpty { path = "/" }
        let request = ExplainRequest(authority: authority, path: path, method: values["method"] ?? "GET",
                                     scheme: values["scheme"] ?? (listener.tls ? "https" : "http"), port: port, headers: headers)
        let steps = snapshot.explain(listener: index, request)
        return value(200, AdminServer.explanation(steps, request: request, listener: listener, snapshot: snapshot), yaml: yaml,
                     etag: store.version)
    }

    static func explanation(_ steps: [RouteExplanation], request: ExplainRequest, listener: ListenerSpec, snapshot: Snapshot) -> ConfigValue {
        var out: [ConfigValue.ObjectEntry] = []
        out.append(.init("listener", .object([
            .init("name", .string(listener.name)),
            .init("kind", .string(kindName(listener.kind))),
            .init("address", .string(listener.address.address)),
            .init("port", .int(listener.address.port)),
        ])))
        out.append(.init("request", .object([
            .init("authority", .string(request.authority)),
            .init("method", .string(request.method)),
            .init("path", .string(request.path)),
            .init("scheme", .string(request.scheme)),
            .init("port", .int(request.port)),
            .init("headers", .object(request.headers.sorted { $0.key < $1.key }.map { .init($0.key, .string($0.value)) })),
        ])))
        let chosen = steps.last.flatMap { $0.matched ? $0.entry : nil }
        out.append(.init("matched", .bool(chosen != nil)))
        out.append(.init("virtualService", chosen.map { .string("\($0.virtualService.namespace)/\($0.virtualService.name)") } ?? .null))
        out.append(.init("rule", chosen.map { .string($0.name) } ?? .null))
        out.append(.init("action", chosen.map { .string(actionName($0.action)) } ?? .null))
        let destinations: [ConfigValue] = chosen?.destinations.map { d in
            let c = snapshot.clusters[d.cluster]
            return .object([
                .init("host", .string(c.host)),
                .init("port", .int(c.port)),
                .init("subset", c.subset.map { .string($0) } ?? .null),
                .init("weight", .int(d.weight)),
                .init("cluster", .string(c.name)),
            ])
        } ?? []
        out.append(.init("destinations", .array(destinations)))
        if let chosen, !chosen.mirrors.isEmpty {
            out.append(.init("mirrors", .array(chosen.mirrors.map { m in
                .object([.init("cluster", .string(snapshot.clusters[m.cluster].name)), .init("percentage", .double(m.percentage))])
            })))
        }
        out.append(.init("rules", .array(steps.map { s in
            var e: [ConfigValue.ObjectEntry] = [
                .init("virtualService", .string("\(s.entry.virtualService.namespace)/\(s.entry.virtualService.name)")),
                .init("rule", .string(s.entry.name)),
                .init("index", .int(s.entry.ruleIndex)),
                .init("matched", .bool(s.matched)),
                .init("reasons", .array(s.reasons.map { .string($0) })),
            ]
            if s.matched, let def = ruleDefinition(s.entry, snapshot) { e.append(.init("definition", def)) }
            return .object(e)
        })))
        out.append(.init("outcome", .string(outcome(steps, chosen: chosen, listener: listener, request: request, snapshot: snapshot))))
        return .object(out)
    }

    private static func outcome(_ steps: [RouteExplanation], chosen: RouteEntry?, listener: ListenerSpec, request: ExplainRequest,
                                snapshot: Snapshot) -> String {
        guard let chosen else {
            if steps.isEmpty {
                let what = "no VirtualService on listener \(listener.name) has a host matching \"\(request.authority)\""
                return listener.kind == .meshOutbound
                    ? what + ": passes through to the original destination (404 NR when the connection was not redirected)"
                    : what + ": 404 NR"
            }
            return "no rule matched: 404 NR"
        }
        switch chosen.action {
        case .route:
            if chosen.destinations.isEmpty { return "rule \(chosen.name) has no destination: 404 NR" }
            let names = chosen.destinations.map { d -> String in
                let c = snapshot.clusters[d.cluster]
                return chosen.destinations.count > 1 ? "\(c.name) (weight \(d.weight))" : c.name
            }
            return "route to " + names.joined(separator: ", ")
        case .redirect: return "rule \(chosen.name) answers with a redirect"
        case .directResponse: return "rule \(chosen.name) answers directly"
        case .delegate: return "rule \(chosen.name) delegates (not supported: 404 NR)"
        }
    }

    /// The rule as written in its VirtualService (`spec.http[i]`).
    private static func ruleDefinition(_ entry: RouteEntry, _ snapshot: Snapshot) -> ConfigValue? {
        guard let raw = snapshot.config.resource(entry.virtualService)?.raw,
              case .array(let rules)? = raw["spec"]?["http"], entry.ruleIndex < rules.count else { return nil }
        return rules[entry.ruleIndex]
    }

    static func kindName(_ k: ListenerKind) -> String {
        switch k {
        case .meshOutbound: return "meshOutbound"
        case .meshInbound: return "meshInbound"
        case .gateway: return "gateway"
        }
    }

    static func actionName(_ a: RouteEntry.Action) -> String {
        switch a {
        case .route: return "route"
        case .redirect: return "redirect"
        case .directResponse: return "directResponse"
        case .delegate: return "delegate"
        }
    }

    static func scalarText(_ v: ConfigValue) -> String? {
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .double(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        default: return nil
        }
    }

    /// The listener a `listener` field names: its name ("0.0.0.0_15001", or "0.0.0.0:15001"), a port
    /// number, "meshOutbound"/"outbound"/"mesh", "meshInbound"/"inbound", or a Gateway ("ns/name").
    /// Absent: the mesh outbound listener, else the first listener.
    static func pickListener(_ v: ConfigValue?, in snapshot: Snapshot) -> Result<Int, ConfigError> {
        let listeners = snapshot.listeners
        let known = listeners.map(\.name).joined(separator: ", ")
        func fail(_ what: String) -> Result<Int, ConfigError> {
            .failure(ConfigError(path: "listener", message: "no listener \(what) (listeners: \(known.isEmpty ? "none" : known))"))
        }
        guard let v, v != .null else {
            if let i = listeners.firstIndex(where: { $0.kind == .meshOutbound }) ?? (listeners.isEmpty ? nil : 0) { return .success(i) }
            return fail("to explain on")
        }
        guard let raw = scalarText(v) else { return fail("named \(v.jsonString())") }
        let text = String(Substring(raw).trimmingCharacters())
        if let port = Int(text) {
            if let i = listeners.firstIndex(where: { $0.address.port == port }) { return .success(i) }
            return fail("on port \(port)")
        }
        if let i = listeners.firstIndex(where: { $0.name == text }) { return .success(i) }
        let lower = text.lowercased()
        let alias: ListenerKind?
        switch lower {
        case "meshoutbound", "mesh-outbound", "mesh_outbound", "outbound", "mesh", "sidecar": alias = .meshOutbound
        case "meshinbound", "mesh-inbound", "mesh_inbound", "inbound": alias = .meshInbound
        default: alias = nil
        }
        if let alias {
            if let i = listeners.firstIndex(where: { $0.kind == alias }) { return .success(i) }
            return fail("of kind \(kindName(alias))")
        }
        // "0.0.0.0:15001", "[::]:80"
        if let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) {
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            if let i = listeners.firstIndex(where: { $0.address.port == port && $0.address.address == host }) { return .success(i) }
        }
        // A Gateway: "namespace/name", or "name" in any namespace.
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        func names(_ g: ResourceKey) -> Bool {
            if parts.count == 2 { return g.namespace == parts[0] && g.name == parts[1] }
            return g.name == text
        }
        for (i, l) in listeners.enumerated() where l.servers.contains(where: { names($0.gateway) }) { return .success(i) }
        return fail("named \"\(text)\"")
    }
}
