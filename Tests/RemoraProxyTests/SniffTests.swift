import XCTest
@testable import RemoraProxy

/// Protocol sniffing on intercepted connections: HTTP is recognised from the first bytes.
final class SniffTests: XCTestCase {
    private func verdict(_ s: String) -> Sniff.Verdict { Array(s.utf8).withUnsafeBytes { Sniff.classify($0) } }

    func testRequestLinesAndPrefaceAreHTTP() {
        for s in ["GET / HTTP/1.1\r\n", "OPTIONS * HTTP/1.1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "PROPFIND /x"] {
            XCTAssertEqual(verdict(s), .http, s)
        }
    }

    func testOtherProtocolsAreNot() {
        for s in ["\u{16}\u{03}\u{01}", "*1\r\n$4\r\nPING\r\n", "get / HTTP/1.1", " GET", "SSH-2.0-OpenSSH", "ABCDEFGHIJKLMNOPQRSTUVWXYZ "] {
            XCTAssertEqual(verdict(s), .notHTTP, s)
        }
    }

    func testTooFewBytesWaits() {
        XCTAssertEqual(verdict(""), .needMore)
        XCTAssertEqual(verdict("GE"), .needMore)
    }
}
