import XCTest
import RemoraIO
@testable import RemoraDNS

/// A resolver the test answers by hand.
final class FakeResolver: DNSResolving {
    let servers: [DNSServer]
    var asked: [String] = []
    var pending: [(name: String, done: (DNSResult) -> Void)] = []
    var closed = false

    init(servers: [DNSServer]) { self.servers = servers }

    func resolve(_ name: String, _ done: @escaping (DNSResult) -> Void) {
        asked.append(name)
        pending.append((name, done))
    }

    func close() {
        closed = true
        let p = pending
        pending.removeAll()
        for q in p { q.done(.cancelled) }
    }

    /// Answers the oldest lookup of `name`.
    func answer(_ name: String, _ result: DNSResult, file: StaticString = #filePath, line: UInt = #line) {
        guard let i = pending.firstIndex(where: { $0.name == name }) else {
            return XCTFail("no lookup of \(name) under way", file: file, line: line)
        }
        pending.remove(at: i).done(result)
    }
}

/// The service on a loop that is never run: the test calls it on its own thread and moves a
/// fake clock (the loop's timers are armed but fire only through `tick`).
final class DNSServiceTests: XCTestCase {
    private var now: UInt64 = 1_000
    private var resolvers: [FakeResolver] = []
    private var statuses: [(String, DNSStatus?)] = []
    private let loop = EventLoop()

    private func service() -> DNSService {
        let s = DNSService(loop: loop, clock: { [unowned self] in self.now }) { [unowned self] servers in
            let r = FakeResolver(servers: servers)
            self.resolvers.append(r)
            return r
        }
        s.onStatus = { [unowned self] n, st in self.statuses.append((n, st)) }
        return s
    }

    private var resolver: FakeResolver { resolvers.last! }
    private func rec(_ ip: String, _ ttl: Int) -> DNSResult { .records([DNSRecord(address: ip, ttl: ttl)]) }

    func testWarmUpWaitsForEveryNewNameToSettle() {
        let s = service()
        var ready: [String: DNSStatus]?
        s.update(names: ["a.test", "b.test"], options: DNSOptions(), warmTimeoutMs: 5_000) { ready = $0 }
        XCTAssertEqual(resolver.asked.sorted(), ["a.test", "b.test"])
        resolver.answer("a.test", rec("10.0.0.1", 30))
        XCTAssertNil(ready, "b.test has not answered yet")
        resolver.answer("b.test", .failure("Domain name not found"))
        XCTAssertEqual(ready?["a.test"]?.addresses, ["10.0.0.1"])
        XCTAssertEqual(ready?["b.test"]?.settled, true)
        XCTAssertEqual(ready?["b.test"]?.lastError, "Domain name not found")
        XCTAssertEqual(statuses.map(\.0), ["a.test", "b.test"])
    }

    func testAConfigurationWithNoNewNameIsReadyAtOnce() {
        let s = service()
        s.update(names: ["a.test"], options: DNSOptions(), warmTimeoutMs: 5_000) { _ in }
        resolver.answer("a.test", rec("10.0.0.1", 30))
        var ready = false
        s.update(names: ["a.test"], options: DNSOptions(), warmTimeoutMs: 5_000) { _ in ready = true }
        XCTAssertTrue(ready)
        XCTAssertEqual(resolver.asked, ["a.test"], "no new lookup")
    }

    func testWarmUpTimesOutAndTheNameKeepsBeingResolved() {
        let s = service()
        var ready: [String: DNSStatus]?
        s.update(names: ["slow.test"], options: DNSOptions(), warmTimeoutMs: 5_000) { ready = $0 }
        now += 4_999
        s.tick()
        XCTAssertNil(ready)
        now += 1
        s.tick()
        XCTAssertEqual(ready?["slow.test"]?.settled, false)
        XCTAssertEqual(ready?["slow.test"]?.addresses, [])
        // The lookup under way still counts when it finally answers.
        resolver.answer("slow.test", rec("10.0.0.7", 30))
        XCTAssertEqual(statuses.last?.1?.addresses, ["10.0.0.7"])
    }

    func testNamesAreRefreshedOnTheirTTLAndFailuresRetried() {
        let s = service()
        s.update(names: ["svc.test"], options: DNSOptions(), warmTimeoutMs: nil)
        resolver.answer("svc.test", rec("10.0.0.1", 2))
        now += 1_999
        s.tick()
        XCTAssertEqual(resolver.asked.count, 1)
        now += 1
        s.tick()
        XCTAssertEqual(resolver.asked.count, 2)
        resolver.answer("svc.test", .failure("Timeout while contacting DNS servers"))
        XCTAssertEqual(statuses.last?.1?.addresses, ["10.0.0.1"], "the last good answer is kept")
        XCTAssertEqual(statuses.last?.1?.nextRefreshMs, now + 1_000)
        now += 1_000
        s.tick()
        XCTAssertEqual(resolver.asked.count, 3)
        resolver.answer("svc.test", rec("10.0.0.2", 2))
        XCTAssertEqual(statuses.last?.1?.addresses, ["10.0.0.2"])
        XCTAssertNil(statuses.last?.1?.lastError)
    }

    func testDroppedNamesAreReportedAndReleaseTheirWaiters() {
        let s = service()
        var ready = false
        s.update(names: ["a.test", "b.test"], options: DNSOptions(), warmTimeoutMs: 5_000) { _ in ready = true }
        resolver.answer("a.test", rec("10.0.0.1", 30))
        s.update(names: ["a.test"], options: DNSOptions(), warmTimeoutMs: nil)
        XCTAssertTrue(ready, "b.test is no longer wanted")
        XCTAssertEqual(statuses.last?.0, "b.test")
        XCTAssertNil(statuses.last?.1)
        XCTAssertEqual(Set(s.statuses.keys), ["a.test"])
        // Its late answer changes nothing.
        let count = statuses.count
        resolver.answer("b.test", rec("10.0.0.2", 30))
        XCTAssertEqual(statuses.count, count)
    }

    func testNewServersReplaceTheResolverAndEveryNameIsAskedAgain() {
        let s = service()
        s.update(names: ["a.test", "b.test"], options: DNSOptions(), warmTimeoutMs: nil)
        XCTAssertEqual(resolvers.count, 1)
        XCTAssertEqual(resolver.servers, [])
        resolver.answer("a.test", rec("10.0.0.1", 300))
        let first = resolver
        let servers = [DNSServer(address: "127.0.0.1", port: 5353), DNSServer(address: "::1")]
        s.update(names: ["a.test", "b.test"], options: DNSOptions(servers: servers, refreshRateMs: 10_000), warmTimeoutMs: nil)
        XCTAssertTrue(first.closed)
        XCTAssertEqual(resolvers.count, 2)
        XCTAssertEqual(resolver.servers, servers)
        // b.test was cancelled by the old resolver (not a failure), a.test refreshed early.
        XCTAssertEqual(resolver.asked.sorted(), ["a.test", "b.test"])
        XCTAssertNil(s.statuses["b.test"]?.lastError)
        XCTAssertEqual(s.statuses["a.test"]?.addresses, ["10.0.0.1"])
        // Same servers again: the resolver stays.
        s.update(names: ["a.test", "b.test"], options: DNSOptions(servers: servers, refreshRateMs: 20_000), warmTimeoutMs: nil)
        XCTAssertEqual(resolvers.count, 2)
        XCTAssertEqual(servers.map(\.description), ["127.0.0.1:5353", "[::1]:53"])
    }
}
