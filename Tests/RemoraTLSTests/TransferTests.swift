#if canImport(Glibc)
import Glibc
#endif
import RemoraIO
import RemoraTLS
import XCTest

final class TransferTests: XCTestCase {
    override func setUpWithError() throws { _ = try Fixture.files() }

    private func connected() throws -> Peers {
        let p = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: try Fixture.server())
        p.handshake()
        XCTAssertTrue(p.bothDone)
        return p
    }

    func testDataBothWays() throws {
        let p = try connected()
        XCTAssertEqual(Peers.transfer(Array("GET / HTTP/1.1\r\n\r\n".utf8), from: p.client, to: p.server).received,
                       Array("GET / HTTP/1.1\r\n\r\n".utf8))
        XCTAssertEqual(Peers.transfer(Array("HTTP/1.1 200 OK\r\n\r\n".utf8), from: p.server, to: p.client).received,
                       Array("HTTP/1.1 200 OK\r\n\r\n".utf8))
        XCTAssertEqual(Peers.drain(p.server).1, .wouldBlock)
    }

    func testOneMegabyteEachWayWithPartialWrites() throws {
        let p = try connected()
        var rng = SystemRandomNumberGenerator()
        let data = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for (w, r) in [(p.client, p.server), (p.server, p.client)] {
            let (got, partial) = Peers.transfer(data, from: w, to: r)
            XCTAssertEqual(got.count, data.count)
            XCTAssertTrue(got == data)
            // One record (16 KiB) per SSL_write in partial-write mode, and the socket
            // pair's buffer fills: both kinds of short write happen.
            XCTAssertGreaterThan(partial, 10)
        }
    }

    func testCloseNotifyAndTCPCloseAreEOF() throws {
        let p = try connected()
        p.client.shutdown()
        XCTAssertEqual(Peers.drain(p.server).1, .eof)
        let q = try connected()
        Glibc.shutdown(q.serverFD, Int32(SHUT_WR))
        XCTAssertEqual(Peers.drain(q.client).1, .eof)
    }

    func testApplicationDataRightAfterTheHandshake() throws {
        // The client's first bytes can arrive with its Finished: they must be readable
        // right after the server's handshake completes, with no further socket event.
        let p = Peers(client: try TLSClientContext(Fixture.clientConfig()), server: try Fixture.server())
        var c = p.client.handshake()
        var s = p.server.handshake()
        while c != .done { c = p.client.handshake(); if s != .done { s = p.server.handshake() } }
        let msg = Array("early-ish".utf8)
        XCTAssertEqual(msg.withUnsafeBytes { p.client.write($0) }, .bytes(msg.count))
        while s != .done { s = p.server.handshake() }
        XCTAssertEqual(Peers.drain(p.server).0, msg)
    }
}
