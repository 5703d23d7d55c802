import XCTest
@testable import RemoraIO

final class TimerWheelTests: XCTestCase {
    func testFiresInDeadlineOrderAcrossRounds() {
        var wheel = TimerWheel(now: 0)
        var fired: [Int] = []
        // Distinct 8 ms ticks (order within one tick is not promised); some beyond one revolution (4096 ms).
        let delays = [5, 30, 3_000, 10_000, 20, 4_200]
        let timers = delays.map { d in LoopTimer { fired.append(d) } }
        for (t, d) in zip(timers, delays) { wheel.arm(t, deadline: UInt64(d), now: 0) }
        var due: [LoopTimer] = []
        var now: UInt64 = 0
        while now <= 11_000 {
            now += 8
            wheel.expire(now: now, into: &due)
            for t in due { t.action() }
            due.removeAll()
        }
        XCTAssertEqual(fired, delays.sorted())
        XCTAssertEqual(wheel.armedCount, 0)
    }

    func testNeverFiresEarly() {
        var wheel = TimerWheel(now: 1_000)
        var firedAt: UInt64?
        var now: UInt64 = 1_000
        let t = LoopTimer { firedAt = now }
        wheel.arm(t, deadline: 1_100, now: 1_000)
        var due: [LoopTimer] = []
        while now < 1_300 {
            now += 1
            wheel.expire(now: now, into: &due)
            for t in due { t.action() }
            due.removeAll()
        }
        XCTAssertNotNil(firedAt)
        XCTAssertGreaterThanOrEqual(firedAt!, 1_100)
        XCTAssertLessThan(firedAt!, 1_100 + TimerWheel.tick * 2)
    }

    func testCancelAndRearm() {
        var wheel = TimerWheel(now: 0)
        var count = 0
        let t = LoopTimer { count += 1 }
        wheel.arm(t, deadline: 50, now: 0)
        wheel.cancel(t)
        XCTAssertFalse(t.isArmed)
        wheel.arm(t, deadline: 100, now: 0)
        wheel.arm(t, deadline: 200, now: 0)   // re-arm moves it
        XCTAssertEqual(wheel.armedCount, 1)
        var due: [LoopTimer] = []
        wheel.expire(now: 150, into: &due)
        XCTAssertTrue(due.isEmpty)
        wheel.expire(now: 216, into: &due)
        for t in due { t.action() }
        XCTAssertEqual(count, 1)
    }

    func testLongStallFiresEverythingOnce() {
        var wheel = TimerWheel(now: 0)
        var count = 0
        let timers = (1...100).map { _ in LoopTimer { count += 1 } }
        for (i, t) in timers.enumerated() { wheel.arm(t, deadline: UInt64(i * 37), now: 0) }
        var due: [LoopTimer] = []
        wheel.expire(now: 100_000, into: &due)
        for t in due { t.action() }
        XCTAssertEqual(count, 100)
    }

    /// The wheel does not turn while nothing is armed (the loop sleeps without a timeout):
    /// a timer armed after a long idle spell must still fire on time, not revolutions late.
    func testTimerArmedAfterIdleSpellFiresOnTime() {
        var wheel = TimerWheel(now: 0)
        var due: [LoopTimer] = []
        var firedAt: UInt64?
        var now: UInt64 = 9_000   // 9 s with nothing armed: expire() was never called
        let t = LoopTimer { firedAt = now }
        wheel.arm(t, deadline: now + 100, now: now)
        while firedAt == nil && now < 30_000 {
            now += 8
            wheel.expire(now: now, into: &due)
            for t in due { t.action() }
            due.removeAll()
        }
        XCTAssertNotNil(firedAt)
        XCTAssertLessThan(firedAt!, 9_100 + TimerWheel.tick * 2)
    }

    /// A stall while timers are armed: those due fire at once, later ones keep their time.
    func testStallKeepsLaterTimers() {
        var wheel = TimerWheel(now: 0)
        var fired: [Int] = []
        let early = LoopTimer { fired.append(1) }
        let late = LoopTimer { fired.append(2) }
        wheel.arm(early, deadline: 100, now: 0)
        wheel.arm(late, deadline: 20_000, now: 0)
        var due: [LoopTimer] = []
        wheel.expire(now: 10_000, into: &due)   // a 10 s stall
        for t in due { t.action() }
        due.removeAll()
        XCTAssertEqual(fired, [1])
        wheel.expire(now: 19_990, into: &due)
        XCTAssertTrue(due.isEmpty)
        wheel.expire(now: 20_008, into: &due)
        for t in due { t.action() }
        XCTAssertEqual(fired, [1, 2])
    }
}
