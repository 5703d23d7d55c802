import RemoraConfig
import RemoraPolicy
import XCTest
@testable import RemoraAdmin

final class ConfigStoreTests: XCTestCase {
    func store(limit: Int = 32) throws -> ConfigStore {
        let set = try ConfigLoader.parse(Fixtures.featureBranch, source: "test.yaml")
        return ConfigStore(initial: set, snapshot: try Snapshot.compile(set), historyLimit: limit)
    }

    func resources(_ text: String) throws -> [Resource] { try ConfigLoader.decode(text, source: "test") }

    func testApplyRecordsVersionsAndChanges() throws {
        let s = try store()
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.history().first?.cause, "initial configuration")
        let next = try resources(Fixtures.featureBranchWith(adservice: Fixtures.adserviceJSON(extraUser: "a")))
        let r = try s.apply(next, cause: "test", dryRun: false)
        XCTAssertEqual(r.version, 2)
        XCTAssertEqual(r.changed, ["VirtualService default/adservice updated"])
        XCTAssertEqual(s.currentSnapshot.routeEntries.count, 5)
        XCTAssertEqual(s.reloadsSucceeded, 1)

        let dry = try s.apply([], cause: "x", dryRun: true)
        XCTAssertEqual(dry.version, 2)
        XCTAssertEqual(dry.changed.count, 5)
        XCTAssertTrue(dry.changed.allSatisfy { $0.hasSuffix(" deleted") })
        XCTAssertEqual(s.version, 2)
    }

    func testRejectedCandidateKeepsEverything() throws {
        let s = try store()
        var next = try resources(Fixtures.featureBranch)
        next.append(next[2])  // a duplicate VirtualService
        XCTAssertThrowsError(try s.apply(next, cause: "x", dryRun: false)) { e in
            XCTAssertTrue((e as? ConfigErrors)?.errors.contains { $0.message.contains("duplicate") } == true, "\(e)")
        }
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.reloadsFailed, 1)
        XCTAssertEqual(s.history().count, 1)
    }

    func testHistoryIsBoundedAndRollbackNeedsAKeptVersion() throws {
        let s = try store(limit: 3)
        XCTAssertThrowsError(try s.rollback(to: nil)) { XCTAssertEqual("\($0)", "there is no earlier version to roll back to") }
        let base = try resources(Fixtures.featureBranch)
        for i in 0..<4 { try s.apply(i % 2 == 0 ? Array(base.dropLast()) : base, cause: "c\(i)", dryRun: false) }
        XCTAssertEqual(s.version, 5)
        XCTAssertEqual(s.history().map(\.version), [3, 4, 5])
        XCTAssertThrowsError(try s.rollback(to: 1))
        let r = try s.rollback(to: nil)
        XCTAssertEqual(r.version, 6)
        XCTAssertEqual(r.changed, ["ServiceEntry default/adservice-myfeature deleted"])
        XCTAssertEqual(s.history().last?.cause, "rollback to version 4")
    }

    func testServerFieldsAreNotChanges() throws {
        let a = try resources("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: x, resourceVersion: "1", annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}}
        spec: {hosts: [x], resolution: DNS}
        """)
        let b = try resources("""
        {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
         "metadata": {"namespace": "default", "name": "x", "uid": "u"}, "spec": {"resolution": "DNS", "hosts": ["x"]}}
        """)
        XCTAssertEqual(ConfigStore.changes(from: a, to: b), [])
        let c = try resources("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: x, labels: {a: b}}
        spec: {hosts: [x], resolution: DNS}
        """)
        XCTAssertEqual(ConfigStore.changes(from: a, to: c), ["ServiceEntry default/x updated"])
    }

    func testRFC3339Time() {
        let t = ConfigStore.now()
        XCTAssertNotNil(t.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), t)
    }
}
