import RemoraConfig
import RemoraPolicy
import XCTest

/// `headers` at route and destination level: flattened route-then-destination, and `drops`.
final class HeaderOpsTests: XCTestCase {
    private func pairs(_ l: [(name: String, value: String)]) -> [String] { l.map { "\($0.name)=\($0.value)" } }

    private func drops(_ ops: HeaderOps, _ name: String) -> Bool {
        Array(name.utf8).withUnsafeBytes { ops.drops(name: $0) }
    }

    func testRouteThenDestination() throws {
        let s = try TestConfig.mesh("""
          - headers:
              request:
                set: {X-Route: r, X-Both: route, X-Shared: route}
                add: {X-Added: r1, x-both-add: route}
                remove: [X-Secret, x-drop-later]
              response:
                set: {Cache-Control: no-store}
                remove: [server]
            route:
            - destination: {host: a}
              weight: 60
              headers:
                request:
                  set: {x-both: dest, x-dest: d, x-both-add: dest}
                  add: {x-added: d1, x-route: extra}
                  remove: [x-shared]
                response:
                  add: {x-served-by: a}
            - destination: {host: b}
              weight: 40
        """)
        let a = s.resolveMesh(FakeRequest("svc"))!.entry.actions
        let dest0 = a.requestHeaders(destination: 0)
        // Destination set overwrites every earlier value of its name (a route set or add); its remove
        // removes what the route level wrote; adds accumulate, route first. Names lowercased and sorted.
        XCTAssertEqual(pairs(dest0.set), ["x-route=r", "x-both=dest", "x-both-add=dest", "x-dest=d"])
        XCTAssertEqual(pairs(dest0.add), ["x-added=r1", "x-added=d1", "x-route=extra"])
        XCTAssertEqual(dest0.remove, ["x-secret", "x-drop-later", "x-shared"])
        // The other destination gets the route level only.
        let dest1 = a.requestHeaders(destination: 1)
        XCTAssertEqual(pairs(dest1.set), ["x-both=route", "x-route=r", "x-shared=route"])
        XCTAssertEqual(pairs(dest1.add), ["x-added=r1", "x-both-add=route"])
        XCTAssertEqual(dest1.remove, ["x-secret", "x-drop-later"])
        // Out of range (no destination chosen): the route level.
        XCTAssertEqual(pairs(a.requestHeaders(destination: -1).set), pairs(dest1.set))
        XCTAssertEqual(pairs(a.responseHeaders(destination: 0).set), ["cache-control=no-store"])
        XCTAssertEqual(pairs(a.responseHeaders(destination: 0).add), ["x-served-by=a"])
        XCTAssertEqual(a.responseHeaders(destination: 1).remove, ["server"])
        XCTAssertTrue(a.responseHeaders(destination: 1).add.isEmpty)
    }

    func testDropsIsCaseInsensitiveOnRawBytes() throws {
        let s = try TestConfig.mesh("""
          - headers: {request: {set: {X-Tenant: acme}, add: {x-trace: "1"}, remove: [Authorization]}}
            route: [{destination: {host: a}}]
        """)
        let ops = s.resolveMesh(FakeRequest("svc"))!.entry.actions.requestHeaders(destination: 0)
        XCTAssertTrue(drops(ops, "authorization"), "removed")
        XCTAssertTrue(drops(ops, "AUTHORIZATION"), "any case")
        XCTAssertTrue(drops(ops, "X-Tenant"), "replaced by set")
        XCTAssertFalse(drops(ops, "x-trace"), "add keeps the incoming values")
        XCTAssertFalse(drops(ops, "x-tenan"), "length differs")
        XCTAssertFalse(drops(ops, "x-tenantx"), "length differs")
        XCTAssertFalse(drops(ops, "y-tenant"), "bytes differ")
        XCTAssertFalse(drops(ops, ""), "empty name")
        XCTAssertFalse(drops(HeaderOps.empty, "authorization"))
        XCTAssertFalse(ops.isEmpty)
        XCTAssertTrue(HeaderOps.empty.isEmpty)
    }

    func testPseudoHeadersAndHostAreNotHeaderOps() throws {
        let s = try TestConfig.mesh("""
          - headers: {request: {set: {":path": /x, host: h.example.com, x-ok: "1"}, remove: [":authority", Host, x-gone]}}
            route: [{destination: {host: a}}]
        """)
        let ops = s.resolveMesh(FakeRequest("svc"))!.entry.actions.requestHeaders(destination: 0)
        XCTAssertEqual(pairs(ops.set), ["x-ok=1"])
        XCTAssertEqual(ops.remove, ["x-gone"])
    }

    func testRedirectRulesKeepRouteLevelOps() throws {
        let s = try TestConfig.mesh("""
          - headers: {response: {set: {x-why: moved}}}
            redirect: {uri: /elsewhere}
        """)
        let a = s.resolveMesh(FakeRequest("svc"))!.entry.actions
        XCTAssertEqual(pairs(a.responseHeaders(destination: 0).set), ["x-why=moved"], "no destinations: the route level")
        XCTAssertTrue(a.requestHeaders(destination: 0).isEmpty)
    }

    func testMergeDirectly() {
        let route = HeaderOps(set: [("a", "1")], add: [("b", "1")], remove: ["c"])
        let dest = HeaderOps(set: [("b", "2")], add: [("a", "2")], remove: ["a"])
        let m = route.merged(with: dest)
        XCTAssertEqual(pairs(m.set), ["b=2"], "dest remove a drops route set a; dest set b drops route add b")
        XCTAssertEqual(pairs(m.add), ["a=2"], "dest add a (after its remove) stays")
        XCTAssertEqual(m.remove, ["c", "a"])
        XCTAssertEqual(pairs(route.merged(with: .empty).set), ["a=1"])
        XCTAssertEqual(pairs(HeaderOps.empty.merged(with: dest).set), ["b=2"])
    }
}
