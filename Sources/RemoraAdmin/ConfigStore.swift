#if canImport(Glibc)
import Glibc
#endif
import RemoraConfig
import RemoraPolicy

/// One configuration version as `GET /config/history` shows it.
public struct HistoryEntry: Sendable, Equatable {
    public let version: Int
    /// RFC 3339, UTC, milliseconds: "2025-01-31T12:00:00.123Z".
    public let time: String
    /// "initial configuration", "PUT /config", "SIGHUP", "rollback to version 3", …
    public let cause: String
    /// "VirtualService default/adservice updated", "… created", "… deleted"; empty when the
    /// new version's resources are the same as the previous one's.
    public let changed: [String]
}

/// Why a rollback was refused.
public enum RollbackError: Error, CustomStringConvertible {
    /// The version is not (or no longer) kept in the history.
    case unknownVersion(Int)
    /// `rollback(to: nil)` with no version before the current one kept.
    case noEarlierVersion
    /// The old configuration no longer compiles (should not happen: it did once).
    case invalid(ConfigErrors)

    public var description: String {
        switch self {
        case .unknownVersion(let v): return "version \(v) is not in the history"
        case .noEarlierVersion: return "there is no earlier version to roll back to"
        case .invalid(let e): return "the old configuration does not compile: \(e)"
        }
    }
}

/// The configuration in force and its recent history: every change (admin API, SIGHUP, file
/// watching, rollback) goes through `apply`, is validated and compiled as a whole, and becomes a new
/// version (+1). Not thread-safe: it lives on the control loop.
public final class ConfigStore {
    public typealias Applied = (version: Int, changed: [String], snapshot: Snapshot)

    private struct Kept {
        var entry: HistoryEntry
        var config: ConfigSet
    }

    /// Oldest first, at most `historyLimit` versions, the last one in force.
    private var kept: [Kept] = []
    public let historyLimit: Int
    public private(set) var version: Int
    public private(set) var current: ConfigSet
    public private(set) var currentSnapshot: Snapshot
    /// Changes applied (not dry runs) and changes rejected, for `remora_config_reloads_total{result}`.
    public private(set) var reloadsSucceeded = 0
    public private(set) var reloadsFailed = 0

    /// `initial` is the configuration `remora run -c` started with, version 1.
    public init(initial: ConfigSet, snapshot: Snapshot, historyLimit: Int = 32) {
        self.historyLimit = max(historyLimit, 2)
        version = 1
        current = initial
        currentSnapshot = snapshot
        let changed = initial.resources.map { "\($0.key) created" }
        kept = [Kept(entry: HistoryEntry(version: 1, time: ConfigStore.now(), cause: "initial configuration", changed: changed),
                     config: initial)]
    }

    /// Validates and compiles a candidate (the whole set of resources), records it as a new version
    /// with what changed, or throws with every error. `dryRun`: validate and compile only; the result
    /// then carries the version in force.
    @discardableResult
    public func apply(_ candidate: [Resource], cause: String, dryRun: Bool) throws(ConfigErrors) -> Applied {
        let set: ConfigSet
        let snapshot: Snapshot
        do {
            set = try ConfigSet.validated(candidate)
            snapshot = try Snapshot.compile(set)
        } catch {
            if !dryRun { reloadsFailed += 1 }
            throw error
        }
        let changed = ConfigStore.changes(from: current.resources, to: set.resources)
        if dryRun { return (version, changed, snapshot) }
        commit(set, snapshot: snapshot, cause: cause, changed: changed)
        return (version, changed, snapshot)
    }

    /// Makes an earlier version current again, as a new version. nil: the version before the current one.
    @discardableResult
    public func rollback(to target: Int?, dryRun: Bool = false) throws(RollbackError) -> Applied {
        let wanted = target ?? (version - 1)
        guard let old = kept.first(where: { $0.entry.version == wanted }) else {
            if !dryRun { reloadsFailed += 1 }
            throw target == nil ? .noEarlierVersion : .unknownVersion(wanted)
        }
        do {
            return try apply(old.config.resources, cause: "rollback to version \(wanted)", dryRun: dryRun)
        } catch {
            throw .invalid(error)
        }
    }

