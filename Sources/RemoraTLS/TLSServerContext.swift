import COpenSSL
import RemoraIO

/// The server side of one listener: a default certificate plus SNI-selected ones.
/// Built on the control thread, shared by every worker (OpenSSL 3 contexts are safe to
/// use from many threads); each TLSConnection stays on one thread.
public final class TLSServerContext: @unchecked Sendable {
    private let hosts: [[String]]
    private let lock = Lock()
    private var current: ServerContextSet
    /// One reload at a time; connections are not held up by it (they take `lock` only).
    private let reloadLock = Lock()

    /// `entries`: hosts per certificate ("*" any, "*.example.com" suffix, or exact;
    /// case-insensitive); the first entry is the default when SNI matches none or is
    /// absent.
    public init(entries: [(hosts: [String], config: TLSServerConfig)]) throws(TLSError) {
        guard !entries.isEmpty else { throw TLSError("a TLS listener needs at least one certificate") }
        var built: [ServerEntry] = []
        for (i, e) in entries.enumerated() { built.append(try ServerEntry(index: i, config: e.config)) }
        hosts = entries.map(\.hosts)
        current = ServerContextSet(entries: built, hosts: hosts)
    }

    /// Re-reads the certificate, key and CA files whose identity changed (inode, size,
    /// mtime, symlinks followed) and swaps in a new SSL_CTX for their entries. Live
    /// connections keep the context they started with. An entry that fails to rebuild
    /// keeps its old context and is reported (again on each call until it builds).
    public func reloadIfChanged() -> (reloaded: [String], errors: [TLSError]) {
        reloadLock.withLock {
            let set = lock.withLock { current }
            var entries = set.entries
            var reloaded: [String] = []
            var errors: [TLSError] = []
            for (i, e) in set.entries.enumerated() {
                let changed = e.changedFiles()
                guard !changed.isEmpty else { continue }
                do {
                    entries[i] = try ServerEntry(index: i, config: e.config)
                    for p in changed where !reloaded.contains(p) { reloaded.append(p) }
                } catch {
                    errors.append(TLSError("reloading \(changed.joined(separator: ", ")) (keeping the previous certificate): \(error)"))
                }
            }
            if !reloaded.isEmpty {
                let next = ServerContextSet(entries: entries, hosts: hosts)
                lock.withLock { current = next }
            }
            return (reloaded, errors)
        }
    }

    /// A server-side connection on an accepted non-blocking fd (nil on an OpenSSL
    /// allocation error). The fd stays the caller's to close.
    public func connection(fd: Int32) -> TLSConnection? {
        let set = lock.withLock { current }
        guard let ssl = ContextSetup.newSSL(set.entries[0].ctx, fd: fd) else { return nil }
        SSL_set_accept_state(ssl)
        return TLSConnection(ssl: ssl, serverSet: set, client: nil)
    }
}

/// One listener's contexts at one moment: a reload makes a new set, and a connection
/// keeps the set it started with (which keeps its SSL_CTXs and callback data alive).
final class ServerContextSet: @unchecked Sendable {
    let entries: [ServerEntry]
    let selector: HostSelector

    init(entries: [ServerEntry], hosts: [[String]]) {
        self.entries = entries
        selector = HostSelector(hosts)
    }
}
