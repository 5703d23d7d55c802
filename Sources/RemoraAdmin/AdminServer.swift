import RemoraConfig
import RemoraCore
import RemoraIO
import RemoraPolicy

/// The admin API (SPEC §4), the health endpoint and the Prometheus endpoint, served on one event loop
/// (the proxy's control thread's). Every configuration change — `PUT /config`, one resource's
/// PUT/DELETE, rollback, SIGHUP and file watching (`reloadFromSources`) — goes through the
/// `ConfigStore` (validation, version, history) and is answered only once `AdminHost.install` reports
/// that every worker has it. Not thread-safe: call it on `loop`'s thread (or before the loop runs).
public final class AdminServer {
    public let store: ConfigStore
    public let loop: EventLoop
    /// Appends `remora_config_version` and `remora_config_reloads_total` (kept by the store) to the
    /// host's metrics text. Turn off if the host renders them itself.
    public var appendConfigMetrics = true
    private weak var host: AdminHost?
    private var admin: AdminHTTPListener?
    private var health: AdminHTTPListener?
    private var metrics: AdminHTTPListener?
    private var drainRequested = false

    enum Role: Sendable { case admin, health, metrics }

    /// Binds admin, health and metrics listeners (any may be nil = disabled) on `loop`. Throws
    /// (`Socket.ListenError`) if a port cannot be bound; nothing stays bound then.
    public convenience init(loop: EventLoop, store: ConfigStore, host: AdminHost, admin: ListenAddress?,
                            health: ListenAddress?, metrics: ListenAddress?) throws {
        try self.init(loop: loop, store: store, host: host, admin: admin, health: health, metrics: metrics,
                      limits: AdminHTTPLimits())
    }

    init(loop: EventLoop, store: ConfigStore, host: AdminHost, admin: ListenAddress?, health: ListenAddress?,
         metrics: ListenAddress?, limits: AdminHTTPLimits) throws {
        self.loop = loop
        self.store = store
        self.host = host
        do {
            if let a = admin {
                self.admin = try AdminHTTPListener(loop: loop, address: a.address, port: a.port, limits: limits) { [weak self] req, reply in
                    self?.handle(req, role: .admin, reply: reply) ?? reply(AdminServer.gone)
                }
            }
            if let a = health {
                self.health = try AdminHTTPListener(loop: loop, address: a.address, port: a.port, limits: limits) { [weak self] req, reply in
                    self?.handle(req, role: .health, reply: reply) ?? reply(AdminServer.gone)
                }
            }
            if let a = metrics {
                self.metrics = try AdminHTTPListener(loop: loop, address: a.address, port: a.port, limits: limits) { [weak self] req, reply in
                    self?.handle(req, role: .metrics, reply: reply) ?? reply(AdminServer.gone)
                }
            }
        } catch {
            close()
            throw error
        }
    }

    /// The ports actually bound (useful with port 0); nil for a disabled endpoint.
    public var boundPorts: (admin: Int?, health: Int?, metrics: Int?) { (admin?.port, health?.port, metrics?.port) }

    /// Closes the listeners and every open admin connection.
    public func close() {
        admin?.close()
        health?.close()
        metrics?.close()
    }

    /// SIGHUP and file watching: re-reads the sources and applies them exactly as `PUT /config` would
    /// (validation as a whole, a new version in the history, the reload counters). Errors are logged,
    /// and the configuration in force stays. Returns the new version, or nil when rejected.
    /// `load` usually throws `ConfigErrors` (`{ try ConfigLoader.load(paths: paths) }`); any error is a rejection.
    @discardableResult
    public func reloadFromSources(_ load: () throws -> ConfigSet, cause: String) -> Int? {
        let set: ConfigSet
        do {
            set = try load()
        } catch {
            store.recordRejected()
            let errors = (error as? ConfigErrors)?.errors ?? [ConfigError(message: "\(error)")]
            Log.error("\(cause): configuration rejected, version \(store.version) stays in force (\(errors.count) error(s))")
            for e in errors { Log.error("\(cause): \(e)") }
            return nil
        }
        let applied: ConfigStore.Applied
        do {
            applied = try store.apply(set.resources, cause: cause, dryRun: false)
        } catch {
            Log.error("\(cause): configuration rejected, version \(store.version) stays in force (\(error.errors.count) error(s))")
            for e in error.errors { Log.error("\(cause): \(e)") }
            return nil
        }
        let summary = applied.changed.isEmpty ? "no resource changed" : applied.changed.joined(separator: ", ")
        host?.install(applied.snapshot, version: applied.version) { [version = applied.version] in
            Log.info("\(cause): configuration version \(version) in force (\(summary))")
        }
        return applied.version
    }

