import ArgumentParser
import RemoraConfig
#if canImport(Glibc)
import Glibc
#endif

/// `remora ctl`: a client of the admin API (SPEC §4). Every subcommand talks HTTP/1.1 to
/// `--admin` (default http://127.0.0.1:15000, or $REMORA_ADMIN).
///
/// Exit codes: 0 success; 1 the server refused (400 with every error printed, 404, 409/412,
/// any other HTTP error) or the input file is invalid; 2 a usage error or the admin API
/// cannot be reached (refused, timeout, not HTTP); 3 a file cannot be read.
struct Ctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "A client of the admin API: get, apply, delete, history, rollback, explain, route set|unset.",
        subcommands: [CtlGet.self, CtlApply.self, CtlDelete.self, CtlHistory.self, CtlRollback.self,
                      CtlExplain.self, CtlRoute.self])

    @OptionGroup var options: CtlOptions
}

/// Options every `ctl` subcommand takes, before or after the subcommand's name.
struct CtlOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Admin API URL (default $REMORA_ADMIN, else http://127.0.0.1:15000).",
                               valueName: "url"))
    var admin: String?

    @Option(help: "Seconds to wait for the admin API to connect and to answer each request.")
    var timeout: Double = 30

    func client() throws(CtlFailure) -> CtlHTTPClient {
        guard timeout > 0, timeout < 1e6 else { throw CtlFailure.usage("--timeout must be a positive number of seconds") }
        let env = getenv("REMORA_ADMIN").map { String(cString: $0) }
        let url = admin ?? (env?.isEmpty == false ? env! : "http://127.0.0.1:15000")
        return CtlHTTPClient(endpoint: try CtlEndpoint(url: url), timeoutSeconds: timeout)
    }
}

/// Why a ctl command failed; `exitCode` follows SPEC §1.
enum CtlFailure: Error {
    /// Bad flags or arguments: exit 2.
    case usage(String)
    /// The server refused, or the input is invalid: exit 1.
    case refused(String)
    /// The admin API cannot be reached or does not speak HTTP: exit 2.
    case connection(String)
    /// A file cannot be read: exit 3.
    case unreadable(String)
    /// Messages already printed; exit with this code.
    case reported(Int32)

    var exitCode: Int32 {
        switch self {
        case .usage, .connection: return 2
        case .refused: return 1
        case .unreadable: return 3
        case .reported(let c): return c
        }
    }
}

enum CtlRun {
    /// Runs a subcommand body: maps CtlFailure to one stderr line and the exit code.
    static func perform(_ body: () throws(CtlFailure) -> Void) throws {
        signal(SIGPIPE, SIG_IGN)
        do {
            try body()
        } catch {
            switch error {
            case .reported: break
            case .usage(let m), .refused(let m), .connection(let m), .unreadable(let m):
                CtlRun.error(m)
            }
            fflush(stdout)
            throw ExitCode(error.exitCode)
        }
        fflush(stdout)
    }

    static func error(_ message: String) {
        fflush(stdout)
        fputs("remora ctl: \(message)\n", stderr)
    }

    static func note(_ message: String) {
        fflush(stdout)
        fputs("remora ctl: \(message)\n", stderr)
    }

    static func out(_ line: String) {
        print(line)
    }
}

/// KIND arguments: `VirtualService`, `virtualservice`, `virtualservices`, or kubectl's short
/// names `vs`, `dr`, `gw`, `se`.
enum CtlKind {
    static func parse(_ s: String) throws(CtlFailure) -> ResourceKind {
        switch s.lowercased() {
        case "vs": return .virtualService
        case "dr": return .destinationRule
        case "gw": return .gateway
        case "se": return .serviceEntry
        default: break
        }
        if let k = ResourceKind(name: s) { return k }
        throw CtlFailure.usage("unknown kind '\(s)' (expected one of \(ResourceKind.allCases.map(\.plural).joined(separator: ", ")), or vs, dr, gw, se)")
    }

    /// "NS/NAME" or "NAME" (namespace `default`).
    static func name(_ s: String, what: String = "NS/NAME") throws(CtlFailure) -> (namespace: String, name: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1 where !parts[0].isEmpty: return ("default", parts[0])
        case 2 where !parts[0].isEmpty && !parts[1].isEmpty: return (parts[0], parts[1])
        default: throw CtlFailure.usage("expected \(what), got '\(s)'")
        }
    }

    static func path(_ kind: ResourceKind, _ ns: String, _ name: String) -> String {
        "/config/\(kind.plural)/\(CtlFormat.percentEncode(ns))/\(CtlFormat.percentEncode(name))"
    }
}

// MARK: - get

