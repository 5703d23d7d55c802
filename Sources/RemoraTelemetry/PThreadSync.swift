#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex (RemoraCore has no threads and this module must not need RemoraIO).
final class PThreadMutex: @unchecked Sendable {
    let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }

    @inline(__always) func lock() { pthread_mutex_lock(m) }
    /// False when another thread holds it: the caller never waits.
    @inline(__always) func tryLock() -> Bool { pthread_mutex_trylock(m) == 0 }
    @inline(__always) func unlock() { pthread_mutex_unlock(m) }

    @inline(__always) func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// A condition variable used with a `PThreadMutex`.
final class PThreadCondition: @unchecked Sendable {
    private let c = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() { pthread_cond_init(c, nil) }
    deinit { pthread_cond_destroy(c); c.deallocate() }

    /// Waits with `mutex` held (re-acquired on return; spurious wake-ups possible).
    func wait(_ mutex: PThreadMutex) { pthread_cond_wait(c, mutex.m) }
    func signal() { pthread_cond_signal(c) }
    func broadcast() { pthread_cond_broadcast(c) }
}
