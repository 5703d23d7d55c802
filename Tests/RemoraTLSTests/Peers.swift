#if canImport(Glibc)
import Glibc
#endif
import RemoraIO
import RemoraTLS
import XCTest

/// A connected pair of non-blocking sockets standing in for a TCP connection, with a
/// TLS client on one end and a TLS server on the other, driven in turn on one thread.
final class Peers {
    let clientFD: Int32
    let serverFD: Int32
    let client: TLSConnection
    let server: TLSConnection
    private(set) var clientResult = TLSConnection.Handshake.wantWrite
    private(set) var serverResult = TLSConnection.Handshake.wantRead

    init(client c: TLSClientContext, server s: TLSServerContext) {
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        clientFD = fds[0]
        serverFD = fds[1]
        client = c.connection(fd: clientFD)!
        server = s.connection(fd: serverFD)!
    }

    deinit {
        close(clientFD)
        close(serverFD)
    }

    private static func terminal(_ h: TLSConnection.Handshake) -> Bool {
        if case .wantRead = h { return false }
        if case .wantWrite = h { return false }
        return true
    }

    /// Steps both sides until each is done or failed (a side that failed gets its
    /// alert to the other, which is given a few more steps to see it).
    @discardableResult
    func handshake() -> (client: TLSConnection.Handshake, server: TLSConnection.Handshake) {
        var grace = 0
        for _ in 0..<1000 {
            if !Peers.terminal(clientResult) { clientResult = client.handshake() }
            if !Peers.terminal(serverResult) { serverResult = server.handshake() }
            if Peers.terminal(clientResult) && Peers.terminal(serverResult) { break }
            if Peers.terminal(clientResult) || Peers.terminal(serverResult) {
                grace += 1
                if grace > 20 { break }
            }
        }
        return (clientResult, serverResult)
    }

    var bothDone: Bool { clientResult == .done && serverResult == .done }

    /// Sends `data` from one side while the other reads it all; writes retry with a
    /// copy of the remaining bytes at a new address after `.wouldBlock` (a moving
    /// buffer). Returns what arrived and how many writes were partial.
    static func transfer(_ data: [UInt8], from w: TLSConnection, to r: TLSConnection) -> (received: [UInt8], partialWrites: Int) {
        var sent = 0
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        var partial = 0
        var pending: [UInt8]? = nil
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { chunk.deallocate() }
        var idle = 0
        while received.count < data.count && idle < 10_000 {
            var moved = false
            if sent < data.count {
                let res: Socket.IOResult
                if let p = pending {
                    res = p.withUnsafeBytes { w.write($0) }
                } else {
                    res = data[sent...].withUnsafeBytes { w.write($0) }
                }
                switch res {
                case .bytes(let n):
                    if n < data.count - sent { partial += 1 }
                    sent += n
                    pending = nil
                    moved = true
                case .wouldBlock:
                    pending = Array(data[sent...])
                default:
                    XCTFail("write: \(res)")
                    return (received, partial)
                }
            }
            reading: while true {
                switch r.read(into: chunk, count: 64 * 1024) {
                case .bytes(let n):
                    received.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: n))
                    moved = true
                case .wouldBlock:
                    break reading
                case let other:
                    XCTFail("read: \(other)")
                    return (received, partial)
                }
            }
            idle = moved ? 0 : idle + 1
        }
        return (received, partial)
    }

    /// Reads until `.wouldBlock` or a terminal result; returns the bytes and the last result.
    static func drain(_ c: TLSConnection) -> ([UInt8], Socket.IOResult) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let r = buf.withUnsafeMutableBytes { c.read(into: $0.baseAddress!, count: $0.count) }
            if case .bytes(let n) = r { out += buf[0..<n]; continue }
            return (out, r)
        }
    }
}
