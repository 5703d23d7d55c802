import RemoraCore
import RemoraIO

/// A shadow request (VirtualService `mirror`/`mirrors`): fire and forget. It asks the
/// upstream to close after answering, discards the answer, and gives up rather than
/// ever holding the primary exchange: a full buffer or a slow peer just ends it.
final class MirrorConnection: EventHandler {
    unowned(unsafe) let worker: ProxyWorker   // workers live for the process
    let fd: Int32
    let outBuf: ByteBuffer
    private var registration = EventLoop.Registration.none
    private var connected = false
    private var writable = false
    private(set) var closed = false
    private lazy var timer = LoopTimer { [unowned self] in self.close() }

    static let lifetimeMs = 15_000
    static let bufferLimit = 256 * 1024

    private init(worker: ProxyWorker, fd: Int32) {
        self.worker = worker
        self.fd = fd
        outBuf = ByteBuffer(pool: worker.buffers)
    }

    static func start(worker: ProxyWorker, endpoint: EndpointRef) -> MirrorConnection? {
        guard case .success(let fd) = Socket.connect(endpoint.address) else { return nil }
        let m = MirrorConnection(worker: worker, fd: fd)
        m.registration = worker.loop.register(fd: fd, events: IOEvents.connection, handler: m)
        guard m.registration != .none else { Socket.close(fd); return nil }
        worker.loop.arm(m.timer, afterMs: lifetimeMs)
        return m
    }

    /// Envoy's shadow host: "-shadow" after the host name, before any port.
    static func shadowHost(_ authority: String) -> String {
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]"),
           authority[authority.index(after: colon)...].allSatisfy(\.isNumber) {
            return authority[..<colon] + "-shadow" + authority[colon...]
        }
        return authority + "-shadow"
    }

    /// Whether `n` more body bytes may be queued; a mirror that fell behind is dropped.
    func accepts(_ n: Int) -> Bool {
        guard !closed else { return false }
        if outBuf.count + n > MirrorConnection.bufferLimit { close(); return false }
        return true
    }

    func handleEvent(_ events: UInt32) {
        if !connected {
            guard events & (IOEvents.writable | IOEvents.error | IOEvents.hangup) != 0 else { return }
            if Socket.pendingError(fd) != 0 { close(); return }
            connected = true
        }
        if events & IOEvents.writable != 0 {
            writable = true
            flush()
        }
        if !closed, events & (IOEvents.readable | IOEvents.readHangup | IOEvents.hangup | IOEvents.error) != 0 {
            discardInput()
        }
    }

    func flush() {
        while connected && writable && !closed && !outBuf.isEmpty {
            switch Socket.write(fd, outBuf.readable) {
            case .bytes(let n): outBuf.consume(n)
            case .wouldBlock: writable = false
            case .eof, .failed: close()
            }
        }
    }

    private func discardInput() {
        var scratch = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &scratch) { p in
            while !closed {
                switch Socket.read(fd, into: p.baseAddress!, count: p.count) {
                case .bytes: continue
                case .wouldBlock: return
                case .eof, .failed: close()
                }
            }
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.loop.cancel(timer)
        worker.loop.unregister(fd: fd, registration: registration)
        Socket.close(fd)
    }
}