    static let gone = AdminResponse(status: 503, contentType: "text/plain; charset=utf-8", text: "shutting down\n")

    // MARK: routing

    enum Endpoint: Equatable {
        case index
        case ready
        case healthReady
        case config
        case configHistory
        case configRollback
        case configKind(ResourceKind)
        case configResource(ResourceKey)
        case explain
        case clusters
        case prometheus
        case drain
        case quit

        var methods: [String] {
            switch self {
            case .index, .ready, .healthReady, .configHistory, .configKind, .clusters, .prometheus: return ["GET", "HEAD"]
            case .config: return ["GET", "HEAD", "PUT"]
            case .configResource: return ["GET", "HEAD", "PUT", "DELETE"]
            case .configRollback, .explain, .drain, .quit: return ["POST"]
            }
        }
    }

    enum Resolved: Equatable {
        case endpoint(Endpoint)
        case notFound(String)
    }

    static func resolve(path: String, role: Role) -> Resolved {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { percentDecode($0) }
        let missing = Resolved.notFound("no such endpoint: \(path)")
        switch role {
        case .health:
            return segments == ["healthz", "ready"] ? .endpoint(.healthReady) : missing
        case .metrics:
            return segments == ["stats", "prometheus"] ? .endpoint(.prometheus) : missing
        case .admin:
            break
        }
        switch segments.first {
        case nil: return .endpoint(.index)
        case "ready": return segments.count == 1 ? .endpoint(.ready) : missing
        case "healthz": return segments == ["healthz", "ready"] ? .endpoint(.healthReady) : missing
        case "clusters": return segments.count == 1 ? .endpoint(.clusters) : missing
        case "stats": return segments == ["stats", "prometheus"] ? .endpoint(.prometheus) : missing
        case "drain": return segments.count == 1 ? .endpoint(.drain) : missing
        case "quitquitquit": return segments.count == 1 ? .endpoint(.quit) : missing
        case "routes": return segments == ["routes", "explain"] ? .endpoint(.explain) : missing
        case "config":
            switch segments.count {
            case 1: return .endpoint(.config)
            case 2 where segments[1] == "history": return .endpoint(.configHistory)
            case 2 where segments[1] == "rollback": return .endpoint(.configRollback)
            case 2, 4:
                guard let kind = ResourceKind(name: segments[1]) else {
                    return .notFound("unknown kind \"\(segments[1])\" (expected one of \(ResourceKind.allCases.map(\.plural).joined(separator: ", ")))")
                }
                if segments.count == 2 { return .endpoint(.configKind(kind)) }
                return .endpoint(.configResource(ResourceKey(kind: kind, namespace: segments[2], name: segments[3])))
            default:
                return missing
            }
        default:
            return missing
        }
    }

