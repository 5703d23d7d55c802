import XCTest
@testable import RemoraDNS

/// Every rule of the refresh state machine, with a fake clock (milliseconds).
final class DNSCacheTests: XCTestCase {
    private func a(_ ip: String, _ ttl: Int = 0) -> DNSRecord { DNSRecord(address: ip, ttl: ttl) }

    /// Takes `name` as due at `now` and records `result` for it.
    @discardableResult
    private func lookup(_ c: inout DNSCache, _ name: String, _ result: DNSResult, now: UInt64) -> DNSCache.Outcome? {
        XCTAssertEqual(c.takeDue(now: now), [name])
        return c.record(name, result, now: now)
    }

    private func cache(_ names: String..., now: UInt64 = 0, refreshRateMs: Int = 60_000) -> DNSCache {
        var c = DNSCache(refreshRateMs: refreshRateMs)
        c.setNames(Set(names), now: now)
        return c
    }

    func testNewNameIsDueAtOnceAndTakenOnce() {
        var c = cache("a.test", "b.test", now: 100)
        XCTAssertEqual(c.nextDeadline, 100)
        XCTAssertEqual(c.takeDue(now: 99), [])
        XCTAssertEqual(c.takeDue(now: 100), ["a.test", "b.test"])
        XCTAssertEqual(c["a.test"]?.inFlight, true)
        XCTAssertEqual(c["a.test"]?.settled, false)
        // Under way: neither due again nor counted for the next deadline.
        XCTAssertEqual(c.takeDue(now: 10_000), [])
        XCTAssertNil(c.nextDeadline)
    }

    func testAllARecordsAreUsedAndTheSmallestTTLSchedulesTheRefresh() {
        var c = cache("svc.test")
        _ = c.takeDue(now: 0)
        let o = c.record("svc.test", .records([a("10.0.0.2", 30), a("10.0.0.1", 5)]), now: 1_000)
        XCTAssertEqual(o, DNSCache.Outcome(changed: true))
        XCTAssertEqual(c["svc.test"]?.addresses, ["10.0.0.1", "10.0.0.2"])
        XCTAssertEqual(c["svc.test"]?.settled, true)
        XCTAssertEqual(c["svc.test"]?.inFlight, false)
        XCTAssertEqual(c["svc.test"]?.nextRefreshMs, 6_000)
        XCTAssertEqual(c.nextDeadline, 6_000)
        XCTAssertEqual(c.takeDue(now: 5_999), [])
        XCTAssertEqual(c.takeDue(now: 6_000), ["svc.test"])
    }

    func testIPv4IsPreferredWhenTheNameHasBothFamilies() {
        var c = cache("dual.test")
        _ = c.takeDue(now: 0)
        // The AAAA record's smaller TTL does not count: it is not used.
        _ = c.record("dual.test", .records([a("::1", 1), a("127.0.0.1", 9), a("fd00::2", 1)]), now: 0)
        XCTAssertEqual(c["dual.test"]?.addresses, ["127.0.0.1"])
        XCTAssertEqual(c["dual.test"]?.nextRefreshMs, 9_000)
    }

    func testAllAAAARecordsWhenThereIsNoA() {
        var c = cache("v6.test")
        lookup(&c, "v6.test", .records([a("fd00::2", 20), a("fd00::1", 10)]), now: 0)
        XCTAssertEqual(c["v6.test"]?.addresses, ["fd00::1", "fd00::2"])
        XCTAssertEqual(c["v6.test"]?.nextRefreshMs, 10_000)
    }

    func testNoTTLUsesTheRefreshRate() {
        var c = cache("hosts.test", now: 500, refreshRateMs: 60_000)
        lookup(&c, "hosts.test", .records([a("127.0.0.1", 0)]), now: 500)
        XCTAssertEqual(c["hosts.test"]?.nextRefreshMs, 60_500)
        // A negative TTL is no TTL.
        lookup(&c, "hosts.test", .records([a("127.0.0.1", -5)]), now: 60_500)
        XCTAssertEqual(c["hosts.test"]?.nextRefreshMs, 120_500)
        // The refresh rate may change between lookups.
        c.refreshRateMs = 5_000
        lookup(&c, "hosts.test", .records([a("127.0.0.1", 0)]), now: 120_500)
        XCTAssertEqual(c["hosts.test"]?.nextRefreshMs, 125_500)
    }

