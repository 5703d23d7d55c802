#if canImport(Glibc)
import Glibc
#endif
import CCAres
import RemoraCore
import RemoraIO

public struct DNSResolverError: Error, CustomStringConvertible {
    public let description: String
}

/// c-ares driven by an `EventLoop`: its sockets are registered with the loop through the
/// socket-state callback, `ares_timeout` arms a `LoopTimer`, and `ares_process_fd` runs when a
/// socket is ready or the timer fires. Nothing here blocks (c-ares reads /etc/hosts and
/// /etc/resolv.conf, small local files, and sends over non-blocking sockets).
///
/// `ares_getaddrinfo` with AF_UNSPEC does what a resolver library does for a pod: /etc/hosts
/// first, then DNS with resolv.conf's search domains and `ndots` (so Kubernetes short names
/// resolve), A and AAAA asked for together. Only the servers may be overridden.
/// Used on its loop's thread only.
public final class CAresResolver: DNSResolving {
    private let loop: EventLoop
    private var channel: ares_channel?
    private var watches: [Int32: SocketWatch] = [:]
    private lazy var timer = LoopTimer { [unowned self] in self.process(read: -1, write: -1) }

    /// c-ares' process-wide initialisation, once (a Swift static is initialised exactly once).
    private static let libraryStatus: Int32 = ares_library_init(ARES_LIB_INIT_ALL)