struct CtlGet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print the configuration in force: all of it, one kind, or one resource.",
        discussion: "GET /config, /config/KIND or /config/KIND/NS/NAME; prints the body (JSON indented, or YAML with -o yaml).")

    @OptionGroup var options: CtlOptions

    @Argument(help: "Kind: virtualservices (vs), destinationrules (dr), gateways (gw), serviceentries (se), proxies.")
    var kind: String?

    @Argument(help: "NS/NAME (or NAME in namespace default).")
    var name: String?

    @Option(name: .shortAndLong, help: "Output format: json or yaml.")
    var output: String = "json"

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let format = try CtlFormat.outputFormat(output)
            var path = "/config"
            if let kind {
                let k = try CtlKind.parse(kind)
                path = "/config/\(k.plural)"
                if let name {
                    let (ns, n) = try CtlKind.name(name)
                    path = CtlKind.path(k, ns, n)
                }
            }
            let client = try options.client()
            let r = try client.send("GET", path, headers: [("Accept", format == "yaml" ? "application/yaml" : "application/json")])
            guard r.status == 200 else { throw CtlAdmin.httpFailure("GET \(path)", r) }
            CtlFormat.printBody(r, format: format)
        }
    }
}

// MARK: - apply

struct CtlApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Create or replace the resources of a file (PUT /config/KIND/NS/NAME for each).",
        discussion: """
            FILE is multi-document YAML or JSON, or a List; '-' reads stdin. Each resource is checked \
            locally first (nothing is sent if any is invalid), then PUT one by one in dependency order \
            (Proxy, Gateway, ServiceEntry, DestinationRule, VirtualService); every resource is tried \
            and every error printed. --replace-all sends the whole file with PUT /config instead: \
            one atomic change that also removes every resource not in the file.
            """)

    @OptionGroup var options: CtlOptions

    @Option(name: [.customShort("f"), .customLong("filename")], help: "The file to apply, or '-' for stdin.")
    var file: String

    @Flag(help: "Validate on the server and report; change nothing (?dryRun=true).")
    var dryRun = false

    @Flag(help: "Replace the whole configuration with the file (PUT /config).")
    var replaceAll = false

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let text = try CtlFiles.read(file)
            let source = file == "-" ? "<stdin>" : file
            let client = try options.client()
            let query = dryRun ? "?dryRun=true" : ""
            if replaceAll {
                let trimmed = text.drop { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }
                let json = trimmed.first == "{" || trimmed.first == "["
                let r = try client.send("PUT", "/config" + query,
                                        headers: [("Content-Type", json ? "application/json" : "application/yaml"),
                                                  ("Accept", "application/json")],
                                        body: Array(text.utf8))
                guard r.status == 200 else { throw CtlAdmin.changeFailure("PUT /config", r, file: source) }
                CtlRun.out(CtlAdmin.describeChange("configuration", action: "replaced", r, dryRun: dryRun))
                return
            }
            let resources: [Resource]
            do throws(ConfigErrors) { resources = try ConfigLoader.decode(text, source: source) } catch {
                for e in error.errors { fputs(e.description + "\n", stderr) }
                throw CtlFailure.reported(error.hasUnreadable ? 3 : 1)
            }
            if resources.isEmpty { throw CtlFailure.refused("\(source): no resources") }
            var failed = false
            for r in CtlAdmin.dependencyOrder(resources) {
                let path = CtlKind.path(r.kind, r.namespace, r.name)
                let subject = r.key.description
                let reply = try client.send("PUT", path + query,
                                            headers: [("Content-Type", "application/json"), ("Accept", "application/json")],
                                            body: Array(r.raw.jsonString().utf8))
                if reply.status == 200 {
                    CtlRun.out(CtlAdmin.describeChange(subject, action: "applied", reply, dryRun: dryRun))
                } else {
                    failed = true
                    CtlAdmin.report(CtlAdmin.changeFailure("PUT \(path)", reply, file: source, resource: subject))
                }
            }
            if failed { throw CtlFailure.reported(1) }
        }
    }
}

enum CtlFiles {
    /// The whole file, or stdin for "-". Unreadable: exit 3.
    static func read(_ path: String) throws(CtlFailure) -> String {
        var bytes: [UInt8] = []
        let fp: UnsafeMutablePointer<FILE>?
        if path == "-" { fp = stdin } else { fp = fopen(path, "rb") }
        guard let fp else { throw CtlFailure.unreadable("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { if path != "-" { fclose(fp) } }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, fp) }
            if n > 0 { bytes += chunk[0..<n] }
            if n < chunk.count {
                if ferror(fp) != 0 { throw CtlFailure.unreadable("cannot read \(path): \(String(cString: strerror(errno)))") }
                break
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CtlFailure.refused("\(path): file is not valid UTF-8")
        }
        return text
    }
}

// MARK: - delete

struct CtlDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete one resource (DELETE /config/KIND/NS/NAME).",
        discussion: "Either 'delete KIND NS/NAME' or 'delete KIND/NS/NAME'.")

    @OptionGroup var options: CtlOptions

    @Argument(help: "KIND, or KIND/NS/NAME.")
    var kind: String

    @Argument(help: "NS/NAME (or NAME in namespace default).")
    var name: String?

    @Flag(help: "Validate on the server and report; change nothing (?dryRun=true).")
    var dryRun = false

