import ArgumentParser
import RemoraCore
#if canImport(Glibc)
import Glibc
#endif

/// The `remora` command line (SPEC §1). Parsing only: the modules do the work.
@main
struct Remora: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remora",
        abstract: "A service-mesh data plane: HTTP/1.1 proxy driven by Istio-style resources.",
        subcommands: [Run.self, Validate.self, Echo.self, Ctl.self])

    /// SPEC exit codes: 0 success, 1 invalid input, 2 usage error, 3 a port or file problem.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            fputs(fullMessage(for: error) + "\n", stderr)
            Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Options shared by the commands that read configuration.
struct ConfigOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], parsing: .upToNextOption,
            help: "YAML/JSON files or directories of them (all *.yaml, *.yml, *.json). Default: $REMORA_CONFIG (comma- or colon-separated).")
    var configPaths: [String] = []

    @Option(help: "Log level: debug, info, warning, error. Default: $REMORA_LOG_LEVEL, else info.")
    var logLevel: String?

    /// `-c` paths, else those of $REMORA_CONFIG (so a container manifest needs no arguments).
    var paths: [String] {
        if !configPaths.isEmpty { return configPaths }
        guard let env = getenv("REMORA_CONFIG").map({ String(cString: $0) }), !env.isEmpty else { return [] }
        return env.split(whereSeparator: { $0 == "," || $0 == ":" }).map(String.init)
    }

    func applyLogLevel() throws {
        let level = logLevel ?? getenv("REMORA_LOG_LEVEL").map { String(cString: $0) } ?? "info"
        switch level {
        case "debug": Log.minimum = .debug
        case "info": Log.minimum = .info
        case "warning": Log.minimum = .warning
        case "error": Log.minimum = .error
        default: throw ValidationError("unknown log level '\(level)'")
        }
    }
}
