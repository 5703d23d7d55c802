import ArgumentParser
import RemoraConfig
#if canImport(Glibc)
import Glibc
#endif

/// `remora ctl route set|unset` (SPEC §4.4): the feature-branch runbook in one command.
/// Read the VirtualService (JSON, with its version), drop the server-set metadata, remove every
/// http rule whose match is exactly this header (exact) or cookie value, (set:) put first a rule
/// `feature-NAME-VALUE` that sends it to the destination, and write it back with
/// `If-Match: "<version>"`; on 409/412 read again and retry (10 times, jittered backoff).
struct CtlRoute: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Route one header or cookie value to a feature branch (set), or stop doing so (unset).",
        subcommands: [CtlRouteSet.self, CtlRouteUnset.self])
}

/// --virtual-service and --header/--cookie, shared by set and unset.
struct CtlRouteTarget: ParsableArguments {
    @Option(help: ArgumentHelp("The VirtualService to edit (NAME alone: namespace default).", valueName: "ns/name"))
    var virtualService: String

    @Option(help: ArgumentHelp("Match requests whose header NAME is exactly VALUE.", valueName: "name=value"))
    var header: String?

    @Option(help: ArgumentHelp("Match requests carrying cookie NAME with exactly VALUE.", valueName: "name=value"))
    var cookie: String?

    func selector() throws(CtlFailure) -> CtlRouteEdit.Selector {
        guard (header == nil) != (cookie == nil) else { throw CtlFailure.usage("give exactly one of --header NAME=VALUE and --cookie NAME=VALUE") }
        let flag = header != nil ? "--header" : "--cookie"
        let spec = header ?? cookie!
        guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
            throw CtlFailure.usage("\(flag) expects NAME=VALUE, got '\(spec)'")
        }
        let name = String(spec[..<eq])
        let value = String(spec[spec.index(after: eq)...])
        guard !value.isEmpty else { throw CtlFailure.usage("\(flag) \(name)=: the value must not be empty") }
        if header != nil {
            guard CtlRouteEdit.isToken(name) else { throw CtlFailure.usage("--header: '\(name)' is not a valid header name") }
            return .header(name: name.lowercased(), value: value)
        }
        guard CtlRouteEdit.isToken(name) else { throw CtlFailure.usage("--cookie: '\(name)' is not a valid cookie name") }
        guard !value.contains(";"), !value.contains(" ") else { throw CtlFailure.usage("--cookie: the value must not contain ';' or spaces") }
        return .cookie(name: name, value: value)
    }

    func vs() throws(CtlFailure) -> (namespace: String, name: String) {
        try CtlKind.name(virtualService, what: "--virtual-service NS/NAME")
    }
}

struct CtlRouteSet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Send one header or cookie value to a destination: the first rule of the VirtualService.",
        discussion: """
            Replaces any earlier rule whose match is exactly that header (exact) or cookie value. \
            Example: remora ctl route set --virtual-service default/adservice --header userid=4f9e715d \
            --destination adservice-myfeature
            """)

    @OptionGroup var options: CtlOptions
    @OptionGroup var target: CtlRouteTarget

    @Option(help: ArgumentHelp("Where the matching requests go.", valueName: "host[:port][/subset]"))
    var destination: String

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let sel = try target.selector()
            let dest = try CtlRouteEdit.Destination(parsing: destination)
            let (ns, name) = try target.vs()
            try CtlRouteEdit.run(client: try options.client(), namespace: ns, name: name, selector: sel, destination: dest)
        }
    }
}

struct CtlRouteUnset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unset",
        abstract: "Remove the rules for one header or cookie value (exit 0 if there is none).")

    @OptionGroup var options: CtlOptions
    @OptionGroup var target: CtlRouteTarget

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let sel = try target.selector()
            let (ns, name) = try target.vs()
            try CtlRouteEdit.run(client: try options.client(), namespace: ns, name: name, selector: sel, destination: nil)
        }
    }
}

/// The edit itself, pure, and the read-modify-write loop around it.
enum CtlRouteEdit {
    enum Selector: CustomStringConvertible {
        case header(name: String, value: String)
        case cookie(name: String, value: String)

        var description: String {
            switch self {
            case .header(let n, let v): return "header \(n)=\(v)"
            case .cookie(let n, let v): return "cookie \(n)=\(v)"
            }
        }

        /// `feature-NAME-VALUE`, lowercase, [a-z0-9.-] only.
        var ruleName: String {
            switch self {
            case .header(let n, let v), .cookie(let n, let v): return CtlRouteEdit.sanitize("feature-\(n)-\(v)")
            }
        }

        /// The match of the rule `set` writes.
        var match: ConfigValue {
            let exact = ConfigValue.object([.init("exact", .string(value))])
            switch self {
            case .header(let n, _): return .array([.object([.init("headers", .object([.init(n, exact)]))])])
            case .cookie(let n, _): return .array([.object([.init("cookies", .object([.init(n, exact)]))])])
            }
        }