    func testRefreshIsNeverFasterThanOneSecond() {
        var c = cache("fast.test", refreshRateMs: 0)
        lookup(&c, "fast.test", .records([a("10.0.0.1", 0)]), now: 0)
        XCTAssertEqual(c["fast.test"]?.nextRefreshMs, 1_000)
        lookup(&c, "fast.test", .records([a("10.0.0.1", 1)]), now: 1_000)
        XCTAssertEqual(c["fast.test"]?.nextRefreshMs, 2_000)
    }

    func testChangeDetectionIgnoresOrderAndDuplicates() {
        var c = cache("svc.test")
        XCTAssertEqual(lookup(&c, "svc.test", .records([a("10.0.0.1", 1), a("10.0.0.2", 1)]), now: 0)?.changed, true)
        XCTAssertEqual(lookup(&c, "svc.test", .records([a("10.0.0.2", 1), a("10.0.0.1", 1), a("10.0.0.2", 1)]), now: 1_000)?.changed, false)
        XCTAssertEqual(c["svc.test"]?.addresses, ["10.0.0.1", "10.0.0.2"])
        XCTAssertEqual(lookup(&c, "svc.test", .records([a("10.0.0.3", 1)]), now: 2_000)?.changed, true)
        XCTAssertEqual(c["svc.test"]?.addresses, ["10.0.0.3"])
        // A switch of family is a change too.
        XCTAssertEqual(lookup(&c, "svc.test", .records([a("fd00::3", 1)]), now: 3_000)?.changed, true)
    }

    func testAFailureKeepsTheLastGoodAnswerAndBacksOff() {
        var c = cache("svc.test")
        _ = c.takeDue(now: 0)
        _ = c.record("svc.test", .records([a("10.0.0.1", 1)]), now: 0)
        var now: UInt64 = 1_000
        var delays: [UInt64] = []
        for i in 1...8 {
            XCTAssertEqual(c.takeDue(now: now), ["svc.test"], "attempt \(i)")
            let o = c.record("svc.test", .failure("Timeout while contacting DNS servers"), now: now)
            XCTAssertEqual(o, DNSCache.Outcome(startedFailing: i == 1), "only the first failure is a transition")
            XCTAssertEqual(c["svc.test"]?.addresses, ["10.0.0.1"])
            XCTAssertEqual(c["svc.test"]?.failures, i)
            XCTAssertEqual(c["svc.test"]?.lastError, "Timeout while contacting DNS servers")
            let next = c["svc.test"]!.nextRefreshMs
            delays.append(next - now)
            XCTAssertEqual(c.takeDue(now: next - 1), [], "never retried early")
            now = next
        }
        XCTAssertEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000])
        // A good answer ends it; the TTL schedule is back.
        XCTAssertEqual(c.takeDue(now: now), ["svc.test"])
        let o = c.record("svc.test", .records([a("10.0.0.1", 7)]), now: now)
        XCTAssertEqual(o, DNSCache.Outcome(changed: false, recovered: true))
        XCTAssertEqual(c["svc.test"]?.failures, 0)
        XCTAssertNil(c["svc.test"]?.lastError)
        XCTAssertEqual(c["svc.test"]?.nextRefreshMs, now + 7_000)
        // The next failure is a new transition, retried after 1 s again.
        _ = c.takeDue(now: now + 7_000)
        XCTAssertEqual(c.record("svc.test", .failure("Domain name not found"), now: now + 7_000)?.startedFailing, true)
        XCTAssertEqual(c["svc.test"]?.nextRefreshMs, now + 8_000)
    }

    func testRetryDelays() {
        XCTAssertEqual((0...8).map { DNSCache.retryDelayMs(failures: $0) },
                       [1_000, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000])
        XCTAssertEqual(DNSCache.retryDelayMs(failures: 1_000_000), 30_000)
    }

    func testAFirstFailureSettlesTheNameWithNoAddress() {
        var c = cache("gone.test")
        _ = c.takeDue(now: 0)
        let o = c.record("gone.test", .failure("Domain name not found"), now: 0)
        XCTAssertEqual(o, DNSCache.Outcome(startedFailing: true))
        XCTAssertEqual(c["gone.test"]?.settled, true)
        XCTAssertEqual(c["gone.test"]?.addresses, [])
        XCTAssertEqual(c["gone.test"]?.nextRefreshMs, 1_000)
        // Its first good answer is a change and a recovery.
        _ = c.takeDue(now: 1_000)
        XCTAssertEqual(c.record("gone.test", .records([a("10.0.0.9", 1)]), now: 1_000),
                       DNSCache.Outcome(changed: true, recovered: true))
    }

    func testAnAnswerWithoutAddressesIsAFailure() {
        var c = cache("svc.test")
        _ = c.takeDue(now: 0)
        _ = c.record("svc.test", .records([a("10.0.0.1", 1)]), now: 0)
        _ = c.takeDue(now: 1_000)
        let o = c.record("svc.test", .records([]), now: 1_000)
        XCTAssertEqual(o, DNSCache.Outcome(startedFailing: true))
        XCTAssertEqual(c["svc.test"]?.addresses, ["10.0.0.1"])
        XCTAssertEqual(c["svc.test"]?.lastError, "no address records")
        XCTAssertEqual(c["svc.test"]?.nextRefreshMs, 2_000)
    }

    func testACancelledLookupIsAskedAgainAtOnceWithoutCountingAsAFailure() {
        var c = cache("svc.test")
        _ = c.takeDue(now: 0)
        XCTAssertEqual(c.record("svc.test", .cancelled, now: 50), DNSCache.Outcome())
        XCTAssertEqual(c["svc.test"]?.failures, 0)
        XCTAssertEqual(c["svc.test"]?.settled, false)
        XCTAssertEqual(c["svc.test"]?.inFlight, false)
        XCTAssertEqual(c.takeDue(now: 50), ["svc.test"])
    }

    func testNamesNoLongerUsedAreDropped() {
        var c = cache("a.test", "b.test")
        _ = c.takeDue(now: 0)
        _ = c.record("a.test", .records([a("10.0.0.1", 10)]), now: 0)
        let (added, removed) = c.setNames(["a.test", "c.test"], now: 100)
        XCTAssertEqual(added, ["c.test"])
        XCTAssertEqual(removed, ["b.test"])
        XCTAssertNil(c["b.test"])
        XCTAssertEqual(c.names, ["a.test", "c.test"])
        // The kept name keeps its answer and schedule; a late result for the dropped one is ignored.
        XCTAssertEqual(c["a.test"]?.addresses, ["10.0.0.1"])
        XCTAssertEqual(c["a.test"]?.nextRefreshMs, 10_000)
        XCTAssertNil(c.record("b.test", .records([a("10.0.0.2", 1)]), now: 200))
        XCTAssertNil(c["b.test"])
        XCTAssertEqual(c.takeDue(now: 100), ["c.test"])
    }

    func testRefreshAllMakesIdleNamesDueNow() {
        var c = cache("a.test", "b.test")
        _ = c.takeDue(now: 0)
        _ = c.record("a.test", .records([a("10.0.0.1", 300)]), now: 0)
        c.refreshAll(now: 10)
        XCTAssertEqual(c["a.test"]?.nextRefreshMs, 10)
        XCTAssertEqual(c["b.test"]?.inFlight, true, "a lookup under way is left alone")
        XCTAssertEqual(c.takeDue(now: 10), ["a.test"])
    }
}

