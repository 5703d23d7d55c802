#if canImport(Glibc)
import Glibc
#endif
import RemoraCore

/// Where access log lines go: stdout, a file (O_APPEND; `reopen()` after rotation), or
/// nowhere.
///
/// Workers hand over whole batches with `submit`, which never blocks: it only try-locks
/// a bounded queue. A writer thread of its own drains the queue with blocking write(2)
/// calls, so a slow disk or a stalled stdout pipe costs log lines (counted), never
/// request latency. Emptied batch buffers go back to workers, so a steady stream of
/// lines allocates nothing.
public final class AccessLogSink: @unchecked Sendable {
    public enum Target: Sendable, Equatable { case stdout, file(String), off }

    /// The log file could not be opened.
    public struct OpenError: Error, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String { "cannot open access log file \(path): \(String(cString: strerror(code)))" }
    }

    /// Bytes that may wait for the writer before batches are dropped.
    public static let defaultCapacityBytes = 4 << 20

    let target: Target?
    private let writer: LogWriter?

    /// False for `.off`: callers can skip building entries altogether.
    public var isEnabled: Bool { writer != nil }

    /// Opens the target and starts its writer thread (none for `.off`).
    public init(_ target: Target, capacityBytes: Int = AccessLogSink.defaultCapacityBytes) throws {
        self.target = target
        switch target {
        case .off:
            writer = nil
        case .stdout:
            writer = LogWriter(fd: 1, ownsFD: false, capacity: capacityBytes)
        case .file(let path):
            writer = LogWriter(fd: try AccessLogSink.openFile(path), ownsFD: true, capacity: capacityBytes)
        }
    }

    /// Writes to a descriptor the caller opened (a pipe in tests, an inherited fd);
    /// closed when the sink goes away only if `closeOnDeinit`.
    public init(fd: Int32, capacityBytes: Int = AccessLogSink.defaultCapacityBytes, closeOnDeinit: Bool = false) {
        target = nil
        writer = LogWriter(fd: fd, ownsFD: closeOnDeinit, capacity: capacityBytes)
    }

    /// Flushes what is queued and stops the writer thread.
    deinit { writer?.stop() }

    /// Hands a batch of complete lines to the writer without ever waiting.
    /// - accepted: the batch is queued; `lines` is now empty (a recycled buffer).
    /// - dropped > 0: the queue was full; the batch was discarded and `lines` emptied.
    /// - neither: another thread held the queue for a moment; `lines` is untouched, try
    ///   again with the next batch.
    public func submit(_ lines: inout [UInt8]) -> (accepted: Bool, droppedLines: Int) {
        guard let writer else {
            lines.removeAll(keepingCapacity: true)
            return (true, 0)
        }
        if lines.isEmpty { return (true, 0) }
        return writer.trySubmit(&lines)
    }

    /// Waits until the writer has written everything submitted so far (shutdown, tests).
    public func flush() { writer?.flush() }

    /// Reopens the file by name (after log rotation moved it away). Lines being written
    /// finish in the old file; the next ones go to the new one. No-op for other targets.
    public func reopen() throws {
        guard case .file(let path)? = target, let writer else { return }
        let fd = try AccessLogSink.openFile(path)
        // dup2 swaps the descriptor under the writer atomically, so it needs no lock.
        dup2(fd, writer.fd)
        close(fd)
    }

    /// Lines lost because write(2) failed (disk full, closed pipe …).
    public var failedLines: UInt64 { writer?.failedLines ?? 0 }

    /// Runs `body` while the queue's lock is held, as another worker would (tests).
    func holdingQueueLock<T>(_ body: () -> T) -> T {
        guard let writer else { return body() }
        return writer.holdingLock(body)
    }

    static func openFile(_ path: String) throws -> Int32 {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw OpenError(path: path, code: errno) }
        return fd
    }
}

/// The queue and the writer thread behind an `AccessLogSink`.
final class LogWriter: @unchecked Sendable {
    let fd: Int32
    private let ownsFD: Bool
    private let capacity: Int

    private let mutex = PThreadMutex()
    private let workAvailable = PThreadCondition()
    private let drained = PThreadCondition()
    // Guarded by `mutex`.
    private var queue: [[UInt8]] = []
    private var spare: [[UInt8]] = []
    /// Bytes queued or being written: the writer subtracts only after writing, so a
    /// stalled write keeps counting against the capacity.
    private var pendingBytes = 0
    private var writerWaiting = false
    private var stopping = false
    private var linesLost: UInt64 = 0

