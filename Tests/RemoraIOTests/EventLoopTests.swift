import XCTest
@testable import RemoraIO
import RemoraCore
import Foundation

final class EventLoopTests: XCTestCase {
    /// post from other threads runs every closure on the loop thread, then stop ends run.
    func testPostFromManyThreads() {
        let worker = WorkerThread(index: 0)
        let counter = Counter()
        let ran = expectation(description: "all posted work ran")
        worker.start { _ in }
        let threads = 4, per = 500
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<per {
                worker.loop.post {
                    counter.value += 1
                    if counter.value == threads * per { ran.fulfill() }
                }
            }
        }
        wait(for: [ran], timeout: 10)
        worker.loop.stop()
        worker.join()
        XCTAssertEqual(counter.value, threads * per)
    }

    func testTimerFiresOnLoop() {
        let worker = WorkerThread(index: 0)
        let fired = expectation(description: "timer fired")
        let start = MonotonicClock.nowMilliseconds()
        let holder = TimerHolder()
        worker.start { loop in
            holder.timer = LoopTimer { fired.fulfill() }
            loop.arm(holder.timer!, afterMs: 50)
        }
        wait(for: [fired], timeout: 5)
        XCTAssertGreaterThanOrEqual(MonotonicClock.nowMilliseconds() - start, 50)
        worker.loop.stop()
        worker.join()
    }

    /// A real socket pair through the loop: listen on port 0, connect, accept, read.
    func testAcceptAndReadThroughLoop() throws {
        let lfd = try Socket.listen(host: "127.0.0.1", port: 0, reusePort: false)
        let port = Socket.localPort(lfd)
        XCTAssertGreaterThan(port, 0)
        let loop = EventLoop()
        let got = expectation(description: "bytes read")
        let server = TestServer(loop: loop, lfd: lfd) { bytes in
            if bytes == Array("ping".utf8) { got.fulfill() }
        }
        _ = server
        guard case .success(let cfd) = Socket.connect(SocketAddress(host: "127.0.0.1", port: port)!) else {
            return XCTFail("connect failed")
        }
        let thread = Thread {
            loop.run()
        }
        thread.start()
        // Wait for the connect to finish, then write.
        var wrote = false
        for _ in 0..<100 where !wrote {
            if case .bytes = Socket.write(cfd, UnsafeRawBufferPointer(start: "ping", count: 4)) { wrote = true } else { usleep(10_000) }
        }
        XCTAssertTrue(wrote)
        wait(for: [got], timeout: 5)
        loop.stop()
        Socket.close(cfd)
    }
}

private final class Counter: @unchecked Sendable { var value = 0 }
private final class TimerHolder: @unchecked Sendable { var timer: LoopTimer? }

private final class TestServer: EventHandler {
    let loop: EventLoop
    let lfd: Int32
    let onBytes: ([UInt8]) -> Void
    var conn: Conn?

    init(loop: EventLoop, lfd: Int32, onBytes: @escaping ([UInt8]) -> Void) {
        self.loop = loop
        self.lfd = lfd
        self.onBytes = onBytes
        _ = loop.register(fd: lfd, events: IOEvents.readable, handler: self)
    }

    func handleEvent(_ events: UInt32) {
        guard let (fd, _) = Socket.accept(lfd) else { return }
        conn = Conn(fd: fd, onBytes: onBytes)
        _ = loop.register(fd: fd, events: IOEvents.connection, handler: conn!)
    }

    final class Conn: EventHandler {
        let fd: Int32
        let onBytes: ([UInt8]) -> Void
        init(fd: Int32, onBytes: @escaping ([UInt8]) -> Void) { self.fd = fd; self.onBytes = onBytes }
        func handleEvent(_ events: UInt32) {
            var buf = [UInt8](repeating: 0, count: 64)
            let r = buf.withUnsafeMutableBytes { Socket.read(fd, into: $0.baseAddress!, count: 64) }
            if case .bytes(let n) = r { onBytes(Array(buf[0..<n])) }
        }
    }
}

final class SocketAddressTests: XCTestCase {
    /// Literals only: names are resolved by RemoraDNS, never here.
    func testNumericAddresses() {
        XCTAssertEqual(SocketAddress(host: "10.1.2.3", port: 80)?.description, "10.1.2.3:80")
        XCTAssertEqual(SocketAddress(host: "::1", port: 8080)?.description, "[::1]:8080")
        XCTAssertEqual(SocketAddress(host: "[::1]", port: 8080)?.description, "[::1]:8080")
        XCTAssertNil(SocketAddress(host: "localhost", port: 80))
    }
}
