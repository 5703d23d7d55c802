import ArgumentParser
import RemoraConfig
import RemoraCore
import RemoraPolicy
import RemoraProxy
#if canImport(Glibc)
import Glibc
#endif

/// Loads and compiles the configuration the way `run` and `validate` share.
enum ConfigSource {
    static func snapshot(paths: [String]) throws(ConfigErrors) -> Snapshot {
        let set = paths.isEmpty
            ? try ConfigLoader.parse(DemoConfig.yaml, source: "<embedded demo>")
            : try ConfigLoader.load(paths: paths)
        return try Snapshot.compile(set)
    }

    /// Prints every error, one line each, and returns the SPEC exit code.
    static func report(_ errors: ConfigErrors) -> Int32 {
        for e in errors.errors { fputs(e.description + "\n", stderr) }
        return errors.errors.contains { $0.kind == .unreadable } ? 3 : 1
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the proxy.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        try options.applyLogLevel()
        let paths = options.paths
        let snapshot: Snapshot
        do { snapshot = try ConfigSource.snapshot(paths: paths) } catch {
            throw ExitCode(ConfigSource.report(error))
        }
        if paths.isEmpty { Log.info("no -c given: serving the embedded demo configuration") }
        let runtime = ProxyRuntime(snapshot: snapshot, watchPaths: paths) { () throws -> ConfigSet in
            paths.isEmpty ? try ConfigLoader.parse(DemoConfig.yaml, source: "<embedded demo>")
                          : try ConfigLoader.load(paths: paths)
        }
        do { try runtime.run() } catch {
            fputs("remora: \(error)\n", stderr)
            throw ExitCode(3)
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Parse and validate configuration; print every error. Never binds a port.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        do {
            let snapshot = try ConfigSource.snapshot(paths: options.paths)
            print("valid: \(snapshot.config.resources.count) resource(s), \(snapshot.listeners.count) listener(s), \(snapshot.clusters.count) cluster(s)")
        } catch {
            throw ExitCode(ConfigSource.report(error))
        }
    }
}
