import XCTest
import Foundation
@testable import RemoraTelemetry

final class AccessLogSinkTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "remora-alog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func readLines(_ path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"))
        return text.split(separator: "\n").map(String.init)
    }

    func entry(_ path: String) -> AccessLogEntry {
        AccessLogEntry(startTime: WallClock.now(), method: "GET", authority: "svc", path: path, status: 200,
                       bytesSent: 10, durationMs: 1, upstreamHost: "10.0.0.1:80", requestID: UUID().uuidString)
    }

    /// Several workers at once: every line arrives whole, and each worker's lines in order.
    func testFileWithManyProducerThreads() throws {
        let path = dir + "/access.log"
        let threads = 4, perThread = 5_000
        do {
            let sink = try AccessLogSink(.file(path), capacityBytes: 64 << 20)
            let dropped = UnsafeMutablePointer<UInt64>.allocate(capacity: threads)
            defer { dropped.deallocate() }
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let stats = WorkerStats()
                let buffer = AccessLogBuffer(sink: sink, batchBytes: 700 + t * 900, stats: stats)
                for i in 0..<perThread {
                    buffer.append(entry("/t\(t)/\(i)"))
                    if i % 97 == 0 { buffer.tick() }
                }
                buffer.drain()
                XCTAssertEqual(buffer.dropped, stats.accessLogDropped)
                dropped[t] = buffer.dropped
            }
            sink.flush()
            XCTAssertEqual((0..<threads).map { dropped[$0] }, Array(repeating: 0, count: threads))
        }  // the sink's deinit stops its writer and closes the file

        let lines = try readLines(path)
        XCTAssertEqual(lines.count, threads * perThread)
        var next = Array(repeating: 0, count: threads)
        for l in lines {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])
            let parts = try XCTUnwrap(o["path"] as? String).split(separator: "/")
            let t = Int(parts[0].dropFirst())!, i = Int(parts[1])!
            XCTAssertEqual(i, next[t], "thread \(t) out of order")
            next[t] = i + 1
        }
        XCTAssertEqual(next, Array(repeating: perThread, count: threads))
    }

    /// A writer stuck on a full pipe: batches beyond the capacity are dropped and counted,
    /// submit never blocks, and what was accepted still arrives once the pipe drains.
    func testDropsCountedWhenQueueIsFull() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        defer { close(readEnd) }
        // Fill the pipe so that the writer's first write blocks.
        let flags = fcntl(writeEnd, F_GETFL)
        _ = fcntl(writeEnd, F_SETFL, flags | O_NONBLOCK)
        let filler = [UInt8](repeating: 0x2E, count: 4096)
        var prefilled = 0
        while true {
            let n = filler.withUnsafeBytes { write(writeEnd, $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            prefilled += n
        }
        _ = fcntl(writeEnd, F_SETFL, flags)

        let lineText = String(repeating: "x", count: 99) + "\n"  // 100 bytes
        let batch = [UInt8](String(repeating: lineText, count: 10).utf8)  // 1000 bytes, 10 lines
        var accepted = 0, dropped = 0
        do {
            let sink = AccessLogSink(fd: writeEnd, capacityBytes: 4_500, closeOnDeinit: true)
            for _ in 0..<8 {
                var lines = batch
                while true {  // a busy lock keeps the batch: try again
                    let start = DispatchTime.now().uptimeNanoseconds
                    let r = sink.submit(&lines)
                    XCTAssertLessThan(DispatchTime.now().uptimeNanoseconds - start, 50_000_000, "submit blocked")
                    if r.accepted { XCTAssertTrue(lines.isEmpty); accepted += 1; break }
                    if r.droppedLines > 0 {
                        XCTAssertEqual(r.droppedLines, 10)
                        XCTAssertTrue(lines.isEmpty)
                        dropped += 1
                        break
                    }
                    XCTAssertEqual(lines, batch)
                }
            }
            XCTAssertEqual(accepted, 4)  // 4 × 1000 bytes fit in 4 500
            XCTAssertEqual(dropped, 4)

            // Through a worker's buffer, drops land in its stats.
            let stats = WorkerStats()
            let buffer = AccessLogBuffer(sink: sink, batchBytes: 1, stats: stats)
            buffer.append(entry("/big/\(String(repeating: "p", count: 600))"))
            buffer.drain()
            XCTAssertEqual(buffer.dropped, 1)
            XCTAssertEqual(stats.accessLogDropped, 1)

            // Unblock the writer: read everything until it closes the pipe.
            let reader = Thread { [readEnd] in
                var buf = [UInt8](repeating: 0, count: 65536)
                var got: [UInt8] = []
                while true {
                    let n = buf.withUnsafeMutableBytes { read(readEnd, $0.baseAddress!, $0.count) }
                    if n <= 0 { break }
                    got.append(contentsOf: buf[0..<n])
                }
                PipeResult.shared.bytes = got
                PipeResult.shared.done.signal()
            }
            reader.start()
            sink.flush()
        }  // deinit closes the write end, so the reader sees EOF
        XCTAssertEqual(PipeResult.shared.done.wait(timeout: .now() + 10), .success)
        let got = PipeResult.shared.bytes
        XCTAssertEqual(got.count, prefilled + accepted * batch.count)
        XCTAssertEqual(Array(got[prefilled...]), Array([[UInt8]](repeating: batch, count: accepted).joined()))
    }

    func testBusyLockKeepsTheBatch() throws {
        let sink = try AccessLogSink(.file(dir + "/busy.log"))
        var lines = [UInt8]("one\n".utf8)
        let r = sink.holdingQueueLock { sink.submit(&lines) }
        XCTAssertFalse(r.accepted)
        XCTAssertEqual(r.droppedLines, 0)
        XCTAssertEqual(lines, [UInt8]("one\n".utf8))
        // Submitting is a try-lock: the writer thread may hold the lock for a moment (it does
        // at start-up), so the kept batch is offered again, as a worker does on its next tick.
        var accepted = false
        for _ in 0..<1000 where !accepted {
            accepted = sink.submit(&lines).accepted
            if !accepted { usleep(1000) }
        }
        XCTAssertTrue(accepted)
        sink.flush()
        XCTAssertEqual(try readLines(dir + "/busy.log"), ["one"])
    }

    func testOffAcceptsAndDiscards() throws {
        let sink = try AccessLogSink(.off)
        XCTAssertFalse(sink.isEnabled)
        var lines = [UInt8]("x\n".utf8)
        let r = sink.submit(&lines)
        XCTAssertTrue(r.accepted)
        XCTAssertTrue(lines.isEmpty)
        let buffer = AccessLogBuffer(sink: sink)
        buffer.append(entry("/"))
        XCTAssertEqual(buffer.bufferedBytes, 0)
        sink.flush()
    }

    func testOpenErrorNamesPathAndReason() {
        let path = dir + "/missing/dir/access.log"
        XCTAssertThrowsError(try AccessLogSink(.file(path))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path), text)
            XCTAssertTrue(text.contains("No such file or directory"), text)
        }
    }

    func testReopenAfterRotation() throws {
        let path = dir + "/rot.log"
        let sink = try AccessLogSink(.file(path))
        var a = [UInt8]("before\n".utf8)
        XCTAssertTrue(sink.submit(&a).accepted)
        sink.flush()
        XCTAssertEqual(rename(path, path + ".1"), 0)
        var b = [UInt8]("still old\n".utf8)
        XCTAssertTrue(sink.submit(&b).accepted)
        sink.flush()
        try sink.reopen()
        var c = [UInt8]("after\n".utf8)
        XCTAssertTrue(sink.submit(&c).accepted)
        sink.flush()
        XCTAssertEqual(try readLines(path + ".1"), ["before", "still old"])
        XCTAssertEqual(try readLines(path), ["after"])
    }

    func testFileIsAppendedNotTruncated() throws {
        let path = dir + "/append.log"
        try "existing\n".write(toFile: path, atomically: false, encoding: .utf8)
        do {
            let sink = try AccessLogSink(.file(path))
            var l = [UInt8]("new\n".utf8)
            XCTAssertTrue(sink.submit(&l).accepted)
        }  // deinit flushes
        XCTAssertEqual(try readLines(path), ["existing", "new"])
    }
}

/// Hands the pipe reader's result back to the test.
final class PipeResult: @unchecked Sendable {
    static let shared = PipeResult()
    var bytes: [UInt8] = []
    let done = DispatchSemaphore(value: 0)
}
