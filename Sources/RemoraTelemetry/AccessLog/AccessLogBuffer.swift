#if canImport(Glibc)
import Glibc
#endif

/// One worker's access log lines on their way to the sink: formatted into a buffer and
/// handed over every `batchBytes` or on `tick()` (the lead calls it from a worker timer
/// every 100 ms), so the sink's lock is tried once per batch, not once per request.
/// Used only on its worker's thread.
public final class AccessLogBuffer {
    public let sink: AccessLogSink
    public let batchBytes: Int
    private var lines: [UInt8] = []
    private let scratch = LineScratch()
    /// Lines dropped because the sink's queue was full (also added to `stats`, if given).
    public private(set) var dropped: UInt64 = 0
    private let stats: WorkerStats?

    /// A batch the sink could not take (its lock busy each time) is kept and retried, but
    /// only up to this size: beyond it the lines are dropped rather than held. The lock is
    /// only ever held for a moment, so this is reached only if its holder is descheduled
    /// for long; it bounds memory, it is not a normal path.
    private var maxHeldBytes: Int { max(batchBytes * 16, 1 << 20) }

    /// `stats`: the worker's stats, whose `accessLogDropped` is kept up to date.
    public init(sink: AccessLogSink, batchBytes: Int = 16 * 1024, stats: WorkerStats? = nil) {
        self.sink = sink
        self.batchBytes = max(batchBytes, 1)
        self.stats = stats
        lines.reserveCapacity(self.batchBytes + 1024)
    }

    /// A worker going away hands over what it still holds.
    deinit { drain() }

    /// Formats the entry; nothing at all when the log is off.
    public func append(_ e: AccessLogEntry) {
        guard sink.isEnabled else { return }
        AccessLogFormat.write(e, into: &lines, scratch: scratch)
        if lines.count >= batchBytes { handOver() }
    }

    /// Hands over whatever is buffered.
    public func tick() {
        if !lines.isEmpty { handOver() }
    }

    /// For shutdown: keeps trying until the sink took (or dropped) the buffered lines.
    public func drain() {
        while !lines.isEmpty {
            handOver()
            if !lines.isEmpty { sched_yield() }
        }
    }

    /// Lines buffered and not yet handed to the sink (tests, diagnostics).
    public var bufferedBytes: Int { lines.count }

    private func handOver() {
        let r = sink.submit(&lines)
        var lost = r.droppedLines
        if !r.accepted && lost == 0 && lines.count > maxHeldBytes {
            lost = LogWriter.countLines(lines)
            lines.removeAll(keepingCapacity: true)
        }
        if lost > 0 {
            dropped &+= UInt64(lost)
            stats?.accessLogDropped &+= UInt64(lost)
        }
        // The sink hands back a recycled buffer, or an empty one when it had none.
        if lines.capacity < batchBytes { lines.reserveCapacity(batchBytes + 1024) }
    }
}
