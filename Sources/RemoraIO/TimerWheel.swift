/// A timer owned by one connection (or other object) and re-armed for its whole life:
/// arming and cancelling are O(1) list operations, so idle and request timeouts can be
/// moved on every read at no real cost.
public final class LoopTimer {
    let action: () -> Void
    fileprivate(set) var deadline: UInt64 = 0   // ms, monotonic
    fileprivate var bucket = -1
    fileprivate var prev: LoopTimer?
    fileprivate var next: LoopTimer?

    public var isArmed: Bool { bucket >= 0 }

    /// `action` must not retain its owner strongly (capture `[unowned self]`).
    public init(_ action: @escaping () -> Void) { self.action = action }
}

/// A hashed timing wheel (as in h2o and Envoy): `slots` buckets of `tick` ms each.
/// A bucket holds timers of every revolution; visiting it fires those whose absolute
/// deadline has passed, so neither an idle loop (the wheel does not turn while nothing
/// is armed) nor a stall can make a timer fire late by whole revolutions.
struct TimerWheel {
    static let tick: UInt64 = 8
    static let slots = 512

    private var buckets = [LoopTimer?](repeating: nil, count: TimerWheel.slots)
    private var current: UInt64     // the tick processed last
    private(set) var armedCount = 0

    init(now: UInt64) { current = now / TimerWheel.tick }

    mutating func arm(_ t: LoopTimer, deadline: UInt64, now: UInt64) {
        if t.bucket >= 0 { cancel(t) }
        // Nothing armed: the wheel has not been turning, catch it up first.
        if armedCount == 0 { current = max(current, now / TimerWheel.tick) }
        // Round up: a timer may fire up to one tick late, never early.
        let targetTick = max((deadline + TimerWheel.tick - 1) / TimerWheel.tick, current + 1)
        t.deadline = max(deadline, targetTick * TimerWheel.tick)
        let b = Int(targetTick % UInt64(TimerWheel.slots))
        t.bucket = b
        t.prev = nil
        t.next = buckets[b]
        buckets[b]?.prev = t
        buckets[b] = t
        armedCount += 1
    }

    mutating func cancel(_ t: LoopTimer) {
        guard t.bucket >= 0 else { return }
        if let p = t.prev { p.next = t.next } else { buckets[t.bucket] = t.next }
        t.next?.prev = t.prev
        t.prev = nil
        t.next = nil
        t.bucket = -1
        armedCount -= 1
    }

    /// Milliseconds until the next tick that may have work, or -1 when nothing is armed.
    func timeout(now: UInt64) -> Int32 {
        guard armedCount > 0 else { return -1 }
        let nextTickTime = (current + 1) * TimerWheel.tick
        return nextTickTime > now ? Int32(nextTickTime - now) : 0
    }

    /// Collects the timers due at `now` (fired by the caller, after the wheel is consistent).
    mutating func expire(now: UInt64, into due: inout [LoopTimer]) {
        let target = now / TimerWheel.tick
        // After a long stall, visit each bucket at most once.
        if target > current + UInt64(TimerWheel.slots) { current = target - UInt64(TimerWheel.slots) }
        while current < target {
            current += 1
            let b = Int(current % UInt64(TimerWheel.slots))
            var t = buckets[b]
            while let timer = t {
                t = timer.next
                if timer.deadline <= now {
                    cancel(timer)
                    due.append(timer)
                }
            }
        }
    }
}
