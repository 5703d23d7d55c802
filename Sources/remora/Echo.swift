import ArgumentParser
import RemoraEcho

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A small upstream for demos, tests and debugging (SPEC §7).")

    @Option(help: "HOST:PORT to listen on (port 0 picks a free one).")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "Name reported in x-echo-name and the JSON body.")
    var name: String = "echo"

    @Option(help: "Status of every default reply (a failing backend for tests).")
    var status: Int?

    @Option(help: "Worker threads.")
    var workers: Int = 1

    @Option(help: "PEM certificate chain: serve HTTPS (ALPN h2 and http/1.1). Needs --tls-key.")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    func run() throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT, got '\(listen)'")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let s = status, !(100...999).contains(s) { throw ValidationError("--status must be a 3-digit code") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        for (flag, path) in [("--tls-cert", tlsCert), ("--tls-key", tlsKey)] {
            if let path, access(path, R_OK) != 0 {
                throw ValidationError("cannot read \(flag) \(path): \(String(cString: strerror(errno)))")
            }
        }
        var options = EchoServer.Options(host: host, port: port, name: name, status: status, workers: workers)
        options.tlsCertificateFile = tlsCert
        options.tlsKeyFile = tlsKey
        let server = EchoServer(options)
        // A file that is readable but unusable (not PEM, key not matching) is a usage error too.
        do { try server.loadTLS() } catch { throw ValidationError("--tls-cert/--tls-key: \(error)") }
        do { try server.run() } catch {
            fputs("remora echo: \(error)\n", stderr)
            throw ExitCode(3)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
