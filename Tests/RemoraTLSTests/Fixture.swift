#if canImport(Glibc)
import Glibc
#endif
import RemoraTLS
import XCTest

/// Certificates shared by the tests of one run, made once (openssl CLI) in the first
/// test class's setUp and removed at exit.
enum Fixture {
    struct Files {
        let pki: TestPKI
        /// SANs: localhost, echo.test, 127.0.0.1, spiffe://cluster.local/ns/default/sa/echo.
        let server: TestPKI.Leaf
        /// SANs: other.test, *.other.test.
        let other: TestPKI.Leaf
        /// A client certificate: spiffe://cluster.local/ns/default/sa/client.
        let client: TestPKI.Leaf
    }

    nonisolated(unsafe) private static var made: Files?

    static func files() throws -> Files {
        if let made { return made }
        // A peer closing mid-write must be an error result, not a signal.
        signal(SIGPIPE, SIG_IGN)
        let pki = try TestPKI()
        let f = Files(
            pki: pki,
            server: try pki.leaf("server", cn: "localhost",
                                 sans: ["DNS:localhost", "DNS:echo.test", "IP:127.0.0.1", "URI:spiffe://cluster.local/ns/default/sa/echo"]),
            other: try pki.leaf("other", cn: "other.test", sans: ["DNS:other.test", "DNS:*.other.test"]),
            client: try pki.leaf("client", cn: "client", sans: ["URI:spiffe://cluster.local/ns/default/sa/client"]))
        made = f
        atexit { Fixture.made?.pki.remove() }
        return f
    }

    static func serverConfig(_ leaf: TestPKI.Leaf) -> TLSServerConfig {
        TLSServerConfig(certificateFile: leaf.cert, privateKeyFile: leaf.key)
    }

    /// A client trusting the test CA, with SNI and the names it accepts.
    static func clientConfig(sni: String? = "echo.test", sans: [String] = ["echo.test"], alpn: [String] = []) throws -> TLSClientConfig {
        var c = TLSClientConfig()
        c.caFile = try files().pki.ca
        c.sni = sni
        c.subjectAltNames = sans
        c.alpn = alpn
        return c
    }

    static func server(_ configure: (inout TLSServerConfig) -> Void = { _ in }) throws -> TLSServerContext {
        var c = serverConfig(try files().server)
        configure(&c)
        return try TLSServerContext(entries: [(hosts: ["*"], config: c)])
    }
}

extension TLSConnection.Handshake {
    var failureMessage: String? {
        if case .failed(let m) = self { return m }
        return nil
    }
}
