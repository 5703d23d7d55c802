import XCTest
import Foundation
import RemoraCore
import RemoraIO
@testable import RemoraDNS
#if canImport(Glibc)
import Glibc
#endif

/// A UDP name server on 127.0.0.1 for the tests: A records from `a`, AAAA from `aaaa`
/// (NOERROR with no answer when a name has none of the type asked), NXDOMAIN for unknown
/// names; `silent` reads queries and never answers.
final class TinyDNSServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    var a: [String: [String]] = [:]
    var aaaa: [String: [String]] = [:]
    var ttl: UInt32 = 7
    let silent: Bool
    private let lock = NSLock()
    private var stopped = false
    private(set) var queries = 0
    private var thread: Thread?

    init(silent: Bool = false) {
        self.silent = silent
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = Int(UInt16(bigEndian: addr.sin_port))
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        usleep(120_000)
        close(fd)
    }

    private func serve() {
        var buf = [UInt8](repeating: 0, count: 1500)
        while true {
            lock.lock(); let s = stopped; lock.unlock()
            if s { return }
            var peer = sockaddr_storage()
            var plen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &peer) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &plen) }
            }
            guard n > 12 else { continue }
            lock.lock(); queries += 1; lock.unlock()
            if silent { continue }
            guard let reply = answer(Array(buf[0..<n])) else { continue }
            _ = withUnsafePointer(to: &peer) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, plen) }
            }
        }
    }

    /// One question in, header + question + answers out.
    private func answer(_ q: [UInt8]) -> [UInt8]? {
        var i = 12
        var labels: [String] = []
        while i < q.count, q[i] != 0 {
            let len = Int(q[i])
            guard i + 1 + len <= q.count else { return nil }
            labels.append(String(decoding: q[(i + 1)..<(i + 1 + len)], as: UTF8.self))
            i += 1 + len
        }
        guard i + 5 <= q.count else { return nil }
        let questionEnd = i + 5
        let qtype = UInt16(q[i + 1]) << 8 | UInt16(q[i + 2])
        let name = labels.joined(separator: ".").lowercased()
        let known = a[name] != nil || aaaa[name] != nil
        var records: [[UInt8]] = []
        if qtype == 1 { records = (a[name] ?? []).map { ip in ip.split(separator: ".").map { UInt8($0)! } } }
        if qtype == 28 {
            records = (aaaa[name] ?? []).map { ip in
                var raw = in6_addr()
                _ = inet_pton(AF_INET6, ip, &raw)
                return withUnsafeBytes(of: &raw) { Array($0) }
            }
        }
        var out = Array(q[0..<2])
        out += [0x81, known ? 0x80 : 0x83]   // QR RD, RA + NOERROR or NXDOMAIN
        out += [0, 1, 0, UInt8(records.count), 0, 0, 0, 0]
        out += q[12..<questionEnd]
        for r in records {
            out += [0xC0, 0x0C, UInt8(qtype >> 8), UInt8(qtype & 0xFF), 0, 1]
            out += [UInt8(ttl >> 24), UInt8((ttl >> 16) & 0xFF), UInt8((ttl >> 8) & 0xFF), UInt8(ttl & 0xFF)]
            out += [0, UInt8(r.count)] + r
        }
        return out
    }
}

/// The c-ares resolver on a real loop thread, against a name server in the test.
final class CAresResolverTests: XCTestCase {
    private var worker: WorkerThread!

    override func setUp() {
        worker = WorkerThread(index: -1)
        worker.start { _ in }
    }

    override func tearDown() {
        worker.loop.stop()
        worker.join()
    }

    /// Resolves `name` on the loop thread with a resolver made there; waits for the result.
    private func lookup(_ name: String, servers: [DNSServer] = [], timeoutMs: Int = 2_000, tries: Int = 2,
                        waitSeconds: TimeInterval = 10) -> DNSResult? {
        let done = expectation(description: "lookup of \(name)")
        let box = ResultBox()
        let loop = worker.loop
        loop.post {
            do {
                let r = try CAresResolver(loop: loop, servers: servers, queryTimeoutMs: timeoutMs, tries: tries)
                box.resolver = r
                r.resolve(name) { result in
                    box.result = result
                    r.close()
                    box.resolver = nil
                    done.fulfill()
                }
            } catch {
                box.result = .failure("\(error)")
                done.fulfill()
            }
        }
        wait(for: [done], timeout: waitSeconds)
        return box.result
    }

