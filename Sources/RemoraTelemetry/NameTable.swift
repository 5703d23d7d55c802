#if canImport(Glibc)
import Glibc
#endif

/// Gives each cluster / service name a small integer for the process's lifetime, so
/// workers key their series by integers and never touch strings per request.
///
/// Thread-safe: ids are handed out on the control thread while configuration is built
/// and names are looked up when rendering a scrape; workers only carry the integers.
/// Names are never forgotten (a reload that drops a cluster keeps its id), which keeps
/// ids valid in series recorded before the reload.
public final class NameTable: @unchecked Sendable {
    private let lock = PThreadMutex()
    private var ids: [String: Int32] = [:]
    private var names: [String] = []

    public init() {}

    /// The id of `name`, assigned on first use.
    public func id(_ name: String) -> Int32 {
        lock.withLock {
            if let id = ids[name] { return id }
            let id = Int32(names.count)
            names.append(name)
            ids[name] = id
            return id
        }
    }

    /// The name for `id`; "unknown" for -1 or an id this table never gave out.
    public func name(_ id: Int32) -> String {
        lock.withLock { id >= 0 && Int(id) < names.count ? names[Int(id)] : "unknown" }
    }

    /// Every name, indexed by id: one lock for a whole scrape instead of one per label.
    public func allNames() -> [String] {
        lock.withLock { names }
    }
}
