import RemoraTLS
import XCTest

/// Client contexts keep their last session, so reconnects resume.
final class SessionTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    private func resumes(max: TLSVersion) throws {
        let server = try Fixture.server()
        var c = try Fixture.clientConfig()
        c.maxVersion = max
        let client = try TLSClientContext(c)
        let first = Peers(client: client, server: server)
        first.handshake()
        XCTAssertTrue(first.bothDone)
        XCTAssertFalse(first.client.resumed)
        // TLS 1.3 tickets follow the handshake: the client takes them in with its first read.
        XCTAssertEqual(Peers.transfer(Array("hi".utf8), from: first.server, to: first.client).received, Array("hi".utf8))
        let second = Peers(client: client, server: server)
        second.handshake()
        XCTAssertTrue(second.bothDone)
        XCTAssertTrue(second.client.resumed, "\(max)")
        XCTAssertTrue(second.server.resumed, "\(max)")
        XCTAssertEqual(Peers.transfer(Array("again".utf8), from: second.client, to: second.server).received, Array("again".utf8))
    }

    func testResumesTLS13() throws { try resumes(max: .tls1_3) }
    func testResumesTLS12() throws { try resumes(max: .tls1_2) }

    func testAnotherServerContextDoesNotResume() throws {
        let client = try TLSClientContext(Fixture.clientConfig())
        let first = Peers(client: client, server: try Fixture.server())
        first.handshake()
        _ = Peers.transfer([1], from: first.server, to: first.client)
        // A new server context has new ticket keys: a full handshake, not a failure.
        let second = Peers(client: client, server: try Fixture.server())
        second.handshake()
        XCTAssertTrue(second.bothDone)
        XCTAssertFalse(second.client.resumed)
    }
}
