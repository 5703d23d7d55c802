import Foundation
import RemoraTLS
import XCTest

/// Certificate rotation: a Kubernetes secret volume swaps its `..data` symlink.
final class ReloadTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    /// dir/tls.crt -> ..data/tls.crt, ..data -> ..v1 (as kubelet lays out a secret).
    private func secretDir(_ leaf: TestPKI.Leaf, name: String) throws -> String {
        let f = try Fixture.files()
        let dir = f.pki.dir + "/\(name)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/..v1", withIntermediateDirectories: true)
        try fm.copyItem(atPath: leaf.cert, toPath: dir + "/..v1/tls.crt")
        try fm.copyItem(atPath: leaf.key, toPath: dir + "/..v1/tls.key")
        try fm.createSymbolicLink(atPath: dir + "/..data", withDestinationPath: "..v1")
        try fm.createSymbolicLink(atPath: dir + "/tls.crt", withDestinationPath: "..data/tls.crt")
        try fm.createSymbolicLink(atPath: dir + "/tls.key", withDestinationPath: "..data/tls.key")
        return dir
    }

    /// Writes a new version and swaps `..data` to it in one rename.
    private func rotate(_ dir: String, to leaf: TestPKI.Leaf, version: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/\(version)", withIntermediateDirectories: true)
        try fm.copyItem(atPath: leaf.cert, toPath: dir + "/\(version)/tls.crt")
        try fm.copyItem(atPath: leaf.key, toPath: dir + "/\(version)/tls.key")
        try fm.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: version)
        XCTAssertEqual(rename(dir + "/..data_tmp", dir + "/..data"), 0)
    }

    func testSymlinkSwapReloadsAndOldConnectionsKeepWorking() throws {
        let f = try Fixture.files()
        let dir = try secretDir(f.server, name: "secret-rotate")
        let server = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: dir + "/tls.crt", privateKeyFile: dir + "/tls.key"))])
        let client = try TLSClientContext(Fixture.clientConfig(sans: []))
        XCTAssertEqual(server.reloadIfChanged().reloaded, [])

        let old = Peers(client: client, server: server)
        old.handshake()
        XCTAssertTrue(old.bothDone)
        XCTAssertEqual(old.client.peerCertificateSubject, "CN=localhost,O=Remora")

        let rotated = try f.pki.leaf("rotated", cn: "rotated.test", sans: ["DNS:echo.test"], in: "rotated")
        try rotate(dir, to: rotated, version: "..v2")
        let r = server.reloadIfChanged()
        XCTAssertEqual(r.reloaded.sorted(), [dir + "/tls.crt", dir + "/tls.key"])
        XCTAssertTrue(r.errors.isEmpty, "\(r.errors)")
        XCTAssertEqual(server.reloadIfChanged().reloaded, [], "reloaded twice")

        client.forgetSession()
        let new = Peers(client: client, server: server)
        new.handshake()
        XCTAssertTrue(new.bothDone)
        XCTAssertEqual(new.client.peerCertificateSubject, "CN=rotated.test,O=Remora")
        // The connection from before the swap still carries data.
        XCTAssertEqual(Peers.transfer(Array(repeating: 7, count: 100_000), from: old.client, to: old.server).received.count, 100_000)
        XCTAssertEqual(Peers.transfer(Array("still here".utf8), from: old.server, to: old.client).received, Array("still here".utf8))
    }

    func testBrokenUpdateKeepsTheOldCertificate() throws {
        let f = try Fixture.files()
        let dir = try secretDir(f.server, name: "secret-broken")
        let server = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: dir + "/tls.crt", privateKeyFile: dir + "/tls.key"))])
        // A new certificate whose key does not match (the key not yet updated).
        let rotated = try f.pki.leaf("mismatch", cn: "mismatch.test", sans: ["DNS:echo.test"], in: "mismatch")
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/..v2", withIntermediateDirectories: true)
        try fm.copyItem(atPath: rotated.cert, toPath: dir + "/..v2/tls.crt")
        try fm.copyItem(atPath: f.server.key, toPath: dir + "/..v2/tls.key")
        try fm.createSymbolicLink(atPath: dir + "/..data_tmp", withDestinationPath: "..v2")
        XCTAssertEqual(rename(dir + "/..data_tmp", dir + "/..data"), 0)

        let r = server.reloadIfChanged()
        XCTAssertEqual(r.reloaded, [])
        XCTAssertEqual(r.errors.count, 1)
        XCTAssertTrue(r.errors.first?.description.contains("mismatch") == true, "\(r.errors)")
        XCTAssertFalse(r.errors.first?.description.contains("BEGIN") == true, "key material in an error")
        let p = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: server)
        p.handshake()
        XCTAssertTrue(p.bothDone)
        XCTAssertEqual(p.client.peerCertificateSubject, "CN=localhost,O=Remora")
        // Fixed: the next call picks it up.
        try fm.removeItem(atPath: dir + "/..v2/tls.key")
        try fm.copyItem(atPath: rotated.key, toPath: dir + "/..v2/tls.key")
        XCTAssertEqual(server.reloadIfChanged().reloaded.count, 2)
    }

    func testReloadFromAnotherThreadWhileConnecting() throws {
        let f = try Fixture.files()
        let dir = try secretDir(f.server, name: "secret-threads")
        let server = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: dir + "/tls.crt", privateKeyFile: dir + "/tls.key"))])
        let client = try TLSClientContext(Fixture.clientConfig(sans: []))
        let rotated = try f.pki.leaf("threads", cn: "threads.test", sans: ["DNS:echo.test"], in: "threads")
        let done = expectation(description: "reloads")
        Thread.detachNewThread {
            for i in 0..<20 {
                try? self.rotate(dir, to: i % 2 == 0 ? rotated : f.server, version: "..r\(i)")
                _ = server.reloadIfChanged()
            }
            done.fulfill()
        }
        for _ in 0..<50 {
            let p = Peers(client: client, server: server)
            p.handshake()
            XCTAssertTrue(p.bothDone, "\(p.clientResult) \(p.serverResult)")
        }
        wait(for: [done], timeout: 30)
    }
}
