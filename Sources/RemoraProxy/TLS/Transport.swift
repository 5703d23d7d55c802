import RemoraCore
import RemoraIO
import RemoraTLS

/// A connection's byte stream: the socket itself, or TLS over it. Plain connections pay
/// one branch per read or write.
struct Transport {
    let fd: Int32
    var tls: TLSConnection?

    @inline(__always) func read(into p: UnsafeMutableRawPointer, count: Int) -> Socket.IOResult {
        if let t = tls { return t.read(into: p, count: count) }
        return Socket.read(fd, into: p, count: count)
    }

    @inline(__always) func write(_ bytes: UnsafeRawBufferPointer) -> Socket.IOResult {
        if let t = tls { return t.write(bytes) }
        return Socket.write(fd, bytes)
    }

    /// Whether a read shorter than asked means the socket is drained (its next byte brings
    /// a new edge). Not under TLS: a TLS read returns one record at a time.
    @inline(__always) var shortReadDrains: Bool { tls == nil }

    /// A TLS-level failure (an alert from the peer: it refused our client certificate, say)
    /// is worth a log line, and so is a TLS connection that dies before its first response
    /// (with TLS 1.3 a refused client certificate shows only then); a plain reset is not.
    func logFailure(to endpoint: EndpointRef, firstExchange: Bool) {
        guard let t = tls, t.failureReason != nil || firstExchange else { return }
        Log.warning("upstream TLS connection to \(endpoint.address) failed: \(t.failureReason ?? "closed by the peer before answering") (UC)")
    }

    /// Sends close_notify if the handshake completed (best effort, never blocks).
    func closeNotify() { if let t = tls, t.handshakeDone { t.shutdown() } }
}

/// Drives a handshake one step on each socket event.
enum HandshakeStep { case done, waiting, failed(String) }

extension Transport {
    /// After an upstream's TCP connect: TLS over it. false when OpenSSL could not make a connection.
    mutating func beginClientTLS(_ ctx: TLSClientContext) -> Bool {
        guard let t = ctx.connection(fd: fd) else { return false }
        tls = t
        return true
    }

    /// One step of an upstream handshake; a failure is logged and counted here (503 UF follows).
    func upstreamHandshakeStep(worker: ProxyWorker, endpoint: EndpointRef) -> HandshakeStep {
        let step = handshakeStep()
        if case .failed(let why) = step {
            worker.tlsHandshakeFailures += 1
            Log.warning("upstream TLS handshake with \(endpoint.address) failed: \(why) (UF)")
        }
        return step
    }

    func handshakeStep() -> HandshakeStep {
        guard let t = tls, !t.handshakeDone else { return .done }
        switch t.handshake() {
        case .done: return .done
        case .wantRead, .wantWrite: return .waiting
        case .failed(let why): return .failed(why)
        }
    }
}