final class DNSWarmupsTests: XCTestCase {
    func testNothingToWaitFor() {
        var w = DNSWarmups()
        XCTAssertFalse(w.add(id: 1, names: [], deadline: 5_000))
        XCTAssertTrue(w.isEmpty)
        XCTAssertNil(w.nextDeadline)
    }

    func testCompletesWhenEveryNameIsSettled() {
        var w = DNSWarmups()
        XCTAssertTrue(w.add(id: 1, names: ["a", "b"], deadline: 5_000))
        XCTAssertTrue(w.add(id: 2, names: ["b"], deadline: 6_000))
        XCTAssertEqual(w.nextDeadline, 5_000)
        XCTAssertEqual(w.settled("b"), [2])
        XCTAssertEqual(w.settled("b"), [])
        XCTAssertEqual(w.settled("x"), [])
        XCTAssertEqual(w.settled("a"), [1])
        XCTAssertTrue(w.isEmpty)
    }

    func testExpiresAtTheDeadlineWithTheNamesStillUnanswered() {
        var w = DNSWarmups()
        _ = w.add(id: 1, names: ["a", "b", "c"], deadline: 5_000)
        _ = w.add(id: 2, names: ["d"], deadline: 7_000)
        _ = w.settled("b")
        XCTAssertTrue(w.expire(now: 4_999).isEmpty)
        let expired = w.expire(now: 5_000)
        XCTAssertEqual(expired.map(\.id), [1])
        XCTAssertEqual(expired.first?.unanswered, ["a", "c"])
        XCTAssertEqual(w.nextDeadline, 7_000)
        XCTAssertEqual(w.settled("a"), [], "an expired waiter is gone")
        XCTAssertEqual(w.expire(now: 9_000).map(\.id), [2])
        XCTAssertTrue(w.isEmpty)
    }
}