    /// `servers` empty: those of /etc/resolv.conf. A query is sent `tries` times per server,
    /// waiting `queryTimeoutMs` (doubling per round, c-ares' rule) for an answer.
    public init(loop: EventLoop, servers: [DNSServer] = [], queryTimeoutMs: Int = 2_000, tries: Int = 2) throws(DNSResolverError) {
        self.loop = loop
        guard CAresResolver.libraryStatus == ARES_SUCCESS else {
            throw DNSResolverError(description: "c-ares: \(String(cString: ares_strerror(CAresResolver.libraryStatus)))")
        }
        var options = ares_options()
        options.timeout = Int32(queryTimeoutMs)
        options.tries = Int32(tries)
        options.sock_state_cb = { data, fd, readable, writable in
            let me = Unmanaged<CAresResolver>.fromOpaque(data!).takeUnretainedValue()
            me.socketState(fd, readable: readable != 0, writable: writable != 0)
        }
        options.sock_state_cb_data = Unmanaged.passUnretained(self).toOpaque()
        var ch: ares_channel?
        let rc = ares_init_options(&ch, &options, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        guard rc == ARES_SUCCESS, let ch else {
            throw DNSResolverError(description: "c-ares: cannot initialise a channel: \(String(cString: ares_strerror(rc)))")
        }
        channel = ch
        if !servers.isEmpty {
            let csv = servers.map(\.description).joined(separator: ",")
            let rc = ares_set_servers_ports_csv(ch, csv)
            if rc != ARES_SUCCESS {
                close()
                throw DNSResolverError(description: "c-ares: invalid servers \"\(csv)\": \(String(cString: ares_strerror(rc)))")
            }
        }
    }

    deinit { close() }

    public func resolve(_ name: String, _ done: @escaping (DNSResult) -> Void) {
        guard let channel else {
            loop.post { done(.cancelled) }
            return
        }
        let query = Unmanaged.passRetained(Query(loop: loop, done: done))
        var hints = ares_addrinfo_hints()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = ARES_AI_NOSORT
        ares_getaddrinfo(channel, name, nil, &hints, { arg, status, _, info in
            let q = Unmanaged<Query>.fromOpaque(arg!).takeRetainedValue()
            let result = CAresResolver.result(status, info)
            if let info { ares_freeaddrinfo(info) }
            // Never re-enter the caller: the callback may run inside ares_getaddrinfo
            // (/etc/hosts) or inside ares_destroy.
            q.loop.post { q.done(result) }
        }, query.toOpaque())
        rearm()
    }

    public func close() {
        guard let ch = channel else { return }
        ares_destroy(ch)   // every query's callback runs (ARES_EDESTRUCTION), sockets close
        channel = nil
        loop.cancel(timer)
        for (fd, w) in watches { loop.unregister(fd: fd, registration: w.registration) }
        watches.removeAll()
    }

    // MARK: driving c-ares from the loop

    fileprivate func process(read: Int32, write: Int32) {
        guard let channel else { return }
        ares_process_fd(channel, read, write)
        rearm()
    }

    private func rearm() {
        guard let channel else { return }
        var tv = timeval()
        if let t = ares_timeout(channel, nil, &tv) {
            let ms = Int(t.pointee.tv_sec) * 1_000 + (Int(t.pointee.tv_usec) + 999) / 1_000
            loop.arm(timer, afterMs: ms)
        } else {
            loop.cancel(timer)
        }
    }

    /// c-ares says which sockets it wants watched; (false, false) comes before it closes one.
    private func socketState(_ fd: Int32, readable: Bool, writable: Bool) {
        let events = (readable ? IOEvents.readable : 0) | (writable ? IOEvents.writable : 0)
        if let w = watches[fd] {
            if events == 0 {
                loop.unregister(fd: fd, registration: w.registration)
                watches.removeValue(forKey: fd)
            } else {
                loop.modify(fd: fd, events: events, registration: w.registration)
            }
            return
        }
        guard events != 0 else { return }
        let w = SocketWatch(resolver: self, fd: fd)
        w.registration = loop.register(fd: fd, events: events, handler: w)
        if w.registration == .none {
            Log.error("dns: cannot watch a c-ares socket (fd \(fd))")
            return
        }
        watches[fd] = w
    }

    /// The addresses of an `ares_getaddrinfo` answer, or why there are none.
    private static func result(_ status: Int32, _ info: UnsafeMutablePointer<ares_addrinfo>?) -> DNSResult {
        switch status {
        case ARES_SUCCESS: break
        case ARES_EDESTRUCTION, ARES_ECANCELLED: return .cancelled
        default: return .failure(String(cString: ares_strerror(status)))
        }
        var records: [DNSRecord] = []
        var node = info?.pointee.nodes
        while let n = node {
            if let sa = n.pointee.ai_addr, let ip = numericAddress(sa, family: n.pointee.ai_family) {
                records.append(DNSRecord(address: ip, ttl: Int(n.pointee.ai_ttl)))
            }
            node = n.pointee.ai_next
        }
        return .records(records)
    }

    private static func numericAddress(_ sa: UnsafeMutablePointer<sockaddr>, family: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok: Bool
        switch family {
        case AF_INET:
            ok = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                withUnsafePointer(to: &sin.pointee.sin_addr) { inet_ntop(AF_INET, $0, &buf, socklen_t(buf.count)) != nil }
            }
        case AF_INET6:
            ok = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                withUnsafePointer(to: &sin6.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &buf, socklen_t(buf.count)) != nil }
            }
        default:
            return nil
        }
        return ok ? String(cString: buf) : nil
    }

    /// One lookup's completion, kept alive by c-ares (an unmanaged +1) until its callback.
    private final class Query {
        let loop: EventLoop
        let done: (DNSResult) -> Void
        init(loop: EventLoop, done: @escaping (DNSResult) -> Void) {
            self.loop = loop
            self.done = done
        }
    }

    /// One c-ares socket registered with the loop (level-triggered: c-ares reads until it
    /// has what it wants, and says when it wants to write).
    private final class SocketWatch: EventHandler {
        unowned let resolver: CAresResolver
        let fd: Int32
        var registration = EventLoop.Registration.none

        init(resolver: CAresResolver, fd: Int32) {
            self.resolver = resolver
            self.fd = fd
        }

        func handleEvent(_ events: UInt32) {
            let failed = events & (IOEvents.error | IOEvents.hangup) != 0
            let read = events & (IOEvents.readable | IOEvents.readHangup) != 0 || failed
            let write = events & IOEvents.writable != 0
            resolver.process(read: read ? fd : -1, write: write ? fd : -1)
        }
    }
}
