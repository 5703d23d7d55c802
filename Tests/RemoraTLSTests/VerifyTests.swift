import RemoraTLS
import XCTest

/// Client-side verification of the upstream's certificate (a DestinationRule's tls).
final class VerifyTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    private func connect(_ c: TLSClientConfig) throws -> Peers {
        let p = Peers(client: try TLSClientContext(c), server: try Fixture.server())
        p.handshake()
        return p
    }

    func testWrongSubjectAltNameFails() throws {
        let p = try connect(Fixture.clientConfig(sans: ["wrong.test"]))
        XCTAssertEqual(p.clientResult.failureMessage, "certificate verify failed: hostname mismatch")
        // The server hears about it as an alert, not as a hang.
        XCTAssertNotNil(p.serverResult.failureMessage, "\(p.serverResult)")
    }

    func testAnyOfSeveralNamesIsEnough() throws {
        XCTAssertTrue(try connect(Fixture.clientConfig(sans: ["wrong.test", "echo.test"])).bothDone)
    }

    func testSNIAloneDoesNotCheckTheName() throws {
        // Istio: `sni` without subjectAltNames verifies the chain only.
        XCTAssertTrue(try connect(Fixture.clientConfig(sni: "unrelated.test", sans: [])).bothDone)
    }

    func testURIAndIPNames() throws {
        XCTAssertTrue(try connect(Fixture.clientConfig(sans: ["spiffe://cluster.local/ns/default/sa/echo"])).bothDone)
        XCTAssertTrue(try connect(Fixture.clientConfig(sans: ["127.0.0.1"])).bothDone)
        XCTAssertTrue(try connect(Fixture.clientConfig(sans: ["spiffe://cluster.local/ns/default/sa/other", "echo.test"])).bothDone)
        let wrong = try connect(Fixture.clientConfig(sans: ["spiffe://cluster.local/ns/default/sa/other", "10.0.0.1"]))
        XCTAssertEqual(wrong.clientResult.failureMessage, "certificate verify failed: hostname mismatch")
    }

    func testUnknownCAFails() throws {
        var c = try Fixture.clientConfig()
        c.caFile = nil  // the system store does not know the test CA
        let p = try connect(c)
        XCTAssertTrue(p.clientResult.failureMessage?.hasPrefix("certificate verify failed: unable to get local issuer certificate") == true,
                      "\(p.clientResult)")
    }

    func testInsecureSkipVerify() throws {
        var c = TLSClientConfig()
        c.insecureSkipVerify = true
        c.subjectAltNames = ["wrong.test"]
        let p = try connect(c)
        XCTAssertTrue(p.bothDone, "\(p.clientResult)")
        XCTAssertEqual(p.client.peerCertificateSubject, "CN=localhost,O=Remora")
    }

    func testErrorsDoNotLeakIntoTheNextConnection() throws {
        let bad = try connect(Fixture.clientConfig(sans: ["wrong.test"]))
        XCTAssertNotNil(bad.clientResult.failureMessage)
        let good = try connect(Fixture.clientConfig())
        XCTAssertTrue(good.bothDone, "\(good.clientResult) \(good.serverResult)")
        let (got, _) = Peers.transfer(Array("ok".utf8), from: good.server, to: good.client)
        XCTAssertEqual(got, Array("ok".utf8))
    }
}

/// Files that cannot be used are refused with the path and OpenSSL's reason.
final class ConfigErrorTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    func testMissingFilesNamed() throws {
        let f = try Fixture.files()
        do {
            _ = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: "/nonexistent/cert.pem", privateKeyFile: f.server.key))])
            XCTFail("no error")
        } catch {
            XCTAssertTrue(error.description.contains("/nonexistent/cert.pem"), error.description)
            XCTAssertTrue(error.description.contains("No such file"), error.description)
        }
        do {
            _ = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: f.server.cert, privateKeyFile: "/nonexistent/key.pem"))])
            XCTFail("no error")
        } catch {
            XCTAssertTrue(error.description.contains("private key /nonexistent/key.pem (for certificate"), error.description)
        }
        var c = TLSClientConfig()
        c.caFile = "/nonexistent/ca.pem"
        XCTAssertThrowsError(try TLSClientContext(c)) { XCTAssertTrue("\($0)".contains("/nonexistent/ca.pem")) }
    }

    func testMismatchedKeyAndMissingCA() throws {
        let f = try Fixture.files()
        XCTAssertThrowsError(try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: f.server.cert, privateKeyFile: f.other.key))])) {
            XCTAssertTrue("\($0)".contains("key values mismatch"), "\($0)")
        }
        XCTAssertThrowsError(try Fixture.server { $0.clientAuth = .required }) {
            XCTAssertTrue("\($0)".contains("needs a CA file"), "\($0)")
        }
        XCTAssertThrowsError(try TLSServerContext(entries: []))
        var c = TLSClientConfig()
        c.certificateFile = f.client.cert
        XCTAssertThrowsError(try TLSClientContext(c))
    }
}
