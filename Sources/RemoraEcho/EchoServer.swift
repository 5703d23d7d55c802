#if canImport(Glibc)
import Glibc
#endif
import RemoraCore
import RemoraIO
import RemoraTLS

/// `remora echo` (SPEC §7): a small upstream for demos, tests and benchmarks.
public final class EchoServer {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var name: String
        public var status: Int?
        public var workers: Int
        /// HTTPS (`--tls-cert/--tls-key`): ALPN h2 and http/1.1.
        public var tlsCertificateFile: String?
        public var tlsKeyFile: String?
        public init(host: String, port: Int, name: String, status: Int?, workers: Int) {
            self.host = host
            self.port = port
            self.name = name
            self.status = status
            self.workers = workers
        }
    }

    let options: Options
    private var tls: TLSServerContext?
    public init(_ options: Options) { self.options = options }

    /// Loads the certificate and key, if the options name them. `run` does it too; the
    /// command line calls it first so an unusable file is a usage error, not a bind error.
    public func loadTLS() throws(TLSError) {
        guard tls == nil, let cert = options.tlsCertificateFile, let key = options.tlsKeyFile else { return }
        tls = try TLSServerContext(entries: [(hosts: ["*"], config: TLSServerConfig(certificateFile: cert, privateKeyFile: key))])
    }

    /// Serves until SIGTERM/SIGINT. Throws if the port cannot be bound.
    public func run() throws {
        try loadTLS()
        let sfd = ProcessSetup.signals()
        ProcessSetup.raiseFileLimit()
        var fds: [Int32] = []
        var port = options.port
        for _ in 0..<max(1, options.workers) {
            let fd = try Socket.listen(host: options.host, port: port, reusePort: true)
            if port == 0 { port = Socket.localPort(fd) }
            fds.append(fd)
        }
        Log.info("echo \(options.name) listening on \(options.host):\(port)\(tls == nil ? "" : " (TLS)")")
        var threads: [WorkerThread] = []
        for fd in fds {
            let t = WorkerThread(index: threads.count)
            _ = EchoListener(loop: t.loop, fd: fd, options: options, tls: tls)
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
    let tls: TLSServerContext?
    /// This worker's buffer blocks (HTTP/2 send queues and header scratch).
    let pool = BufferPool()

    init(loop: EventLoop, fd: Int32, options: EchoServer.Options, tls: TLSServerContext?) {
        self.loop = loop
        self.fd = fd
        self.options = options
        self.tls = tls
        _ = loop.register(fd: fd, events: IOEvents.readable, handler: self)
    }

    func handleEvent(_ events: UInt32) {
        for _ in 0..<64 {
            guard let (cfd, _) = Socket.accept(fd) else { return }
            var conn: TLSConnection?
            if let tls {
                conn = tls.connection(fd: cfd)
                if conn == nil {
                    Socket.close(cfd)
                    continue
                }
            }
            EchoConnection.start(loop: loop, fd: cfd, options: options, pool: pool, tls: conn)
        }
    }
}
