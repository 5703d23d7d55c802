import RemoraCore
import RemoraIO

/// What one name looks like now, handed to other threads.
public struct DNSStatus: Sendable, Equatable {
    /// The last good answer (sorted); empty until one arrives.
    public var addresses: [String]
    /// A lookup has finished since the name was added (answered or failed).
    public var settled: Bool
    /// Why the latest lookups failed (nil after a good answer).
    public var lastError: String?
    /// When the next lookup is due (monotonic ms; `MonotonicClock`).
    public var nextRefreshMs: UInt64

    init(_ e: DNSCache.Entry) {
        addresses = e.addresses
        settled = e.settled
        lastError = e.lastError
        nextRefreshMs = e.nextRefreshMs
    }
}

/// The resolver's options: the servers (empty: resolv.conf's) and the refresh rate of answers
/// without a TTL.
public struct DNSOptions: Sendable, Equatable {
    public var servers: [DNSServer]
    public var refreshRateMs: Int

    public init(servers: [DNSServer] = [], refreshRateMs: Int = DNSCache.defaultRefreshRateMs) {
        self.servers = servers
        self.refreshRateMs = refreshRateMs
    }
}

/// Keeps the names the clusters use resolved, on one event loop (never a worker's): the
/// `DNSCache` decides when each name is looked up, a `DNSResolving` looks it up, `DNSWarmups`
/// answers those waiting for new names. Every call and callback is on `loop`.
public final class DNSService {
    private let loop: EventLoop
    private let makeResolver: ([DNSServer]) throws -> DNSResolving
    private let clock: () -> UInt64
    private var resolver: DNSResolving?
    private var options: DNSOptions?
    private var cache = DNSCache()
    private var warmups = DNSWarmups()
    private var waiting: [Int: ([String: DNSStatus]) -> Void] = [:]
    private var nextWaiter = 0
    private lazy var timer = LoopTimer { [unowned self] in self.tick() }

    /// Every recorded result, with the name's state after it (nil: the name was dropped).
    public var onStatus: ((String, DNSStatus?) -> Void)?

    public init(loop: EventLoop, clock: @escaping () -> UInt64 = MonotonicClock.nowMilliseconds,
                makeResolver: @escaping ([DNSServer]) throws -> DNSResolving) {
        self.loop = loop
        self.clock = clock
        self.makeResolver = makeResolver
    }

    /// Tracks exactly `names` from now on (new ones are looked up at once, others dropped).
    /// With `warmTimeoutMs`, `ready` gets the state of every name once each name that has
    /// not been settled yet is (or at the timeout); without, at once.
    public func update(names: Set<String>, options: DNSOptions, warmTimeoutMs: Int?,
                       ready: (([String: DNSStatus]) -> Void)? = nil) {
        let now = clock()
        configure(options, now: now)
        let (_, removed) = cache.setNames(names, now: now)
        for n in removed {
            onStatus?(n, nil)
            for id in warmups.settled(n) { finish(id) }
        }
        if let ready {
            let unsettled = Set(names.filter { cache[$0]?.settled != true })
            let id = nextWaiter
            nextWaiter += 1
            waiting[id] = ready
            if !warmups.add(id: id, names: unsettled, deadline: now + UInt64(max(warmTimeoutMs ?? 0, 0))) {
                finish(id)
            }
        }
        tick()
    }

    /// The state of every tracked name.
    public var statuses: [String: DNSStatus] { cache.entries.mapValues(DNSStatus.init) }

    public func shutdown() {
        loop.cancel(timer)
        let old = resolver
        resolver = nil
        old?.close()
    }

    /// A new resolver when the servers change (lookups under way are cancelled and asked
    /// again on the new one); every name is looked up again.
    private func configure(_ o: DNSOptions, now: UInt64) {
        cache.refreshRateMs = o.refreshRateMs
        guard o.servers != options?.servers || resolver == nil else { options = o; return }
        let old = resolver
        options = o
        resolver = nil   // a cancellation delivered by close() must not go back to the old one
        old?.close()
        do {
            resolver = try makeResolver(o.servers)
        } catch {
            Log.error("dns: \(error); using the servers of /etc/resolv.conf")
            resolver = try? makeResolver([])
        }
        if old != nil {
            Log.info("dns: servers changed to \(o.servers.isEmpty ? "those of /etc/resolv.conf" : o.servers.map(\.description).joined(separator: ", "))")
            cache.refreshAll(now: now)
        }
    }

    /// Expires warm-ups, starts the lookups that are due, arms the timer for the next. (Internal: the tests call it with a fake clock.)
    func tick() {
        let now = clock()
        for (id, unanswered) in warmups.expire(now: now) {
            Log.warning("dns: no answer yet for \(unanswered.joined(separator: ", ")) (still resolving); their clusters have no endpoints until one arrives")
            finish(id)
        }
        if let resolver {
            for name in cache.takeDue(now: now) {
                resolver.resolve(name) { [weak self] result in self?.record(name, result) }
            }
        }
        let next = [cache.nextDeadline, warmups.nextDeadline].compactMap { $0 }.min()
        if let next {
            loop.arm(timer, afterMs: Int(next > now ? next - now : 0))
        } else {
            loop.cancel(timer)
        }
    }

    private func record(_ name: String, _ result: DNSResult) {
        let now = clock()
        guard let outcome = cache.record(name, result, now: now), let e = cache[name] else { return tick() }
        if outcome.startedFailing {
            let kept = e.addresses.isEmpty ? "no address yet" : "keeping \(e.addresses.joined(separator: ", "))"
            Log.warning("dns: \(name): \(e.lastError ?? "failed") (\(kept); retrying)")
        } else if outcome.recovered {
            Log.info("dns: \(name) resolves again: \(e.addresses.joined(separator: ", "))")
        } else if outcome.changed {
            Log.info("dns: \(name) → \(e.addresses.joined(separator: ", "))")
        }
        onStatus?(name, DNSStatus(e))
        if e.settled { for id in warmups.settled(name) { finish(id) } }
        tick()
    }

    private func finish(_ id: Int) {
        guard let ready = waiting.removeValue(forKey: id) else { return }
        ready(statuses)
    }
}
