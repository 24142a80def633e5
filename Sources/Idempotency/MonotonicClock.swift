import Glibc

/// Milliseconds of `CLOCK_MONOTONIC`.
///
/// Leases and TTLs in the memory store must not move when the wall clock is
/// stepped (NTP, an operator): a jump forward would expire live leases and
/// let a second request run while the first is still executing. The Redis
/// documentation warns about exactly this for key expiry.
public enum MonotonicClock {
    public static func nowMillis() -> UInt64 {
        var ts = timespec()
        let rc = clock_gettime(CLOCK_MONOTONIC, &ts)
        precondition(rc == 0, "clock_gettime(CLOCK_MONOTONIC) failed")
        return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec / 1_000_000)
    }

    /// Unix time in milliseconds (`CLOCK_REALTIME`): only for timestamps people read, such as a
    /// record's creation time, never for a deadline.
    public static func unixMillis() -> UInt64 {
        var ts = timespec()
        let rc = clock_gettime(CLOCK_REALTIME, &ts)
        precondition(rc == 0, "clock_gettime(CLOCK_REALTIME) failed")
        return UInt64(max(0, ts.tv_sec)) &* 1000 &+ UInt64(ts.tv_nsec / 1_000_000)
    }
}
