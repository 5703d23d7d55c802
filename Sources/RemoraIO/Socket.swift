#if canImport(Glibc)
import Glibc
#endif
import CShims

/// A numeric socket address (IPv4 or IPv6) and port, as the kernel takes it.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    var raw: remora_addr

    public init?(host: String, port: Int) {
        var a = remora_addr()
        guard remora_addr_make(host, Int32(port), &a) == 0 else { return nil }
        raw = a
    }

    init(raw: remora_addr) { self.raw = raw }

    public var ip: String {
        var raw = self.raw
        var buf = [CChar](repeating: 0, count: 64)
        let n = remora_addr_ip(&raw, &buf, 64)
        return String(decoding: buf[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var port: Int {
        var raw = self.raw
        return Int(remora_addr_port(&raw))
    }

    public var description: String { ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }
}

/// Thin wrappers returning Swift values instead of errno.
public enum Socket {
    public enum IOResult: Equatable {
        case bytes(Int)      // > 0
        case wouldBlock
        case eof
        case failed(Int32)   // errno
    }

    @inline(__always) public static func read(_ fd: Int32, into p: UnsafeMutableRawPointer, count: Int) -> IOResult {
        let n = remora_read(fd, p, count)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .eof }
        let e = Int32(-n)
        return e == 11 /* EAGAIN */ ? .wouldBlock : .failed(e)
    }

    @inline(__always) public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        guard bytes.count > 0 else { return .bytes(0) }
        let n = remora_write(fd, bytes.baseAddress!, bytes.count)
        if n >= 0 { return .bytes(n) }
        let e = Int32(-n)
        return e == 11 ? .wouldBlock : .failed(e)
    }

    public enum ListenError: Error, CustomStringConvertible {
        case badAddress(String)
        case failed(String, Int32)
        public var description: String {
            switch self {
            case .badAddress(let a): "not a numeric address: \(a)"
            case .failed(let a, let e): "cannot listen on \(a): \(String(cString: strerror(e)))"
            }
        }
    }

    /// A non-blocking listening socket; with `reusePort`, each worker binds its own.
    public static func listen(host: String, port: Int, reusePort: Bool, backlog: Int32 = 1024) throws(ListenError) -> Int32 {
        guard var a = SocketAddress(host: host, port: port)?.raw else { throw .badAddress(host) }
        let fd = remora_listen(&a, backlog, reusePort ? 1 : 0)
        if fd < 0 { throw .failed("\(host):\(port)", -fd) }
        return fd
    }

    public static func localPort(_ fd: Int32) -> Int { Int(remora_local_port(fd)) }

    /// Accepts one connection; nil when none is pending (or on a transient error).
    public static func accept(_ lfd: Int32) -> (fd: Int32, peer: SocketAddress)? {
        var peer = remora_addr()
        let fd = remora_accept(lfd, &peer)
        return fd >= 0 ? (fd, SocketAddress(raw: peer)) : nil
    }

    /// Starts a non-blocking connect. Returns the fd or errno.
    public static func connect(_ address: SocketAddress) -> Result<Int32, ConnectError> {
        var a = address.raw
        let fd = remora_connect(&a)
        return fd >= 0 ? .success(fd) : .failure(ConnectError(errno: -fd))
    }

    public struct ConnectError: Error { public let errno: Int32 }

    public static func pendingError(_ fd: Int32) -> Int32 { remora_socket_error(fd) }

    public enum ConnectProgress { case pending, connected, failed }

    /// Where a non-blocking connect stands after an event on its socket: writable means
    /// done unless the socket holds an error; an error or hang-up without writability failed.
    public static func connectProgress(_ fd: Int32, events: UInt32) -> ConnectProgress {
        guard events & (IOEvents.writable | IOEvents.error | IOEvents.hangup) != 0 else { return .pending }
        if pendingError(fd) != 0 || events & (IOEvents.error | IOEvents.hangup) != 0 && events & IOEvents.writable == 0 {
            return .failed
        }
        return .connected
    }

    public static func originalDestination(_ fd: Int32) -> SocketAddress? {
        var a = remora_addr()
        return remora_original_dst(fd, &a) == 0 ? SocketAddress(raw: a) : nil
    }

    public static func localAddress(_ fd: Int32) -> SocketAddress? {
        var a = remora_addr()
        return remora_local_addr(fd, &a) == 0 ? SocketAddress(raw: a) : nil
    }

    public static func close(_ fd: Int32) { _ = remora_close(fd) }
    public static func shutdownWrite(_ fd: Int32) { _ = remora_shutdown_write(fd) }
    /// Closes with RST rather than FIN (a reset must propagate as a reset).
    public static func abort(_ fd: Int32) { remora_set_linger_zero(fd); _ = remora_close(fd) }
}

