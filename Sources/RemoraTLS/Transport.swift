import RemoraIO

/// A connection's byte stream: the socket itself, or TLS over it. Plain connections pay
/// one branch per read or write. Used by the proxy's connections and by `remora echo`.
public struct Transport {
    public let fd: Int32
    public var tls: TLSConnection?

    public init(fd: Int32, tls: TLSConnection? = nil) {
        self.fd = fd
        self.tls = tls
    }

    @inline(__always) public func read(into p: UnsafeMutableRawPointer, count: Int) -> Socket.IOResult {
        if let t = tls { return t.read(into: p, count: count) }
        return Socket.read(fd, into: p, count: count)
    }

    @inline(__always) public func write(_ bytes: UnsafeRawBufferPointer) -> Socket.IOResult {
        if let t = tls { return t.write(bytes) }
        return Socket.write(fd, bytes)
    }

    /// Whether a read shorter than asked means the socket is drained (its next byte brings
    /// a new edge). Not under TLS: a TLS read returns one record at a time.
    @inline(__always) public var shortReadDrains: Bool { tls == nil }

    /// Sends close_notify if the handshake completed (best effort, never blocks).
    public func closeNotify() { if let t = tls, t.handshakeDone { t.shutdown() } }

    /// One step of the handshake (done at once without TLS).
    public func handshakeStep() -> HandshakeStep {
        guard let t = tls, !t.handshakeDone else { return .done }
        switch t.handshake() {
        case .done: return .done
        case .wantRead, .wantWrite: return .waiting
        case .failed(let why): return .failed(why)
        }
    }
}

/// Drives a handshake one step on each socket event.
public enum HandshakeStep { case done, waiting, failed(String) }