        var value: String {
            switch self { case .header(_, let v), .cookie(_, let v): return v }
        }
    }

    struct Destination: CustomStringConvertible {
        var host: String
        var port: Int?
        var subset: String?

        /// HOST[:PORT][/SUBSET]
        init(parsing s: String) throws(CtlFailure) {
            var rest = Substring(s)
            subset = nil
            if let slash = rest.firstIndex(of: "/") {
                let sub = rest[rest.index(after: slash)...]
                guard !sub.isEmpty, !sub.contains("/") else { throw CtlFailure.usage("--destination expects HOST[:PORT][/SUBSET], got '\(s)'") }
                subset = String(sub)
                rest = rest[..<slash]
            }
            port = nil
            if let colon = rest.lastIndex(of: ":") {
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                    throw CtlFailure.usage("--destination: bad port in '\(s)'")
                }
                port = p
                rest = rest[..<colon]
            }
            guard !rest.isEmpty, !rest.contains(where: { $0 == " " || $0 == ":" }) else {
                throw CtlFailure.usage("--destination expects HOST[:PORT][/SUBSET], got '\(s)'")
            }
            host = String(rest)
        }

        var value: ConfigValue {
            var e: [ConfigValue.ObjectEntry] = [.init("host", .string(host))]
            if let port { e.append(.init("port", .object([.init("number", .int(port))]))) }
            if let subset { e.append(.init("subset", .string(subset))) }
            return .object(e)
        }