    private func handle(_ req: AdminRequest, role: Role, reply: @escaping (AdminResponse) -> Void) {
        let yaml = AdminServer.wantsYAML(req)
        let endpoint: Endpoint
        switch AdminServer.resolve(path: req.path, role: role) {
        case .notFound(let why):
            reply(AdminServer.error(404, why, yaml: yaml))
            return
        case .endpoint(let e):
            endpoint = e
        }
        guard endpoint.methods.contains(req.method) else {
            var r = AdminServer.error(405, "method \(req.method) not allowed on \(req.path)", yaml: yaml)
            r.headers.append(("allow", endpoint.methods.joined(separator: ", ")))
            reply(r)
            return
        }
        guard let host else {
            reply(AdminServer.gone)
            return
        }
        switch endpoint {
        case .index:
            reply(value(200, AdminServer.indexValue, yaml: yaml))
        case .ready:
            reply(host.isServing
                  ? AdminResponse(status: 200, contentType: "text/plain; charset=utf-8", text: "LIVE\n")
                  : AdminResponse(status: 503, contentType: "text/plain; charset=utf-8", text: drainRequested ? "DRAINING\n" : "NOT READY\n"))
        case .healthReady:
            reply(host.isServing
                  ? AdminResponse(status: 200, contentType: "text/plain; charset=utf-8", text: "ready\n")
                  : AdminResponse(status: 503, contentType: "text/plain; charset=utf-8", text: "not ready\n"))
        case .config:
            if req.method == "PUT" { putAll(req, yaml: yaml, reply: reply) } else { reply(configList(store.current.resources, yaml: yaml)) }
        case .configHistory:
            reply(value(200, historyValue(), yaml: yaml, etag: store.version))
        case .configRollback:
            rollback(req, yaml: yaml, reply: reply)
        case .configKind(let kind):
            reply(configList(store.current.resources(of: kind), yaml: yaml))
        case .configResource(let key):
            switch req.method {
            case "PUT": putOne(req, key: key, yaml: yaml, reply: reply)
            case "DELETE": deleteOne(req, key: key, yaml: yaml, reply: reply)
            default:
                if let r = store.current.resource(key) {
                    reply(value(200, r.raw, yaml: yaml, etag: store.version))
                } else {
                    reply(notFound(key, yaml: yaml))
                }
            }
        case .explain:
            reply(explain(req, yaml: yaml))
        case .clusters:
            reply(value(200, host.clustersJSON(), yaml: yaml))
        case .prometheus:
            let extra = appendConfigMetrics ? store.prometheusText() : ""
            host.renderMetrics { text in
                var t = text
                if !t.isEmpty && !t.hasSuffix("\n") { t += "\n" }
                reply(AdminResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", text: t + extra))
            }
        case .drain:
            drainRequested = true
            host.beginDrain(exitWhenDone: false)
            reply(value(200, .object([.init("draining", .bool(true))]), yaml: yaml))
        case .quit:
            drainRequested = true
            var r = value(200, .object([.init("draining", .bool(true)), .init("exitWhenDone", .bool(true))]), yaml: yaml)
            // Reply first: the process may exit as soon as draining finds nothing in flight.
            r.afterSent = { [weak host] in host?.beginDrain(exitWhenDone: true) }
            r.close = true
            reply(r)
        }
    }

    // MARK: configuration changes

    private func putAll(_ req: AdminRequest, yaml: Bool, reply: @escaping (AdminResponse) -> Void) {
        if let r = preconditionFailed(req, yaml: yaml) { return reply(r) }
        let dry = AdminServer.isDryRun(req)
        guard let text = AdminServer.bodyText(req) else { return reply(rejected(ConfigErrors([ConfigError(message: "the body is not UTF-8 text")]), dry: dry, yaml: yaml)) }
        let resources: [Resource]
        do {
            resources = try ConfigLoader.decode(AdminServer.withoutListVersion(text), source: "admin API")
        } catch {
            return reply(rejected(error, dry: dry, yaml: yaml))
        }
        change(resources, cause: "PUT /config", dry: dry, yaml: yaml, reply: reply)
    }

    private func putOne(_ req: AdminRequest, key: ResourceKey, yaml: Bool, reply: @escaping (AdminResponse) -> Void) {
        if let r = preconditionFailed(req, yaml: yaml) { return reply(r) }
        let dry = AdminServer.isDryRun(req)
        guard let text = AdminServer.bodyText(req) else { return reply(rejected(ConfigErrors([ConfigError(message: "the body is not UTF-8 text")]), dry: dry, yaml: yaml)) }
        var decoded: [Resource]
        do {
            decoded = try ConfigLoader.decode(text, source: "admin API")
            // A document without a namespace takes the path's (as `kubectl apply -n NS` does).
            if decoded.count == 1, decoded[0].namespace != key.namespace, let r = AdminServer.withNamespace(decoded[0].raw, key.namespace) {
                decoded = try ConfigLoader.decode(r.jsonString(), source: "admin API")
            }
        } catch {
            return reply(rejected(error, dry: dry, yaml: yaml))
        }
        guard decoded.count == 1, let resource = decoded.first else {
            let e = ConfigError(resource: key.description, message: "the body must hold exactly one resource, found \(decoded.count)")
            return reply(rejected(ConfigErrors([e]), dry: dry, yaml: yaml))
        }
        var mismatch: [ConfigError] = []
        if resource.kind != key.kind {
            mismatch.append(ConfigError(resource: resource.key.description, path: "kind",
                                        message: "kind \(resource.kind.rawValue) does not match the path (\(key.kind.plural))"))
        }
        if resource.namespace != key.namespace {
            mismatch.append(ConfigError(resource: resource.key.description, path: "metadata.namespace",
                                        message: "namespace \"\(resource.namespace)\" does not match the path (\"\(key.namespace)\")"))
        }
        if resource.name != key.name {
            mismatch.append(ConfigError(resource: resource.key.description, path: "metadata.name",
                                        message: "name \"\(resource.name)\" does not match the path (\"\(key.name)\")"))
        }
        if !mismatch.isEmpty { return reply(rejected(ConfigErrors(mismatch), dry: dry, yaml: yaml)) }
        var candidate = store.current.resources
        if let i = candidate.firstIndex(where: { $0.key == key }) {
            candidate[i] = resource
        } else {
            candidate.append(resource)
        }
        change(candidate, cause: "PUT /config/\(key.kind.plural)/\(key.namespace)/\(key.name)", dry: dry, yaml: yaml, reply: reply)
    }

    private func deleteOne(_ req: AdminRequest, key: ResourceKey, yaml: Bool, reply: @escaping (AdminResponse) -> Void) {
        guard store.current.resource(key) != nil else { return reply(notFound(key, yaml: yaml)) }
        if let r = preconditionFailed(req, yaml: yaml) { return reply(r) }
        let candidate = store.current.resources.filter { $0.key != key }
        change(candidate, cause: "DELETE /config/\(key.kind.plural)/\(key.namespace)/\(key.name)", dry: AdminServer.isDryRun(req),
               yaml: yaml, reply: reply)
    }

    private func rollback(_ req: AdminRequest, yaml: Bool, reply: @escaping (AdminResponse) -> Void) {
        if let r = preconditionFailed(req, yaml: yaml) { return reply(r) }
        var target: Int?
        if let t = req.query["to"] {
            guard let v = Int(t) else { return reply(AdminServer.error(400, "to=\(t) is not a version number", yaml: yaml, etag: store.version)) }
            target = v
        }
        let dry = AdminServer.isDryRun(req)
        let wanted = target ?? store.version - 1
        let applied: ConfigStore.Applied
        do {
            applied = try store.rollback(to: target, dryRun: dry)
        } catch {
            switch error {
            case .invalid(let e): return reply(rejected(e, dry: true, yaml: yaml))
            case .unknownVersion, .noEarlierVersion: return reply(AdminServer.error(404, error.description, yaml: yaml, etag: store.version))
            }
        }
        let to = ConfigValue.ObjectEntry("rolledBackTo", .int(wanted))
        finish(applied, dry: dry, extra: [to], yaml: yaml, reply: reply)
    }

    private func change(_ candidate: [Resource], cause: String, dry: Bool, yaml: Bool, reply: @escaping (AdminResponse) -> Void) {
        let applied: ConfigStore.Applied
        do {
            applied = try store.apply(candidate, cause: cause, dryRun: dry)
        } catch {
            // apply counted the failure already.
            return reply(AdminServer.errorsReply(error, yaml: yaml, etag: store.version))
        }
        finish(applied, dry: dry, extra: [], yaml: yaml, reply: reply)
    }

    /// 200 {"version", "changed"}: at once for a dry run, else once every worker has the new snapshot.
    private func finish(_ applied: ConfigStore.Applied, dry: Bool, extra: [ConfigValue.ObjectEntry], yaml: Bool,
                        reply: @escaping (AdminResponse) -> Void) {
        if dry {
            let v = ConfigValue.object([.init("version", .int(store.version)), .init("changed", .array(applied.changed.map { .string($0) })),
                                        .init("dryRun", .bool(true))] + extra)
            return reply(value(200, v, yaml: yaml, etag: store.version))
        }
        let v = ConfigValue.object([.init("version", .int(applied.version)), .init("changed", .array(applied.changed.map { .string($0) }))] + extra)
        let response = value(200, v, yaml: yaml, etag: applied.version)
        guard let host else { return reply(AdminServer.gone) }
        host.install(applied.snapshot, version: applied.version) { reply(response) }
    }

    /// A change that did not decode: counted (unless a dry run) and answered 400.
    private func rejected(_ errors: ConfigErrors, dry: Bool, yaml: Bool) -> AdminResponse {
        if !dry { store.recordRejected() }
        return AdminServer.errorsReply(errors, yaml: yaml, etag: store.version)
    }

    /// 412 when `If-Match` names another version than the one in force. Accepts `"3"`, `3`, `W/"3"`, `*`
    /// and lists of them.
    private func preconditionFailed(_ req: AdminRequest, yaml: Bool) -> AdminResponse? {
        guard let im = req.headerList("if-match") else { return nil }
        let current = store.version
        let ok = im.split(separator: ",").contains { tag in
            var t = Substring(tag).trimmingCharacters()
            if t == "*" { return true }
            if t.hasPrefix("W/") { t = t.dropFirst(2) }
            if t.count >= 2, t.hasPrefix("\""), t.hasSuffix("\"") { t = t.dropFirst().dropLast() }
            return Int(t) == current
        }
        if ok { return nil }
        let v = ConfigValue.object([.init("error", .string("If-Match \(im) does not match the version in force (\(current))")),
                                    .init("version", .int(current))])
        return value(412, v, yaml: yaml, etag: current)
    }

    // MARK: bodies

    private func configList(_ resources: [Resource], yaml: Bool) -> AdminResponse {
        let v = store.version
        let list = ConfigValue.object([
            .init("apiVersion", .string("v1")),
            .init("kind", .string("List")),
            .init("version", .int(v)),
            .init("metadata", .object([.init("resourceVersion", .string(String(v)))])),
            .init("items", .array(resources.map(\.raw))),
        ])
        return value(200, list, yaml: yaml, etag: v)
    }

    private func historyValue() -> ConfigValue {
        .object([
            .init("version", .int(store.version)),
            .init("history", .array(store.history().map { e in
                .object([.init("version", .int(e.version)), .init("time", .string(e.time)), .init("cause", .string(e.cause)),
                         .init("changed", .array(e.changed.map { .string($0) }))])
            })),
        ])
    }

    private func notFound(_ key: ResourceKey, yaml: Bool) -> AdminResponse {
        AdminServer.error(404, "\(key) not found", yaml: yaml, etag: store.version)
    }

    static let indexValue = ConfigValue.object([.init("endpoints", .array([
        "GET /ready", "GET /healthz/ready", "GET /config", "PUT /config", "GET /config/{kind}",
        "GET|PUT|DELETE /config/{kind}/{namespace}/{name}", "GET /config/history", "POST /config/rollback[?to=VERSION]",
        "POST /routes/explain", "GET /clusters", "GET /stats/prometheus", "POST /drain", "POST /quitquitquit",
    ].map { .string($0) }))])

    // MARK: helpers

    func value(_ status: Int, _ v: ConfigValue, yaml: Bool, etag: Int? = nil) -> AdminResponse {
        AdminServer.render(status, v, yaml: yaml, etag: etag)
    }

    static func render(_ status: Int, _ v: ConfigValue, yaml: Bool, etag: Int? = nil) -> AdminResponse {
        var headers: [(name: String, value: String)] = []
        if let etag { headers.append(("etag", "\"\(etag)\"")) }
        if yaml {
            var text = v.yamlString()
            if !text.hasSuffix("\n") { text += "\n" }
            return AdminResponse(status: status, contentType: "application/yaml", text: text, headers: headers)
        }
        return AdminResponse(status: status, contentType: "application/json", text: v.jsonString(pretty: true) + "\n", headers: headers)
    }

    static func error(_ status: Int, _ message: String, yaml: Bool, etag: Int? = nil) -> AdminResponse {
        render(status, .object([.init("error", .string(message))]), yaml: yaml, etag: etag)
    }

    /// 400 {"errors": [{"resource", "path", "message"}]}
    static func errorsReply(_ errors: ConfigErrors, yaml: Bool, etag: Int?) -> AdminResponse {
        render(400, errorsValue(errors), yaml: yaml, etag: etag)
    }

    static func errorsValue(_ errors: ConfigErrors) -> ConfigValue {
        .object([.init("errors", .array(errors.errors.map { e in
            var entries: [ConfigValue.ObjectEntry] = [
                .init("resource", .string(e.resource ?? "")),
                .init("path", .string(e.path)),
                .init("message", .string(e.message)),
            ]
            if let f = e.file, f != "admin API" { entries.append(.init("file", .string(f))) }
            return .object(entries)
        }))])
    }

    /// `Accept: application/yaml` (or `?format=yaml` / `?output=yaml`), unless JSON is preferred before it.
    static func wantsYAML(_ req: AdminRequest) -> Bool {
        if let f = (req.query["format"] ?? req.query["output"])?.lowercased() { return f == "yaml" || f == "yml" }
        guard let accept = req.headerList("accept")?.lowercased(), let y = accept.range(of: "yaml") else { return false }
        if let j = accept.range(of: "json") { return y.lowerBound < j.lowerBound }
        return true
    }

    static func isDryRun(_ req: AdminRequest) -> Bool {
        guard let v = req.query["dryRun"] ?? req.query["dryrun"] ?? req.query["dry-run"] else { return false }
        return ["", "true", "1", "all", "yes", "server", "client"].contains(v.lowercased())
    }

    static func bodyText(_ req: AdminRequest) -> String? { String(validating: req.body, as: UTF8.self) }

    /// `GET /config` answers a List with our `version` beside its items; accept it back as it is
    /// (the loader only knows kubectl's List fields).
    static func withoutListVersion(_ text: String) -> String {
        guard text.contains("version"), text.contains("List"), isSingleDocument(text),
              let v = try? ConfigValue.parse(text), v["kind"]?.stringValue == "List", v["version"] != nil else { return text }
        return v.removing("version").jsonString()
    }

    private static func isSingleDocument(_ text: String) -> Bool {
        // A JSON List is one document; YAML separates documents with a line starting with "---".
        !text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().contains { $0.hasPrefix("---") }
    }

    /// The document with `metadata.namespace` set, when it has none (nil otherwise).
    static func withNamespace(_ raw: ConfigValue, _ ns: String) -> ConfigValue? {
        guard case .object(var entries) = raw, let i = entries.firstIndex(where: { $0.key == "metadata" }),
              case .object(var meta) = entries[i].value, !meta.contains(where: { $0.key == "namespace" }) else { return nil }
        meta.append(.init("namespace", .string(ns)))
        entries[i].value = .object(meta)
        return .object(entries)
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