    private var thread = pthread_t()
    private var lastErrno: Int32 = 0  // writer thread only

    /// Recycled buffers kept for workers; a buffer that grew very large is let go.
    private static let maxSpare = 64
    private static let maxSpareCapacity = 1 << 20

    init(fd: Int32, ownsFD: Bool, capacity: Int) {
        self.fd = fd
        self.ownsFD = ownsFD
        self.capacity = max(capacity, 1)
        queue.reserveCapacity(256)
        spare.reserveCapacity(LogWriter.maxSpare)
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let writer = Unmanaged<LogWriter>.fromOpaque(arg!).takeRetainedValue()
            writer.run()
            return nil
        }, me)
        precondition(rc == 0, "pthread_create (access log writer) failed: \(rc)")
    }

    func trySubmit(_ lines: inout [UInt8]) -> (accepted: Bool, droppedLines: Int) {
        guard mutex.tryLock() else { return (false, 0) }
        if pendingBytes + lines.count > capacity {
            mutex.unlock()
            let n = LogWriter.countLines(lines)
            lines.removeAll(keepingCapacity: true)
            return (false, n)
        }
        pendingBytes += lines.count
        var batch = spare.popLast() ?? []
        swap(&batch, &lines)
        queue.append(batch)
        let wake = writerWaiting
        mutex.unlock()
        if wake { workAvailable.signal() }
        return (true, 0)
    }

    func flush() {
        mutex.withLock {
            while pendingBytes > 0 { drained.wait(mutex) }
        }
    }

    func stop() {
        mutex.withLock { stopping = true }
        workAvailable.signal()
        pthread_join(thread, nil)
        if ownsFD { close(fd) }
    }

    var failedLines: UInt64 { mutex.withLock { linesLost } }

    func holdingLock<T>(_ body: () -> T) -> T { mutex.withLock(body) }

    private func run() {
        // Signals belong to the control thread's signalfd; a closed pipe should give
        // this thread EPIPE rather than kill the process with SIGPIPE.
        var all = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, nil)

        var batch: [[UInt8]] = []
        batch.reserveCapacity(256)
        mutex.lock()
        while true {
            while queue.isEmpty && !stopping {
                writerWaiting = true
                workAvailable.wait(mutex)
                writerWaiting = false
            }
            if queue.isEmpty { break }  // stopping, and everything is written
            swap(&queue, &batch)
            mutex.unlock()

            var written = 0
            var lost: UInt64 = 0
            for i in batch.indices {
                lost += writeAll(batch[i])
                written += batch[i].count
                batch[i].removeAll(keepingCapacity: true)
            }

            mutex.lock()
            pendingBytes -= written
            linesLost += lost
            for b in batch where spare.count < LogWriter.maxSpare && b.capacity <= LogWriter.maxSpareCapacity {
                spare.append(b)
            }
            batch.removeAll(keepingCapacity: true)
            if pendingBytes == 0 { drained.broadcast() }
        }
        mutex.unlock()
    }

    /// Writes one batch, waiting as long as it takes; returns the lines lost to an error.
    private func writeAll(_ buf: [UInt8]) -> UInt64 {
        buf.withUnsafeBytes { p -> UInt64 in
            var off = 0
            while off < p.count {
                let n = write(fd, p.baseAddress! + off, p.count - off)
                if n >= 0 { off += n; continue }
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK {
                    // Someone made the descriptor non-blocking (a shared stdout): wait here.
                    var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&pfd, 1, 1000)
                    continue
                }
                if e != lastErrno {  // once per kind of failure, not once per batch
                    lastErrno = e
                    Log.warning("access log write failed: \(String(cString: strerror(e))); lines are being lost")
                }
                return UInt64(LogWriter.countLines(UnsafeRawBufferPointer(rebasing: p[off...])))
            }
            lastErrno = 0
            return 0
        }
    }

    static func countLines(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { countLines($0) }
    }

    static func countLines(_ p: UnsafeRawBufferPointer) -> Int {
        var n = 0
        for b in p where b == 0x0A { n += 1 }
        return n
    }
}
