#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time. Event loops cache `now` once per iteration; this is the source.
public enum MonotonicClock {
    @inline(__always) public static func nowNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    @inline(__always) public static func nowMilliseconds() -> UInt64 { nowNanoseconds() / 1_000_000 }
}