    /// Counts a change refused before it reached `apply` (a body that does not decode).
    public func recordRejected() { reloadsFailed += 1 }

    /// The versions kept, oldest first; the last is the one in force.
    public func history() -> [HistoryEntry] { kept.map(\.entry) }

    /// The resources of a kept version (nil when not kept).
    public func configuration(version v: Int) -> ConfigSet? { kept.first { $0.entry.version == v }?.config }

    /// `remora_config_version` and `remora_config_reloads_total{result}` in Prometheus text format.
    public func prometheusText() -> String {
        """
        # HELP remora_config_version The configuration version in force.
        # TYPE remora_config_version gauge
        remora_config_version \(version)
        # HELP remora_config_reloads_total Configuration changes applied (success) or rejected (failure).
        # TYPE remora_config_reloads_total counter
        remora_config_reloads_total{result="success"} \(reloadsSucceeded)
        remora_config_reloads_total{result="failure"} \(reloadsFailed)

        """
    }

    private func commit(_ set: ConfigSet, snapshot: Snapshot, cause: String, changed: [String]) {
        version += 1
        current = set
        currentSnapshot = snapshot
        reloadsSucceeded += 1
        kept.append(Kept(entry: HistoryEntry(version: version, time: ConfigStore.now(), cause: cause, changed: changed), config: set))
        if kept.count > historyLimit { kept.removeFirst(kept.count - historyLimit) }
    }

    // MARK: what changed

    /// "created"/"updated" in the new set's order, then "deleted" in the old set's order.
    static func changes(from old: [Resource], to new: [Resource]) -> [String] {
        var before: [ResourceKey: ConfigValue] = [:]
        for r in old where before[r.key] == nil { before[r.key] = comparable(r.raw) }
        var out: [String] = []
        var seen = Set<ResourceKey>()
        for r in new where seen.insert(r.key).inserted {
            if let b = before[r.key] {
                if b != comparable(r.raw) { out.append("\(r.key) updated") }
            } else {
                out.append("\(r.key) created")
            }
        }
        for r in old where !seen.contains(r.key) {
            seen.insert(r.key)
            out.append("\(r.key) deleted")
        }
        return out
    }

    /// The document without what the API server (not the user) writes, so a resource copied back
    /// from `kubectl get -o yaml` is not "updated" because its resourceVersion moved; object keys
    /// sorted (their order means nothing); `apiVersion` left out (every accepted version is the same API).
    private static let serverFields: Set<String> = ["uid", "resourceVersion", "generation", "creationTimestamp",
                                                    "managedFields", "selfLink"]

    static func comparable(_ raw: ConfigValue) -> ConfigValue {
        guard case .object(var entries) = raw else { return raw }
        entries.removeAll { $0.key == "apiVersion" }
        if let i = entries.firstIndex(where: { $0.key == "metadata" }), case .object(let meta) = entries[i].value {
            var m = meta.filter { !serverFields.contains($0.key) }
            if let a = m.firstIndex(where: { $0.key == "annotations" }), case .object(let ann) = m[a].value {
                let kept = ann.filter { $0.key != "kubectl.kubernetes.io/last-applied-configuration" }
                if kept.isEmpty { m.remove(at: a) } else { m[a].value = .object(kept) }
            }
            if !m.contains(where: { $0.key == "namespace" }) { m.append(.init("namespace", .string("default"))) }
            entries[i].value = .object(m)
        }
        return sortedKeys(.object(entries))
    }

    private static func sortedKeys(_ v: ConfigValue) -> ConfigValue {
        switch v {
        case .object(let entries): return .object(entries.map { .init($0.key, sortedKeys($0.value)) }.sorted { $0.key < $1.key })
        case .array(let items): return .array(items.map(sortedKeys))
        default: return v
        }
    }

    // MARK: time

    /// RFC 3339 in UTC with milliseconds.
    static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
            + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }
}
