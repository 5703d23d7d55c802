import RemoraConfig
#if canImport(Glibc)
import Glibc
#endif

/// Reading the admin API's replies (SPEC §4): `{"version": N, "changed": [...]}` on a change,
/// `{"errors": [{"resource", "path", "message"}]}` on 400, the version also in `ETag`.
enum CtlAdmin {
    /// The body as a JSON value, nil when it is empty or not JSON/YAML.
    static func json(_ r: CtlResponse) -> ConfigValue? {
        guard !r.body.isEmpty else { return nil }
        return try? ConfigValue.parse(r.text)
    }

    /// The configuration version of a reply: the body's `version`, else the ETag.
    static func version(_ r: CtlResponse, body: ConfigValue? = nil) -> Int? {
        if let v = CtlJSON.int((body ?? json(r))?["version"]) { return v }
        return r.etagVersion
    }

    /// "SUBJECT: ACTION, version N, changed: A, B" (", unchanged" when the list is empty;
    /// "(dry run, nothing applied)" at the end for a dry run).
    static func describeChange(_ subject: String, action: String, _ r: CtlResponse, dryRun: Bool) -> String {
        let body = json(r)
        var line = "\(subject): \(dryRun ? "valid" : action)"
        if let v = version(r, body: body) { line += ", version \(v)" }
        if let changed = body?["changed"] {
            let items = CtlJSON.array(changed)?.map(describeChanged) ?? [CtlJSON.text(changed)]
            line += items.isEmpty ? (dryRun ? ", no change" : ", unchanged")
                                  : (dryRun ? ", would change: " : ", changed: ") + items.joined(separator: ", ")
        }
        if dryRun { line += " (dry run, nothing applied)" }
        return line
    }

    /// One entry of `changed`: a string as it is; an object as "Kind ns/name" (+ its operation).
    static func describeChanged(_ v: ConfigValue) -> String {
        if let s = v.stringValue { return s }
        guard case .object = v else { return CtlJSON.text(v) }
        var subject: String?
        if let r = v["resource"]?.stringValue {
            subject = r
        } else if let kind = v["kind"]?.stringValue, let name = v["name"]?.stringValue ?? v["metadata"]?["name"]?.stringValue {
            let ns = v["namespace"]?.stringValue ?? v["metadata"]?["namespace"]?.stringValue ?? "default"
            subject = "\(kind) \(ns)/\(name)"
        }
        guard let subject else { return v.jsonString() }
        if let op = (v["op"] ?? v["action"] ?? v["change"] ?? v["operation"])?.stringValue { return "\(subject) (\(op))" }
        return subject
    }

    /// The failure for a non-2xx reply to a change: 400 lists every error (one line each, naming
    /// file, resource and field path); anything else is one line with the status.
    static func changeFailure(_ what: String, _ r: CtlResponse, file: String? = nil, resource: String? = nil) -> CtlFailure {
        if r.status == 400, let errors = CtlJSON.array(json(r)?["errors"]), !errors.isEmpty {
            for e in errors {
                var ce = ConfigError(file: file, message: "")
                if case .object = e {
                    let named = e["resource"]?.stringValue ?? ""
                    ce.resource = named.isEmpty ? resource : named
                    ce.path = e["path"]?.stringValue ?? e["field"]?.stringValue ?? ""
                    ce.message = e["message"]?.stringValue ?? e["error"]?.stringValue ?? e.jsonString()
                    if file == nil, let f = e["file"]?.stringValue, !f.isEmpty { ce.file = f }
                } else {
                    ce.resource = resource
                    ce.message = CtlJSON.text(e)
                }
                fputs(ce.description + "\n", stderr)
            }
            return .reported(1)
        }
        return httpFailure(what, r, resource: resource)
    }

    /// "GET /config/x: 404 Not Found: <message>" (exit 1).
    static func httpFailure(_ what: String, _ r: CtlResponse, resource: String? = nil) -> CtlFailure {
        var line = ""
        if let resource { line += "\(resource): " }
        line += "\(what): \(r.status)"
        if !r.reason.isEmpty { line += " \(r.reason)" }
        if let m = message(r) { line += ": \(m)" }
        return .refused(line)
    }

    /// A short message out of an error body: `message`/`error`, the errors list, or the text itself.
    static func message(_ r: CtlResponse) -> String? {
        if let body = json(r), case .object = body {
            if let m = (body["message"] ?? body["error"] ?? body["reason"])?.stringValue { return m }
            if let errs = CtlJSON.array(body["errors"]), !errs.isEmpty {
                return errs.map { e in
                    if case .object = e { return [e["resource"]?.stringValue, e["path"]?.stringValue, e["message"]?.stringValue]
                        .compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ") }
                    return CtlJSON.text(e)
                }.joined(separator: "; ")
            }
        }
        let t = r.text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ").ctlTrimmed
        if t.isEmpty { return nil }
        return t.count > 300 ? String(t.prefix(300)) + "…" : t
    }

    static func report(_ f: CtlFailure) {
        switch f {
        case .reported: break
        case .usage(let m), .refused(let m), .connection(let m), .unreadable(let m): CtlRun.error(m)
        }
    }

    /// PUT order for `apply`: what others refer to first.
    static func dependencyOrder(_ resources: [Resource]) -> [Resource] {
        func rank(_ k: ResourceKind) -> Int {
            switch k {
            case .proxy: return 0
            case .gateway: return 1
            case .serviceEntry: return 2
            case .destinationRule: return 3
            case .virtualService: return 4
            }
        }
        return resources.enumerated().sorted { (rank($0.element.kind), $0.offset) < (rank($1.element.kind), $1.offset) }.map(\.element)
    }
}

/// Small helpers over ConfigValue (kept in a namespace so they never clash with other modules'
/// extensions).
enum CtlJSON {
    static func int(_ v: ConfigValue?) -> Int? {
        switch v {
        case .int(let i)?: return i
        case .double(let d)? where d == d.rounded() && abs(d) < 1e15: return Int(d)
        case .string(let s)?: return Int(s)
        default: return nil
        }
    }

    static func array(_ v: ConfigValue?) -> [ConfigValue]? {
        if case .array(let a)? = v { return a }
        return nil
    }

    static func entries(_ v: ConfigValue?) -> [ConfigValue.ObjectEntry]? {
        if case .object(let e)? = v { return e }
        return nil
    }

    /// A scalar as plain text, anything else as compact JSON.
    static func text(_ v: ConfigValue?) -> String {
        switch v {
        case nil, .null?: return ""
        case .string(let s)?: return s
        case .bool(let b)?: return b ? "true" : "false"
        case .int(let i)?: return String(i)
        case let other?: return other.jsonString()
        }
    }

    static func bool(_ v: ConfigValue?) -> Bool? {
        switch v {
        case .bool(let b)?: return b
        case .string(let s)?: return s == "true" ? true : s == "false" ? false : nil
        default: return nil
        }
    }

    /// Sets (or appends) `key` in an object; no-op on other values.
    static func setting(_ v: ConfigValue, _ key: String, _ new: ConfigValue) -> ConfigValue {
        guard case .object(var e) = v else { return v }
        if let i = e.firstIndex(where: { $0.key == key }) { e[i].value = new } else { e.append(.init(key, new)) }
        return .object(e)
    }

    static func removing(_ v: ConfigValue, _ keys: Set<String>) -> ConfigValue {
        guard case .object(let e) = v else { return v }
        return .object(e.filter { !keys.contains($0.key) })
    }
}
