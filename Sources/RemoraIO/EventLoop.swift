import CShims
import RemoraCore

/// One epoll loop, run by one thread, owning every connection registered on it.
///
/// Only `post` may be called from other threads. epoll user data packs a slot index
/// with a generation number, so an event for a closed descriptor whose number was
/// reused is recognised and dropped.
public final class EventLoop: @unchecked Sendable {
    private let epfd: Int32
    private let wakeFD: Int32
    private var handlers: [EventHandler?] = []
    private var generations: [UInt32] = []
    private var freeSlots: [Int] = []
    private var wheel: TimerWheel
    private var dueTimers: [LoopTimer] = []
    private var events = [remora_event](repeating: remora_event(), count: 256)

    private let postLock = Lock()
    private var posted: [() -> Void] = []
    private var runningPosted: [() -> Void] = []
    private var wakePending = false
    private var stopping = false
    private var deferred: [DeferredTask] = []
    private var runningDeferred: [DeferredTask] = []

    /// Monotonic milliseconds, refreshed once per loop iteration.
    public private(set) var now: UInt64

    private static let wakeSlot: UInt64 = 0xFFFF_FFFF

    public init() {
        epfd = remora_epoll_create()
        wakeFD = remora_eventfd()
        precondition(epfd >= 0 && wakeFD >= 0, "epoll/eventfd unavailable")
        now = MonotonicClock.nowMilliseconds()
        wheel = TimerWheel(now: now)
        _ = remora_epoll_add(epfd, wakeFD, IOEvents.readable | IOEvents.edgeTriggered, EventLoop.wakeSlot)
    }

    deinit {
        remora_close(epfd)
        remora_close(wakeFD)
    }

    // MARK: registration

    public struct Registration: Equatable, Sendable {
        fileprivate let slot: Int
        fileprivate let generation: UInt32
        public static let none = Registration(slot: -1, generation: 0)
    }

    public func register(fd: Int32, events: UInt32, handler: EventHandler) -> Registration {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
        } else {
            slot = handlers.count
            handlers.append(nil)
            generations.append(0)
        }
        handlers[slot] = handler
        let reg = Registration(slot: slot, generation: generations[slot])
        if remora_epoll_add(epfd, fd, events, key(reg)) != 0 {
            handlers[slot] = nil
            freeSlots.append(slot)
            return .none
        }
        return reg
    }

    public func modify(fd: Int32, events: UInt32, registration: Registration) {
        _ = remora_epoll_mod(epfd, fd, events, key(registration))
    }

    /// Removes the descriptor from epoll (before the owner closes it).
    public func unregister(fd: Int32, registration: Registration) {
        guard registration.slot >= 0, generations[registration.slot] == registration.generation else { return }
        _ = remora_epoll_del(epfd, fd)
        handlers[registration.slot] = nil
        generations[registration.slot] &+= 1
        freeSlots.append(registration.slot)
    }

    @inline(__always) private func key(_ r: Registration) -> UInt64 {
        UInt64(r.generation) << 32 | UInt64(r.slot)
    }

    // MARK: timers

    public func arm(_ timer: LoopTimer, afterMs ms: Int) {
        wheel.arm(timer, deadline: now + UInt64(max(ms, 0)), now: now)
    }

    public func cancel(_ timer: LoopTimer) { wheel.cancel(timer) }

    /// Runs `task` once the current event has been handled: how one connection resumes
    /// another without re-entering it from inside its own handler. No allocation.
    public func schedule(_ task: DeferredTask) { deferred.append(task) }

    // MARK: cross-thread

    /// The one thread-safe call: runs `work` on this loop's thread.
    public func post(_ work: @escaping () -> Void) {
        let wake = postLock.withLock { () -> Bool in
            posted.append(work)
            if wakePending { return false }
            wakePending = true
            return true
        }
        if wake { _ = remora_eventfd_signal(wakeFD) }
    }

    /// Ends `run` after the current iteration. Thread-safe.
    public func stop() { post { [unowned self] in self.stopping = true } }

    // MARK: the loop

    public func run() {
        while !stopping {
            let timeout = wheel.timeout(now: MonotonicClock.nowMilliseconds())
            let n = events.withUnsafeMutableBufferPointer {
                remora_epoll_wait(epfd, $0.baseAddress!, Int32($0.count), timeout)
            }
            now = MonotonicClock.nowMilliseconds()
            if n > 0 {
                for i in 0..<Int(n) {
                    let ev = events[i]
                    if ev.data == EventLoop.wakeSlot {
                        remora_eventfd_drain(wakeFD)
                        runPosted()
                        continue
                    }
                    let slot = Int(truncatingIfNeeded: ev.data & 0xFFFF_FFFF)
                    let gen = UInt32(truncatingIfNeeded: ev.data >> 32)
                    guard slot < handlers.count, generations[slot] == gen, let h = handlers[slot] else { continue }
                    h.handleEvent(ev.events)
                }
            }
            fireTimers()
            runDeferred()
        }
        runPosted()
    }

    private func fireTimers() {
        guard wheel.armedCount > 0 else { return }
        wheel.expire(now: now, into: &dueTimers)
        guard !dueTimers.isEmpty else { return }
        let due = dueTimers
        dueTimers.removeAll(keepingCapacity: true)
        for t in due { t.action() }
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            swap(&deferred, &runningDeferred)
            for t in runningDeferred { t.runDeferred() }
            runningDeferred.removeAll(keepingCapacity: true)
        }
    }

    private func runPosted() {
        postLock.withLock {
            swap(&posted, &runningPosted)
            wakePending = false
        }
        for w in runningPosted { w() }
        runningPosted.removeAll(keepingCapacity: true)
        runDeferred()
    }
}
