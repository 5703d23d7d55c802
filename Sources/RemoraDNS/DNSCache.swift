/// One address record as a resolver reports it: an IP literal and its TTL in seconds
/// (0 when the source has none, e.g. /etc/hosts).
public struct DNSRecord: Sendable, Hashable {
    public var address: String
    public var ttl: Int

    public init(address: String, ttl: Int) {
        self.address = address
        self.ttl = ttl
    }

    public var isIPv6: Bool { address.contains(":") }
}

/// What one lookup of a name gave.
public enum DNSResult: Sendable, Equatable {
    /// Every address record of the name, both families.
    case records([DNSRecord])
    /// The lookup failed (NXDOMAIN, timeout, refused, …): the message says why.
    case failure(String)
    /// The resolver was replaced or shut down before an answer: not the name's fault.
    case cancelled
}

/// The refresh policy of every name the clusters use, as a pure state machine: time comes in
/// as monotonic milliseconds, so the tests drive it with a fake clock.
///
/// Rules (Envoy's strict DNS clusters with `respect_dns_ttl`, V4_PREFERRED):
/// - an answer's addresses are all its A records if it has any, else all its AAAA records;
/// - an answer with a TTL is refreshed after the smallest TTL of the records used (at least
///   1 s); one without (TTL 0, /etc/hosts) after `refreshRateMs`;
/// - a failure (or an answer with no address) keeps the last good answer and is retried after
///   1 s, doubling up to 30 s;
/// - a name no cluster uses any more is dropped.
public struct DNSCache: Sendable {
    public static let defaultRefreshRateMs = 60_000
    public static let minRefreshMs: UInt64 = 1_000
    public static let firstRetryMs: UInt64 = 1_000
    public static let maxRetryMs: UInt64 = 30_000

    /// One name's state.
    public struct Entry: Sendable, Equatable {
        /// The last good answer, sorted; empty until one arrives.
        public var addresses: [String] = []
        /// Whether any lookup of the name has finished (good or not) since it was added.
        public var settled = false
        /// Failures since the last good answer.
        public var failures = 0
        public var lastError: String?
        /// When the name is due for its next lookup (monotonic ms).
        public var nextRefreshMs: UInt64
        /// A lookup is under way (its result has not been recorded).
        public var inFlight = false

        init(due: UInt64) { nextRefreshMs = due }
    }

    /// What recording a result did.
    public struct Outcome: Sendable, Equatable {
        /// The address set is different from the one before (order does not matter).
        public var changed = false
        /// The first failure after a good answer (or of a name with none yet): log it.
        public var startedFailing = false
        /// A good answer after failures: log it.
        public var recovered = false

        public init(changed: Bool = false, startedFailing: Bool = false, recovered: Bool = false) {
            self.changed = changed
            self.startedFailing = startedFailing
            self.recovered = recovered
        }
    }

    public var refreshRateMs: Int
    public private(set) var entries: [String: Entry] = [:]

    public init(refreshRateMs: Int = DNSCache.defaultRefreshRateMs) {
        self.refreshRateMs = refreshRateMs
    }

    public subscript(name: String) -> Entry? { entries[name] }

    public var names: Set<String> { Set(entries.keys) }

    /// Makes `names` the tracked set: new names are due at once, names not in it are dropped.
    /// Returns the names added and removed.
    @discardableResult
    public mutating func setNames(_ names: Set<String>, now: UInt64) -> (added: [String], removed: [String]) {
        let removed = entries.keys.filter { !names.contains($0) }.sorted()
        for n in removed { entries.removeValue(forKey: n) }
        let added = names.filter { entries[$0] == nil }.sorted()
        for n in added { entries[n] = Entry(due: now) }
        return (added, removed)
    }

    /// Names whose lookup is due at `now` and not already under way, marked as under way.
    public mutating func takeDue(now: UInt64) -> [String] {
        let due = entries.filter { !$0.value.inFlight && $0.value.nextRefreshMs <= now }.map(\.key).sorted()
        for n in due { entries[n]!.inFlight = true }
        return due
    }

    /// Every name not under way becomes due at `now` (the servers changed).
    public mutating func refreshAll(now: UInt64) {
        for n in entries.keys where !entries[n]!.inFlight { entries[n]!.nextRefreshMs = now }
    }

    /// The earliest moment a name not under way is due; nil when there is none.
    public var nextDeadline: UInt64? {
        entries.values.lazy.filter { !$0.inFlight }.map(\.nextRefreshMs).min()
    }

    /// Records the result of a lookup of `name`; nil when the name is no longer tracked.
    public mutating func record(_ name: String, _ result: DNSResult, now: UInt64) -> Outcome? {
        guard var e = entries[name] else { return nil }
        e.inFlight = false
        var out = Outcome()
        switch result {
        case .cancelled:
            // Asked again at once; neither an answer nor a failure.
            e.nextRefreshMs = now
            entries[name] = e
            return out
        case .records(let records) where DNSCache.preferred(records).isEmpty:
            fail(&e, "no address records", now: now, &out)
        case .failure(let message):
            fail(&e, message, now: now, &out)
        case .records(let records):
            let chosen = DNSCache.preferred(records)
            let addresses = Array(Set(chosen.map(\.address))).sorted()
            out.changed = Set(addresses) != Set(e.addresses)
            out.recovered = e.failures > 0
            e.addresses = addresses
            e.failures = 0
            e.lastError = nil
            let ttl = chosen.map { max($0.ttl, 0) }.min() ?? 0
            e.nextRefreshMs = now + (ttl > 0 ? max(UInt64(ttl) * 1_000, DNSCache.minRefreshMs)
                                             : max(UInt64(max(refreshRateMs, 0)), DNSCache.minRefreshMs))
        }
        e.settled = true
        entries[name] = e
        return out
    }

    private func fail(_ e: inout Entry, _ message: String, now: UInt64, _ out: inout Outcome) {
        e.failures += 1
        e.lastError = message
        out.startedFailing = e.failures == 1
        e.nextRefreshMs = now + DNSCache.retryDelayMs(failures: e.failures)
    }

    /// 1 s after the first failure, doubling, at most 30 s.
    public static func retryDelayMs(failures: Int) -> UInt64 {
        let shift = UInt64(min(max(failures - 1, 0), 16))
        return min(firstRetryMs << shift, maxRetryMs)
    }

    /// V4_PREFERRED: the A records when there are any, else the AAAA records.
    public static func preferred(_ records: [DNSRecord]) -> [DNSRecord] {
        let v4 = records.filter { !$0.isIPv6 }
        return v4.isEmpty ? records : v4
    }
}