        var description: String { host + (port.map { ":\($0)" } ?? "") + (subset.map { "/\($0)" } ?? "") }
    }

    /// RFC 9110 token (header names; cookie names are tokens too).
    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    static func sanitize(_ s: String) -> String {
        var out = ""
        for ch in s.lowercased().unicodeScalars {
            let ok = (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") || ch == "."
            if ok { out.unicodeScalars.append(ch) } else if !out.hasSuffix("-") { out += "-" }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return String(out.prefix(253))
    }

    /// Fields a server sets, dropped before writing back (the runbook's step 2).
    static let serverMetadata: Set<String> = ["uid", "selfLink", "resourceVersion", "generation", "creationTimestamp",
                                              "annotations", "managedFields", "deletionTimestamp",
                                              "deletionGracePeriodSeconds"]

    static func stripServerFields(_ doc: ConfigValue) -> ConfigValue {
        var d = CtlJSON.removing(doc, ["status", "version"])
        if let meta = d["metadata"], CtlJSON.entries(meta) != nil {
            d = CtlJSON.setting(d, "metadata", CtlJSON.removing(meta, serverMetadata))
        }
        return d
    }

    /// `{exact: VALUE}` and nothing else.
    private static func isExact(_ v: ConfigValue, _ value: String) -> Bool {
        guard let e = CtlJSON.entries(v), e.count == 1, e[0].key == "exact" else { return false }
        return e[0].value == .string(value)
    }

    /// One match entry that tests exactly this value and nothing else (`name` aside). For a cookie,
    /// the `cookies` extension, or a `Cookie` header that is exactly `NAME=VALUE`.
    static func isSelectorMatch(_ m: ConfigValue, _ sel: Selector) -> Bool {
        guard let entries = CtlJSON.entries(m) else { return false }
        let conds = entries.filter { $0.key != "name" }
        guard conds.count == 1, let map = CtlJSON.entries(conds[0].value), map.count == 1 else { return false }
        let (field, key, test) = (conds[0].key, map[0].key, map[0].value)
        switch sel {
        case .header(let n, let v):
            return field == "headers" && key.lowercased() == n.lowercased() && isExact(test, v)
        case .cookie(let n, let v):
            if field == "cookies" { return key == n && isExact(test, v) }
            return field == "headers" && key.lowercased() == "cookie" && isExact(test, "\(n)=\(v)")
        }
    }

    /// A rule for this value: its `match` is non-empty and every entry is exactly the selector.
    static func isRule(_ rule: ConfigValue, for sel: Selector) -> Bool {
        guard let ms = CtlJSON.array(rule["match"]), !ms.isEmpty else { return false }
        return ms.allSatisfy { isSelectorMatch($0, sel) }
    }

    struct Edit {
        var document: ConfigValue
        var removed: [(index: Int, rule: ConfigValue)]
        var added: ConfigValue?
        var changed: Bool
    }

    /// The runbook's steps 2-4 on one VirtualService document.
    static func edit(_ doc: ConfigValue, selector sel: Selector, destination: Destination?) throws(CtlFailure) -> Edit {
        let stripped = stripServerFields(doc)
        guard let spec = stripped["spec"], CtlJSON.entries(spec) != nil else {
            throw CtlFailure.refused("the VirtualService read back has no spec")
        }
        let http = CtlJSON.array(spec["http"]) ?? []
        var kept: [ConfigValue] = []
        var removed: [(Int, ConfigValue)] = []
        for (i, rule) in http.enumerated() {
            if isRule(rule, for: sel) { removed.append((i, rule)) } else { kept.append(rule) }
        }
        var added: ConfigValue?
        if let destination {
            let rule = ConfigValue.object([
                .init("name", .string(sel.ruleName)),
                .init("match", sel.match),
                .init("route", .array([.object([.init("destination", destination.value)])])),
            ])
            kept.insert(rule, at: 0)
            added = rule
        }
        let newDoc = CtlJSON.setting(stripped, "spec", CtlJSON.setting(spec, "http", .array(kept)))
        return Edit(document: newDoc, removed: removed, added: added, changed: kept != http)
    }

    /// "#0 \"feature-userid-alice\": header userid=alice -> adservice-myfeature:8080/v2"
    static func describe(_ rule: ConfigValue, index: Int, selector: Selector) -> String {
        let name = rule["name"]?.stringValue.map { " \"\($0)\"" } ?? ""
        var dest = "-"
        if let routes = CtlJSON.array(rule["route"]), !routes.isEmpty {
            dest = routes.map { CtlFormat.destination($0, weighted: routes.count > 1) }.joined(separator: ", ")
        } else if let d = CtlFormat.destinations(CtlJSON.removing(rule, ["match", "name"])) {
            dest = d
        }
        return "rule #\(index)\(name): \(selector) -> \(dest)"
    }

    /// GET, edit, PUT with If-Match; on 409/412 read again (10 retries, jittered backoff).
    static func run(client: CtlHTTPClient, namespace: String, name: String, selector: Selector,
                    destination: Destination?) throws(CtlFailure) {
        let path = CtlKind.path(.virtualService, namespace, name)
        let subject = ResourceKey(kind: .virtualService, namespace: namespace, name: name).description
        let maxRetries = 10
        var retry = 0
        var rng = SystemRandomNumberGenerator()
        while true {
            let got = try client.send("GET", path, headers: [("Accept", "application/json")])
            guard got.status == 200 else {
                if got.status == 404 { throw CtlFailure.refused("\(subject) not found (GET \(path): 404)") }
                throw CtlAdmin.httpFailure("GET \(path)", got, resource: subject)
            }
            guard let body = CtlAdmin.json(got), CtlJSON.entries(body) != nil else {
                throw CtlFailure.connection("admin API at \(client.endpoint): GET \(path) did not return a JSON object")
            }
            // The resource itself, or wrapped as {"version": N, "resource"|"item": {...}}.
            var doc = body
            for key in ["resource", "item", "object"] where body["kind"] == nil {
                if let inner = body[key], CtlJSON.entries(inner) != nil { doc = inner; break }
            }
            guard let version = got.etagVersion ?? CtlJSON.int(body["version"]) ?? CtlJSON.int(doc["metadata"]?["resourceVersion"]) else {
                throw CtlFailure.refused("\(subject): the admin API sent no version (ETag); refusing to write without If-Match")
            }
            let e = try edit(doc, selector: selector, destination: destination)
            if !e.changed {
                if destination == nil {
                    CtlRun.out("no rule for \(selector) in \(subject) (version \(version)); nothing to do")
                } else {
                    CtlRun.out("unchanged: \(describe(e.added!, index: 0, selector: selector)) already first in \(subject) (version \(version))")
                }
                return
            }
            let put = try client.send("PUT", path,
                                      headers: [("Content-Type", "application/json"), ("Accept", "application/json"),
                                                ("If-Match", "\"\(version)\"")],
                                      body: Array(e.document.jsonString().utf8))
            switch put.status {
            case 200, 201, 204:
                for (i, rule) in e.removed { CtlRun.out("removed \(describe(rule, index: i, selector: selector))") }
                if let added = e.added { CtlRun.out("added \(describe(added, index: 0, selector: selector))") }
                let newVersion = CtlAdmin.version(put).map { "version \($0)" } ?? "written"
                CtlRun.out("\(subject): \(newVersion) (was \(version))")
                return
            case 409, 412:
                if retry >= maxRetries {
                    throw CtlFailure.refused("\(subject): still changing underneath after \(maxRetries) retries (HTTP \(put.status)); giving up")
                }
                retry += 1
                CtlRun.note("\(subject) changed since version \(version) (HTTP \(put.status)); reading it again (retry \(retry)/\(maxRetries))")
                // base = 20 ms x retry (at most 100 ms), plus up to twice that at random, so writers fall apart.
                let base = 20_000 * min(retry, 5)
                usleep(UInt32(base + Int.random(in: 0...(2 * base), using: &rng)))
            default:
                throw CtlAdmin.changeFailure("PUT \(path)", put, resource: subject)
            }
        }
    }
}