    @Option(help: "Only delete if the configuration version in force is this one (If-Match).")
    var ifVersion: Int?

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            var kindArg = kind
            var nameArg = name
            if nameArg == nil {
                let parts = kind.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw CtlFailure.usage("expected KIND NS/NAME or KIND/NS/NAME, got '\(kind)'") }
                kindArg = String(parts[0])
                nameArg = String(parts[1])
            }
            let k = try CtlKind.parse(kindArg)
            let (ns, n) = try CtlKind.name(nameArg!)
            let path = CtlKind.path(k, ns, n)
            var headers = [("Accept", "application/json")]
            if let ifVersion { headers.append(("If-Match", "\"\(ifVersion)\"")) }
            let client = try options.client()
            let r = try client.send("DELETE", path + (dryRun ? "?dryRun=true" : ""), headers: headers)
            let subject = ResourceKey(kind: k, namespace: ns, name: n).description
            guard r.status == 200 || r.status == 204 else {
                throw CtlAdmin.changeFailure("DELETE \(path)", r, resource: subject)
            }
            CtlRun.out(CtlAdmin.describeChange(subject, action: "deleted", r, dryRun: dryRun))
        }
    }
}

// MARK: - history, rollback

struct CtlHistory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "The last configuration versions kept: version, time, what changed (GET /config/history).")

    @OptionGroup var options: CtlOptions

    @Option(name: .shortAndLong, help: "Output format: table (default), json or yaml.")
    var output: String = "table"

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let format = output == "table" ? "table" : try CtlFormat.outputFormat(output)
            let client = try options.client()
            let r = try client.send("GET", "/config/history", headers: [("Accept", format == "yaml" ? "application/yaml" : "application/json")])
            guard r.status == 200 else { throw CtlAdmin.httpFailure("GET /config/history", r) }
            if format != "table" { CtlFormat.printBody(r, format: format); return }
            CtlFormat.printHistory(r)
        }
    }
}

struct CtlRollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Make an earlier configuration version current again, as a new version (POST /config/rollback).",
        discussion: "Without --to, the server's default (the version before the current one).")

    @OptionGroup var options: CtlOptions

    @Option(help: "The version to return to.")
    var to: Int?

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let client = try options.client()
            let path = "/config/rollback" + (to.map { "?to=\($0)" } ?? "")
            let r = try client.send("POST", path, headers: [("Accept", "application/json")])
            guard r.status == 200 else { throw CtlAdmin.changeFailure("POST \(path)", r) }
            let back = to ?? CtlAdmin.json(r).flatMap { CtlJSON.int($0["rolledBackTo"]) }
            CtlRun.out(CtlAdmin.describeChange("configuration", action: back.map { "rolled back to version \($0)" } ?? "rolled back", r, dryRun: false))
        }
    }
}

// MARK: - explain

struct CtlExplain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Which VirtualService rule a request would match, and why each earlier rule did not (POST /routes/explain).")

    @OptionGroup var options: CtlOptions

    @Option(help: "The listener, as the admin API names it (e.g. a port such as 15001, or ADDRESS:PORT).")
    var listener: String

    @Option(help: "The request's authority (Host).")
    var authority: String

    @Option(help: "Request method.")
    var method: String = "GET"

    @Option(help: "Request path, with the query if any.")
    var path: String = "/"

    @Option(name: [.customShort("H"), .customLong("header")], help: "A request header, 'name: value' (repeatable).")
    var headers: [String] = []

    @Option(name: .shortAndLong, help: "Output format: table (default), json or yaml.")
    var output: String = "table"

    func run() throws {
        try CtlRun.perform { () throws(CtlFailure) in
            let format = output == "table" ? "table" : try CtlFormat.outputFormat(output)
            var merged: [ConfigValue.ObjectEntry] = []
            for h in headers {
                guard let colon = h.firstIndex(of: ":") else { throw CtlFailure.usage("-H expects 'name: value', got '\(h)'") }
                let name = String(h[..<colon]).ctlTrimmed.lowercased()
                let value = String(h[h.index(after: colon)...]).ctlTrimmed
                guard !name.isEmpty else { throw CtlFailure.usage("-H expects 'name: value', got '\(h)'") }
                if let i = merged.firstIndex(where: { $0.key == name }), case .string(let old) = merged[i].value {
                    merged[i].value = .string(old + (name == "cookie" ? "; " : ", ") + value)
                } else {
                    merged.append(.init(name, .string(value)))
                }
            }
            let body = ConfigValue.object([
                .init("listener", .string(listener)),
                .init("authority", .string(authority)),
                .init("method", .string(method)),
                .init("path", .string(path)),
                .init("headers", .object(merged)),
            ])
            let client = try options.client()
            let r = try client.send("POST", "/routes/explain",
                                    headers: [("Content-Type", "application/json"),
                                              ("Accept", format == "yaml" ? "application/yaml" : "application/json")],
                                    body: Array(body.jsonString().utf8))
            guard r.status == 200 else { throw CtlAdmin.changeFailure("POST /routes/explain", r) }
            if format != "table" { CtlFormat.printBody(r, format: format); return }
            CtlFormat.printExplain(r)
        }
    }
}
