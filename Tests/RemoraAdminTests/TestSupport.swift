#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RemoraConfig
import RemoraIO
import RemoraPolicy
import RemoraTestFixtures
import XCTest
@testable import RemoraAdmin

enum Fixtures {
    static let session = "4f9e715d-fe56-4a1e-964b-b00b607e7695"

    /// /work/shared/examples/feature-branch.yaml as it is, plus ServiceEntries for the adservice branches.
    static let featureBranch = ExampleFixtures.featureBranchCopy + "\n" + adserviceEntries
    private static let adserviceEntries = """
    ---
    apiVersion: networking.istio.io/v1beta1
    kind: ServiceEntry
    metadata:
      name: adservice
    spec:
      hosts: [adservice]
      ports: [{number: 9555, name: grpc, protocol: GRPC}]
      resolution: STATIC
      endpoints: [{address: 127.0.0.1}]
    ---
    apiVersion: networking.istio.io/v1beta1
    kind: ServiceEntry
    metadata:
      name: adservice-myfeature
    spec:
      hosts: [adservice-myfeature]
      ports: [{number: 9555, name: grpc, protocol: GRPC}]
      resolution: STATIC
      endpoints: [{address: 127.0.0.2}]
    """

    /// The adservice VirtualService with a second branch rule first (what `ctl route set` would write), as JSON.
    static func adserviceJSON(extraUser: String? = nil, name: String = "adservice", namespace: String? = nil) -> String {
        var rules: [String] = []
        if let u = extraUser {
            rules.append(#"{"match":[{"headers":{"userid":{"exact":"\#(u)"}}}],"route":[{"destination":{"host":"adservice-myfeature"}}]}"#)
        }
        rules.append(#"{"match":[{"headers":{"userid":{"exact":"\#(session)"}}}],"route":[{"destination":{"host":"adservice-myfeature"}}]}"#)
        rules.append(#"{"route":[{"destination":{"host":"adservice"}}]}"#)
        let ns = namespace.map { #","namespace":"\#($0)""# } ?? ""
        return #"{"apiVersion":"networking.istio.io/v1beta1","kind":"VirtualService","metadata":{"name":"\#(name)"\#(ns)},"spec":{"hosts":["\#(name)"],"http":[\#(rules.joined(separator: ","))]}}"#
    }

    /// Everything in `featureBranch` with the adservice VirtualService replaced.
    static func featureBranchWith(adservice: String) -> String {
        let docs = featureBranch.components(separatedBy: "\n---\n")
        return docs.map { $0.contains("name: adservice\nspec:\n  hosts:\n    - adservice") ? adservice : $0 }.joined(separator: "\n---\n")
    }
}

/// An AdminHost that records what the server asks of it. Called on the loop; read from the test thread.
final class FakeHost: AdminHost, @unchecked Sendable {
    private let lock = Lock()
    weak var loop: EventLoop?
    private var _installs: [Int] = []
    private var _serving = true
    private var _drains: [Bool] = []
    private var _hold = false
    private var held: [() -> Void] = []
    private(set) var lastSnapshot: Snapshot?

    var installs: [Int] { lock.withLock { _installs } }
    var drains: [Bool] { lock.withLock { _drains } }
    var serving: Bool {
        get { lock.withLock { _serving } }
        set { lock.withLock { _serving = newValue } }
    }

    /// While true, `install` does not report completion until `release()`.
    func holdInstalls() { lock.withLock { _hold = true } }

    func release() {
        let run: [() -> Void] = lock.withLock {
            _hold = false
            defer { held.removeAll() }
            return held
        }
        for done in run { loop?.post(done) }
    }

    func install(_ snapshot: Snapshot, version: Int, done: @escaping () -> Void) {
        let hold: Bool = lock.withLock {
            _installs.append(version)
            lastSnapshot = snapshot
            if _hold { held.append(done) }
            return _hold
        }
        // The real host reports back later, from the loop, once every worker has it.
        if !hold { loop?.post(done) }
    }

    var isServing: Bool { serving }

    func beginDrain(exitWhenDone: Bool) { lock.withLock { _drains.append(exitWhenDone) } }

    func renderMetrics(_ reply: @escaping (String) -> Void) {
        loop?.post { reply("# TYPE fake_requests_total counter\nfake_requests_total 7\n") }
    }

    func clustersJSON() -> ConfigValue {
        .object([.init("clusters", .array([.object([.init("name", .string("outbound|9555||adservice")),
                                                    .init("endpoints", .array([.string("127.0.0.1:9555")]))])]))])
    }
}

/// An AdminServer on a real event loop in its own thread, on ephemeral ports.
final class Harness {
    let worker = WorkerThread(index: 0)
    let host = FakeHost()
    let store: ConfigStore
    let server: AdminServer
    let adminPort: Int
    let healthPort: Int
    let metricsPort: Int

    init(config: String = Fixtures.featureBranch, limits: AdminHTTPLimits = AdminHTTPLimits()) throws {
        let set = try ConfigLoader.parse(config, source: "test.yaml")
        store = ConfigStore(initial: set, snapshot: try Snapshot.compile(set))
        host.loop = worker.loop
        let local = ListenAddress(address: "127.0.0.1", port: 0)
        // Registered before the loop runs; from then on only the loop thread touches the server.
        server = try AdminServer(loop: worker.loop, store: store, host: host, admin: local, health: local, metrics: local,
                                 limits: limits)
        let ports = server.boundPorts
        adminPort = ports.admin!
        healthPort = ports.health!
        metricsPort = ports.metrics!
        worker.start { _ in }
    }

    /// Runs `body` on the loop thread and waits for it.
    func onLoop<T>(_ body: @escaping () -> T) -> T {
        let sem = DispatchSemaphore(value: 0)
        let box = Box<T>()
        worker.loop.post {
            box.value = body()
            sem.signal()
        }
        sem.wait()
        return box.value!
    }

    var version: Int { onLoop { self.store.version } }

    func stop() {
        onLoop { self.server.close() }
        worker.loop.stop()
        worker.join()
    }

    func client(_ port: Int? = nil) throws -> TestClient { try TestClient(port: port ?? adminPort) }
}

final class Box<T>: @unchecked Sendable { var value: T? }

struct TestResponse {
    var status: Int
    var headers: [String: String]
    var body: String

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
}

struct ClientError: Error, CustomStringConvertible {
    var description: String
}

/// A small blocking HTTP/1.1 client over one keep-alive connection.
final class TestClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, receiveBuffer: Int? = nil, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket failed") }
        if let rb = receiveBuffer {
            var v = Int32(rb)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        setTimeout(seconds: timeoutSeconds)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw ClientError(description: "connect to \(port) failed: errno \(errno)")
        }
    }

    deinit { Glibc.close(fd) }

    func setTimeout(seconds: Int, milliseconds: Int = 0) {
        var tv = timeval(tv_sec: seconds, tv_usec: milliseconds * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw ClientError(description: "send failed: errno \(errno)") }
            off += n
        }
    }

    static func requestText(_ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil) -> String {
        var s = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) { s += "\(k): \(v)\r\n" }
        if let body { s += "Content-Length: \(body.utf8.count)\r\n" }
        s += "\r\n"
        if let body { s += body }
        return s
    }

    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil) throws -> TestResponse {
        try send(TestClient.requestText(method, path, headers: headers, body: body))
        return try readResponse(head: method == "HEAD")
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw ClientError(description: "recv failed (timeout?): errno \(errno)") }
        if n == 0 { throw ClientError(description: "connection closed by the server") }
        buffer += chunk[0..<n]
    }

    /// True when the server closed the connection (reads EOF within the timeout).
    func readsEOF() -> Bool {
        var b = [UInt8](repeating: 0, count: 1024)
        let n = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n == 0
    }

    func readResponse(head: Bool = false) throws -> TestResponse {
        let sep: [UInt8] = [13, 10, 13, 10]
        var end: Int?
        while true {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i..<i + 4].elementsEqual(sep) { end = i; break }
            }
            if end != nil { break }
            try fill()
        }
        let headText = String(decoding: buffer[0..<end!], as: UTF8.self)
        buffer.removeFirst(end! + 4)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ClientError(description: "bad status line \(statusLine)") }
        if status == 100 { return try readResponse(head: head) }
        var headers: [String: String] = [:]
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        let length = head ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        while buffer.count < length { try fill() }
        let body = String(decoding: buffer[0..<length], as: UTF8.self)
        buffer.removeFirst(length)
        return TestResponse(status: status, headers: headers, body: body)
    }
}