    func testEveryAddressRecordWithItsTTL() {
        let dns = TinyDNSServer()
        defer { dns.stop() }
        dns.a["two.remora.test"] = ["127.0.0.2", "127.0.0.1"]
        dns.aaaa["two.remora.test"] = ["fd00::1"]
        dns.ttl = 7
        guard case .records(let records)? = lookup("two.remora.test", servers: [DNSServer(address: "127.0.0.1", port: dns.port)]) else {
            return XCTFail("no records")
        }
        XCTAssertEqual(Set(records), [DNSRecord(address: "127.0.0.2", ttl: 7), DNSRecord(address: "127.0.0.1", ttl: 7),
                                      DNSRecord(address: "fd00::1", ttl: 7)])
    }

    func testAUnknownNameFails() {
        let dns = TinyDNSServer()
        defer { dns.stop() }
        guard case .failure(let why)? = lookup("missing.remora.test", servers: [DNSServer(address: "127.0.0.1", port: dns.port)]) else {
            return XCTFail("expected a failure")
        }
        XCTAssertFalse(why.isEmpty)
    }

    /// A server that never answers: the lookup fails after the query timeout and the loop
    /// goes on serving other work meanwhile (nothing blocks).
    func testASilentServerTimesOutWithoutBlockingTheLoop() {
        let dns = TinyDNSServer(silent: true)
        defer { dns.stop() }
        let done = expectation(description: "timed out")
        let ticked = expectation(description: "the loop ran other work while the query waited")
        let box = ResultBox()
        let loop = worker.loop
        let start = MonotonicClock.nowMilliseconds()
        loop.post {
            let r = try! CAresResolver(loop: loop, servers: [DNSServer(address: "127.0.0.1", port: dns.port)],
                                       queryTimeoutMs: 300, tries: 1)
            box.resolver = r
            r.resolve("silent.remora.test") { result in
                box.result = result
                done.fulfill()
            }
        }
        usleep(100_000)
        loop.post { ticked.fulfill() }
        wait(for: [ticked], timeout: 1)
        wait(for: [done], timeout: 10)
        let elapsed = MonotonicClock.nowMilliseconds() - start
        guard case .failure? = box.result else { return XCTFail("expected a failure, got \(String(describing: box.result))") }
        XCTAssertGreaterThanOrEqual(elapsed, 250)
        XCTAssertLessThan(elapsed, 5_000)
        XCTAssertGreaterThan(dns.queries, 0)
        let closed = expectation(description: "closed")
        loop.post { box.resolver?.close(); box.resolver = nil; closed.fulfill() }
        wait(for: [closed], timeout: 5)
    }

    func testHostsFileAndLiterals() {
        guard case .records(let local)? = lookup("localhost") else { return XCTFail("localhost did not resolve") }
        XCTAssertTrue(local.contains(DNSRecord(address: "127.0.0.1", ttl: 0)), "\(local)")
        guard case .records(let literal)? = lookup("10.1.2.3") else { return XCTFail("a literal did not resolve") }
        XCTAssertEqual(literal.map(\.address), ["10.1.2.3"])
    }

    /// Closing with lookups under way delivers `.cancelled` to each, on the loop, later.
    func testCloseCancelsLookupsUnderWay() {
        let dns = TinyDNSServer(silent: true)
        defer { dns.stop() }
        let done = expectation(description: "cancelled")
        let box = ResultBox()
        let loop = worker.loop
        loop.post {
            let r = try! CAresResolver(loop: loop, servers: [DNSServer(address: "127.0.0.1", port: dns.port)])
            var deliveredInsideClose = true
            r.resolve("pending.remora.test") { result in
                box.result = result
                XCTAssertFalse(deliveredInsideClose)
                done.fulfill()
            }
            r.close()
            deliveredInsideClose = false
        }
        wait(for: [done], timeout: 5)
        XCTAssertEqual(box.result, .cancelled)
    }

    func testInvalidServersAreRefused() {
        let done = expectation(description: "init")
        let loop = worker.loop
        let box = ResultBox()
        loop.post {
            do {
                _ = try CAresResolver(loop: loop, servers: [DNSServer(address: "not-an-ip", port: 53)])
            } catch {
                box.result = .failure("\(error)")
            }
            done.fulfill()
        }
        wait(for: [done], timeout: 5)
        guard case .failure(let why)? = box.result else { return XCTFail("accepted an invalid server") }
        XCTAssertTrue(why.contains("not-an-ip"), why)
    }
}

final class ResultBox: @unchecked Sendable {
    var result: DNSResult?
    var resolver: CAresResolver?
}
