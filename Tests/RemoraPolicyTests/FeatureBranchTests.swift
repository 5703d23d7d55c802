import RemoraConfig
import RemoraPolicy
import XCTest

/// The users' example must load and route exactly as in Istio.
final class FeatureBranchTests: XCTestCase {
    let session = "4f9e715d-fe56-4a1e-964b-b00b607e7695"
    var snap: Snapshot!

    override func setUpWithError() throws {
        snap = try Snapshot.compile(try ConfigLoader.parse(Fixtures.featureBranch, source: "feature-branch.yaml"))
    }

    func testListeners() {
        XCTAssertEqual(snap.listeners.map(\.name), ["0.0.0.0_15001", "0.0.0.0_15006", "0.0.0.0_443", "0.0.0.0_80"])
        XCTAssertEqual(snap.listeners.map(\.kind), [.meshOutbound, .meshInbound, .gateway, .gateway])
        XCTAssertEqual(snap.listeners.map(\.serverProtocol), ["HTTP", "HTTP", "HTTPS", "HTTP"])
        XCTAssertEqual(snap.listeners.map(\.tls), [false, false, true, false])
    }

    func testClusters() {
        XCTAssertEqual(Set(snap.clusters.map(\.name)), ["outbound|80||frontend-myfeature", "outbound|80||frontend",
                                                        "outbound|80||adservice-myfeature", "outbound|80||adservice"])
        for c in snap.clusters {
            XCTAssertEqual(c.resolution, .dns(host: c.host, port: 80))
            XCTAssertEqual(c.connectTimeoutMs, 10_000)
            XCTAssertTrue(c.portIsDefault)
        }
    }

    func testFrontendCookieRoutesToBranchAtTheGateway() {
        let branch = FakeRequest("shop.example.com", headers: ["Cookie": "shop_session-id=\(session)"])
        XCTAssertEqual(snap.destinationHost(80, branch), "frontend-myfeature")
        XCTAssertEqual(snap.routeName(80, branch), "default/frontend#0")
        XCTAssertEqual(snap.destinationHost(80, FakeRequest("shop.example.com")), "frontend")
        XCTAssertEqual(snap.routeName(80, FakeRequest("10.1.2.3:31080")), "default/frontend#1")
        // The readiness probe carries a cookie too, and must not reach the branch.
        let probe = FakeRequest("10.0.0.7:8080", path: "/_healthz", headers: ["Cookie": "shop_session-id=x-readiness-probe"])
        XCTAssertEqual(snap.destinationHost(80, probe), "frontend")
        // exact means exact: another cookie in the same header is not this session.
        let two = FakeRequest("shop", headers: ["Cookie": "shop_session-id=\(session); currency=EUR"])
        XCTAssertEqual(snap.destinationHost(80, two), "frontend")
        // The frontend VirtualService is bound to the gateway only, not the mesh.
        XCTAssertNil(snap.routeName(15001, FakeRequest("frontend")))
    }

    func testAdserviceUseridRoutesToBranchInTheMesh() {
        for host in ["adservice:9555", "adservice", "ADSERVICE.default", "adservice.default.svc", "adservice.default.svc.cluster.local:9555"] {
            let branch = FakeRequest(host, path: "/hipstershop.AdService/GetAds", method: "POST", port: 15001,
                                     headers: ["userid": session, "content-type": "application/grpc"])
            XCTAssertEqual(snap.destinationHost(15001, branch), "adservice-myfeature", host)
            XCTAssertEqual(snap.destinationHost(15001, FakeRequest(host, headers: ["userid": "someone-else"])), "adservice", host)
            XCTAssertEqual(snap.destinationHost(15001, FakeRequest(host)), "adservice", host)
        }
        // Other namespaces' adservice, and unknown hosts, are not this VirtualService.
        XCTAssertNil(snap.routeName(15001, FakeRequest("adservice.shop.svc.cluster.local")))
        XCTAssertNil(snap.routeName(15001, FakeRequest("cartservice")))
        // The mesh VirtualService is not served on the gateway... but the gateway's `*` VirtualService is.
        XCTAssertEqual(snap.routeName(80, FakeRequest("adservice", headers: ["userid": session])), "default/frontend#1")
        // The userid header name is case-insensitive on the wire.
        XCTAssertEqual(snap.destinationHost(15001, FakeRequest("adservice", headers: ["UserId": session])), "adservice-myfeature")
    }

    func testInboundMeshListenerAlsoRoutes() {
        XCTAssertEqual(snap.destinationHost(15006, FakeRequest("adservice", headers: ["userid": session])), "adservice-myfeature")
    }

    func testDefaultSettingsWithoutProxy() {
        let s = snap.settings
        XCTAssertEqual(s.workers, 0)
        XCTAssertEqual(s.admin, ListenAddress(address: "127.0.0.1", port: 15000))
        XCTAssertEqual(s.health, ListenAddress(address: "0.0.0.0", port: 15021))
        XCTAssertEqual(s.metrics, ListenAddress(address: "0.0.0.0", port: 15090))
        XCTAssertEqual(s.meshOutbound, ListenAddress(address: "0.0.0.0", port: 15001))
        XCTAssertEqual(s.meshInbound, ListenAddress(address: "0.0.0.0", port: 15006))
        XCTAssertEqual(s.credentialsDir, "/etc/remora/credentials")
        XCTAssertEqual(s.accessLog, .stdout)
        XCTAssertEqual(s.drainTimeoutMs, 30_000)
        XCTAssertEqual(s.limits.maxRequestHeadersKb, 60)
        XCTAssertEqual(s.limits.maxHeaders, 100)
        XCTAssertEqual(s.limits.maxConnections, 10000)
        XCTAssertEqual(s.limits.bufferLimitBytes, 1_048_576)
        XCTAssertEqual(s.limits.maxConcurrentStreams, 100)
    }

    func testRunbookRuleInsertedFirstWins() throws {
        // SPEC §4.4: `route set` puts a rule first; then it wins over the earlier ones.
        let text = Fixtures.featureBranch.replacingOccurrences(of: """
          http:
            - match:
                - headers:
                    userid:
        """, with: """
          http:
            - match:
                - headers:
                    userid: {exact: other-session}
              route:
                - destination: {host: adservice-other}
            - match:
                - headers:
                    userid:
        """)
        XCTAssertNotEqual(text, Fixtures.featureBranch)
        let s = try Snapshot.compile(try ConfigLoader.parse(text, source: "t"))
        XCTAssertEqual(s.destinationHost(15001, FakeRequest("adservice", headers: ["userid": "other-session"])), "adservice-other")
        XCTAssertEqual(s.destinationHost(15001, FakeRequest("adservice", headers: ["userid": session])), "adservice-myfeature")
        XCTAssertEqual(s.routeName(15001, FakeRequest("adservice", headers: ["userid": session])), "default/adservice#1")
    }
}
