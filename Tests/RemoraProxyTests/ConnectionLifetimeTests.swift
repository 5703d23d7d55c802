import XCTest
import RemoraConfig
import RemoraPolicy
@testable import RemoraProxy

/// The pure rules behind upstream connection lifetimes and TCP proxy timeouts.
final class ConnectionLifetimeTests: XCTestCase {
    func testDefaultsAreIstios() {
        let d = ConnectionLifetime.default
        XCTAssertEqual(d.idleTimeoutMs, 3_600_000)
        XCTAssertNil(d.maxDurationMs)
        XCTAssertNil(d.maxRequests)
        XCTAssertTrue(d.canCarryMore(requests: 1_000_000, bornMs: 0, nowMs: .max / 2))
        XCTAssertEqual(d.idleWaitMs(bornMs: 0, nowMs: 10), 3_600_000)
    }

    func testMaxRequestsPerConnection() {
        let l = ConnectionLifetime(idleTimeoutMs: 1000, maxDurationMs: nil, maxRequests: 2)
        XCTAssertTrue(l.canCarryMore(requests: 0, bornMs: 0, nowMs: 0))
        XCTAssertTrue(l.canCarryMore(requests: 1, bornMs: 0, nowMs: 0))
        XCTAssertFalse(l.canCarryMore(requests: 2, bornMs: 0, nowMs: 0))
    }

    func testMaxDurationRetiresAndShortensTheIdleWait() {
        let l = ConnectionLifetime(idleTimeoutMs: 1000, maxDurationMs: 5000, maxRequests: nil)
        XCTAssertTrue(l.canCarryMore(requests: 9, bornMs: 100, nowMs: 5099))
        XCTAssertFalse(l.canCarryMore(requests: 9, bornMs: 100, nowMs: 5100))
        XCTAssertEqual(l.idleWaitMs(bornMs: 100, nowMs: 1000), 1000)   // idle timeout first
        XCTAssertEqual(l.idleWaitMs(bornMs: 100, nowMs: 4600), 500)    // lifetime ends first
        XCTAssertEqual(l.idleWaitMs(bornMs: 100, nowMs: 5100), 0)      // already too old
        XCTAssertEqual(l.idleWaitMs(bornMs: 100, nowMs: 9000), 0)
    }

    func testTCPDeadlineIsIdleOrDurationWhicheverFirst() {
        let idleOnly = TCPTimeouts(idleMs: 1000, maxDurationMs: nil)
        XCTAssertEqual(idleOnly.deadline(bornMs: 0, lastActivityMs: 5000), 6000)
        let both = TCPTimeouts(idleMs: 1000, maxDurationMs: 5500)
        XCTAssertEqual(both.deadline(bornMs: 0, lastActivityMs: 2000), 3000)
        XCTAssertEqual(both.deadline(bornMs: 0, lastActivityMs: 5000), 5500)
    }

    private func cluster(_ yaml: String) throws -> ClusterSpec {
        let snap = try Snapshot.compile(try ConfigLoader.parse(yaml, source: "t.yaml"))
        return try XCTUnwrap(snap.clusters.first { $0.host == "db.shop" })
    }

    private let base = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: db, namespace: default}
    spec:
      hosts: [db.shop]
      ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: pg, protocol: TCP}]
      resolution: STATIC
      endpoints: [{address: 10.0.0.1}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: db, namespace: default}
    spec:
      hosts: [db.shop]
      http: [{route: [{destination: {host: db.shop, port: {number: 80}}}]}]

    """

    /// A DestinationRule for db.shop with this `connectionPool` (flow YAML).
    private func rule(_ connectionPool: String) -> String {
        """
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: db, namespace: default}
        spec: {host: db.shop, trafficPolicy: {connectionPool: \(connectionPool)}}
        """
    }

    func testClusterLifetimeFromDestinationRule() throws {
        let dr = rule("{tcp: {maxConnectionDuration: 30s, idleTimeout: 5s}, http: {idleTimeout: 2s, maxRequestsPerConnection: 7}}")
        let l = try cluster(base + dr).connectionLifetime
        XCTAssertEqual(l.idleTimeoutMs, 2000)
        XCTAssertEqual(l.maxDurationMs, 30_000)
        XCTAssertEqual(l.maxRequests, 7)
        let plain = try cluster(base).connectionLifetime
        XCTAssertEqual(plain.idleTimeoutMs, ConnectionLifetime.defaultIdleTimeoutMs)
        XCTAssertNil(plain.maxRequests)
    }

    func testTCPTimeoutsByDeclaredTCPPort() throws {
        let dr = rule("{tcp: {idleTimeout: 5s, maxConnectionDuration: 1m}}")
        let byPort = TCPTimeouts.byPort(try ConfigLoader.parse(base + dr, source: "t.yaml"))
        XCTAssertEqual(byPort[5432], TCPTimeouts(idleMs: 5000, maxDurationMs: 60_000))
        XCTAssertNil(byPort[80], "an HTTP port is not TCP-proxied")
        XCTAssertTrue(TCPTimeouts.byPort(try ConfigLoader.parse(base, source: "t.yaml")).isEmpty)
    }
}
