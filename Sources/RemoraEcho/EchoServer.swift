#if canImport(Glibc)
import Glibc
#endif
import RemoraCore
import RemoraIO

/// `remora echo` (SPEC §7): a small upstream for demos, tests and benchmarks.
public final class EchoServer {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var name: String
        public var status: Int?
        public var workers: Int
        public init(host: String, port: Int, name: String, status: Int?, workers: Int) {
            self.host = host
            self.port = port
            self.name = name
            self.status = status
            self.workers = workers
        }
    }

    let options: Options
    public init(_ options: Options) { self.options = options }

    /// Serves until SIGTERM/SIGINT. Throws if the port cannot be bound.
    public func run() throws {
        let sfd = ProcessSetup.signals()
        ProcessSetup.raiseFileLimit()
        var fds: [Int32] = []
        var port = options.port
        for _ in 0..<max(1, options.workers) {
            let fd = try Socket.listen(host: options.host, port: port, reusePort: true)
            if port == 0 { port = Socket.localPort(fd) }
            fds.append(fd)
        }
        Log.info("echo \(options.name) listening on \(options.host):\(port)")
        var threads: [WorkerThread] = []
        for fd in fds {
            let t = WorkerThread(index: threads.count)
            _ = EchoListener(loop: t.loop, fd: fd, options: options)
            threads.append(t)
            t.start { _ in }
        }
        // The control thread only waits for a signal to exit.
        let control = EventLoop()
        _ = control.register(fd: sfd, events: IOEvents.readable, handler: ExitOnSignal(fd: sfd))
        control.run()
    }
}

private final class ExitOnSignal: EventHandler {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func handleEvent(_ events: UInt32) {
        let sig = ProcessSetup.readSignal(fd)
        if sig == SIGTERM || sig == SIGINT { exit(0) }
    }
}

private final class EchoListener: EventHandler {
    let loop: EventLoop
    let fd: Int32
    let options: EchoServer.Options
    /// This worker's buffer blocks (HTTP/2 send queues and header scratch).
    let pool = BufferPool()

    init(loop: EventLoop, fd: Int32, options: EchoServer.Options) {
        self.loop = loop
        self.fd = fd
        self.options = options
        _ = loop.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    func handleEvent(_ events: UInt32) {
        for _ in 0..<64 {
            guard let (cfd, _) = Socket.accept(fd) else { return }
            EchoConnection.start(loop: loop, fd: cfd, options: options, pool: pool)
        }
    }
}
