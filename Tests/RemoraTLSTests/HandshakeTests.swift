import RemoraTLS
import XCTest

final class HandshakeTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    func testTLS13ByDefaultAndServerPrefersH2() throws {
        let server = try Fixture.server()
        let client = try TLSClientContext(Fixture.clientConfig(alpn: ["http/1.1", "h2"]))
        let p = Peers(client: client, server: server)
        p.handshake()
        XCTAssertTrue(p.bothDone, "\(p.clientResult) \(p.serverResult)")
        XCTAssertTrue(p.client.handshakeDone && p.server.handshakeDone)
        XCTAssertEqual(p.client.version, "TLSv1.3")
        XCTAssertEqual(p.server.version, "TLSv1.3")
        XCTAssertEqual(p.client.alpn, "h2")
        XCTAssertEqual(p.server.alpn, "h2")
        XCTAssertEqual(p.server.serverName, "echo.test")
        XCTAssertEqual(p.client.peerCertificateSubject, "CN=localhost,O=Remora")
        XCTAssertNil(p.server.peerCertificateSubject)
        XCTAssertFalse(p.client.resumed)
    }

    func testALPNHTTP1AndNone() throws {
        let server = try Fixture.server()
        let h1 = Peers(client: try TLSClientContext(Fixture.clientConfig(alpn: ["http/1.1"])), server: server)
        h1.handshake()
        XCTAssertTrue(h1.bothDone)
        XCTAssertEqual(h1.server.alpn, "http/1.1")
        let none = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: server)
        none.handshake()
        XCTAssertTrue(none.bothDone)
        XCTAssertNil(none.server.alpn)
        // No protocol in common: the handshake goes on without ALPN.
        let odd = Peers(client: try TLSClientContext(Fixture.clientConfig(alpn: ["spdy/3"])), server: server)
        odd.handshake()
        XCTAssertTrue(odd.bothDone)
        XCTAssertNil(odd.client.alpn)
    }

    func testSNISelectsCertificateAndItsSettings() throws {
        let f = try Fixture.files()
        var other = Fixture.serverConfig(f.other)
        other.maxVersion = .tls1_2
        other.alpn = ["http/1.1"]
        let server = try TLSServerContext(entries: [
            (hosts: ["echo.test", "localhost"], config: Fixture.serverConfig(f.server)),
            (hosts: ["*.other.test"], config: other),
        ])
        // The second entry's certificate, and its own version cap and ALPN list.
        let second = Peers(client: try TLSClientContext(Fixture.clientConfig(sni: "A.Other.Test", sans: ["a.other.test"], alpn: ["h2", "http/1.1"])), server: server)
        second.handshake()
        XCTAssertTrue(second.bothDone, "\(second.clientResult) \(second.serverResult)")
        XCTAssertEqual(second.client.peerCertificateSubject, "CN=other.test,O=Remora")
        XCTAssertEqual(second.server.serverName, "A.Other.Test")
        XCTAssertEqual(second.client.version, "TLSv1.2")
        XCTAssertEqual(second.client.alpn, "http/1.1")
        // The default: an exact host, no SNI, and an unknown name.
        for sni in ["echo.test", nil, "unknown.test"] {
            let p = Peers(client: try TLSClientContext(Fixture.clientConfig(sni: sni, sans: ["localhost"], alpn: ["h2"])), server: server)
            p.handshake()
            XCTAssertTrue(p.bothDone, "\(sni ?? "no SNI"): \(p.clientResult) \(p.serverResult)")
            XCTAssertEqual(p.client.peerCertificateSubject, "CN=localhost,O=Remora")
            XCTAssertEqual(p.client.version, "TLSv1.3")
            XCTAssertEqual(p.client.alpn, "h2")
            XCTAssertEqual(p.server.serverName, sni)
        }
    }

    func testTLS10ClientRefusedByDefault() throws {
        var c = try Fixture.clientConfig()
        c.minVersion = .tls1_0
        c.maxVersion = .tls1_0
        let p = Peers(client: try TLSClientContext(c), server: try Fixture.server())
        let (cr, sr) = p.handshake()
        XCTAssertTrue(sr.failureMessage?.contains("unsupported protocol") == true, "\(sr)")
        XCTAssertTrue(cr.failureMessage?.contains("protocol version") == true, "\(cr)")
        // The refusal is the server's minimum: allowing 1.0 lets the same client in.
        let old = Peers(client: try TLSClientContext(c), server: try Fixture.server { $0.minVersion = .tls1_0 })
        old.handshake()
        XCTAssertTrue(old.bothDone, "\(old.clientResult) \(old.serverResult)")
        XCTAssertEqual(old.server.version, "TLSv1")
    }

    func testMutualRequiresClientCertificate() throws {
        let f = try Fixture.files()
        let server = try Fixture.server {
            $0.clientAuth = .required
            $0.caFile = f.pki.ca
        }
        // TLS 1.3: the client finishes first and learns of the refusal on its first read.
        let without = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: server)
        let (_, sr) = without.handshake()
        XCTAssertTrue(sr.failureMessage?.contains("peer did not return a certificate") == true, "\(sr)")
        let (_, last) = Peers.drain(without.client)
        XCTAssertNotEqual(last, .wouldBlock)
        if case .bytes = last { XCTFail("client read data from a refused connection") }

        var c = try Fixture.clientConfig()
        c.certificateFile = f.client.cert
        c.privateKeyFile = f.client.key
        let with = Peers(client: try TLSClientContext(c), server: server)
        with.handshake()
        XCTAssertTrue(with.bothDone, "\(with.clientResult) \(with.serverResult)")
        XCTAssertEqual(with.server.peerCertificateSubject, "CN=client,O=Remora")
        XCTAssertEqual(with.server.peerSubjectAltNames, ["spiffe://cluster.local/ns/default/sa/client"])
        let (got, _) = Peers.transfer(Array("hello".utf8), from: with.client, to: with.server)
        XCTAssertEqual(String(decoding: got, as: UTF8.self), "hello")
    }

    func testOptionalMutual() throws {
        let f = try Fixture.files()
        let server = try Fixture.server {
            $0.clientAuth = .optional
            $0.caFile = f.pki.ca
        }
        let without = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: server)
        without.handshake()
        XCTAssertTrue(without.bothDone)
        XCTAssertNil(without.server.peerCertificateSubject)
        var c = try Fixture.clientConfig()
        c.certificateFile = f.client.cert
        c.privateKeyFile = f.client.key
        let with = Peers(client: try TLSClientContext(c), server: server)
        with.handshake()
        XCTAssertTrue(with.bothDone)
        XCTAssertEqual(with.server.peerCertificateSubject, "CN=client,O=Remora")
    }

    func testCipherSuitesForTLS12() throws {
        let server = try Fixture.server {
            $0.maxVersion = .tls1_2
            $0.cipherSuites = ["ECDHE-ECDSA-AES128-GCM-SHA256"]
        }
        let p = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: server)
        p.handshake()
        XCTAssertTrue(p.bothDone)
        XCTAssertEqual(p.client.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256")
        XCTAssertThrowsError(try Fixture.server { $0.cipherSuites = ["NOT-A-CIPHER"] })
    }
}
