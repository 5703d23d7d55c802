import RemoraConfig
import Synchronization

/// DestinationRule `outlierDetection` as Istio translates it for Envoy.
public struct OutlierSettings: Sendable, Hashable {
    /// Consecutive 5xx (and, unless split, local-origin failures) before ejection; nil: off.
    public var consecutive5xx: Int?
    /// Consecutive 502/503/504 (and, unless split, local-origin failures); nil: off.
    public var consecutiveGatewayErrors: Int?
    /// Keep local-origin failures (connect failures, resets, timeouts) apart from responses.
    public var splitExternalLocalOriginErrors: Bool
    /// Consecutive local-origin failures before ejection, used only when split; nil: off.
    public var consecutiveLocalOriginFailures: Int?
    /// The sweep period: `tick(now:)` is expected this often; unejections happen on ticks.
    public var intervalMs: Int
    /// A host is ejected for `baseEjectionMs × k` (k = 1, 2, ... as it keeps being ejected).
    public var baseEjectionMs: Int
    /// Envoy's `max_ejection_time` (300 s): the cap of that product (never under the base).
    public var maxEjectionMs: Int
    /// No new ejection once this share of hosts is ejected (Envoy: one more is allowed while
    /// the share ejected is still under it, so one host can always be ejected when > 0).
    public var maxEjectionPercent: Int
    /// Panic threshold: below this share of healthy hosts, ejections are ignored (0: never).
    public var minHealthPercent: Int

    public init(consecutive5xx: Int? = 5, consecutiveGatewayErrors: Int? = nil, splitExternalLocalOriginErrors: Bool = false,
                consecutiveLocalOriginFailures: Int? = 5, intervalMs: Int = 10_000, baseEjectionMs: Int = 30_000,
                maxEjectionMs: Int = 300_000, maxEjectionPercent: Int = 10, minHealthPercent: Int = 0) {
        self.consecutive5xx = consecutive5xx.flatMap { $0 > 0 ? $0 : nil }
        self.consecutiveGatewayErrors = consecutiveGatewayErrors.flatMap { $0 > 0 ? $0 : nil }
        self.splitExternalLocalOriginErrors = splitExternalLocalOriginErrors
        self.consecutiveLocalOriginFailures = consecutiveLocalOriginFailures.flatMap { $0 > 0 ? $0 : nil }
        self.intervalMs = max(1, intervalMs)
        self.baseEjectionMs = max(1, baseEjectionMs)
        self.maxEjectionMs = max(0, maxEjectionMs)
        self.maxEjectionPercent = min(100, max(0, maxEjectionPercent))
        self.minHealthPercent = min(100, max(0, minHealthPercent))
    }

    /// Istio's translation (pilot `applyOutlierDetection`): Envoy defaults where a field is
    /// unset (consecutive 5xx: 5; gateway errors: off; local origin: 5 when split; interval
    /// 10 s; base ejection 30 s; max ejection 10 %); 0 turns the 5xx and gateway detectors
    /// off (and means "default" for `consecutiveLocalOriginFailures` and
    /// `maxEjectionPercent`, which Istio passes only when > 0); the deprecated
    /// `consecutiveErrors` counts gateway errors and turns the 5xx detector off unless those
    /// fields are given; the panic threshold is `minHealthPercent`, default 0 (never panic).
    public init(_ od: OutlierDetection) {
        var c5xx: Int? = od.consecutive5xxErrors ?? 5
        var gateway: Int? = od.consecutiveGatewayErrors
        if let legacy = od.consecutiveErrors, legacy > 0 {
            // Explicit new-style fields still win, as in Istio (they are applied after).
            if od.consecutiveGatewayErrors == nil { gateway = legacy }
            if od.consecutive5xxErrors == nil { c5xx = nil }
        }
        self.init(consecutive5xx: c5xx, consecutiveGatewayErrors: gateway,
                  splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors ?? false,
                  // Istio passes it only when > 0; otherwise Envoy's default, 5, applies.
                  consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures.flatMap { $0 > 0 ? $0 : nil } ?? 5,
                  intervalMs: od.interval.map(\.milliseconds) ?? 10_000,
                  baseEjectionMs: od.baseEjectionTime.map(\.milliseconds) ?? 30_000,
                  maxEjectionPercent: od.maxEjectionPercent.flatMap { $0 > 0 ? $0 : nil } ?? 10,
                  minHealthPercent: od.minHealthPercent ?? 0)
    }
}

/// Why a host was ejected (Envoy's ejection types).
public enum EjectionReason: String, Sendable, Hashable {
    case consecutive5xx = "consecutive_5xx"
    case consecutiveGatewayFailure = "consecutive_gateway_failure"
    case consecutiveLocalOriginFailure = "consecutive_local_origin_failure"
}

/// One host's outlier state, for `/clusters`.
public struct HostOutlierStatus: Sendable, Hashable {
    public var key: String
    public var ejected: Bool
    public var timesEjected: Int
    public var lastReason: EjectionReason?
    /// When the host may come back (checked on the next tick at or after it), if ejected.
    public var ejectedUntilMs: UInt64?
    public var consecutive5xx: Int
    public var consecutiveGatewayErrors: Int
    public var consecutiveLocalOriginFailures: Int
}

/// Envoy's outlier detector (consecutive 5xx, consecutive gateway failure, consecutive
/// local-origin failure) for one cluster, shared by all workers.
///
/// - Workers `report` every attempt's outcome: counters are per-host atomics (no lock);
///   only the report that reaches a threshold takes the detector's mutex to eject.
/// - Pickers read the ejected flags lock-free (`HostSet.isAvailable`).
/// - One thread calls `tick(now:)` every `settings.intervalMs`: hosts whose ejection time
///   has passed come back; a healthy host's ejection multiplier decays by one per interval.
/// - Time is a monotonic millisecond count passed in; nothing here reads a clock.
public final class OutlierDetector: Sendable {
    public let settings: OutlierSettings
    public let hosts: HostSet

    private struct HostState: Sendable {
        var timesEjected = 0
        /// Envoy's `eject_time_backoff`: the multiplier of the base ejection time.
        var backoff = 0
        var lastEjectionMs: UInt64 = 0
        var lastUnejectionMs: UInt64?
        var lastReason: EjectionReason?
    }

    private struct State: Sendable {
        var hosts: [HostState]
    }

    private let state: Mutex<State>
    private let enforced = Atomic<Int>(0)
    private let overflowed = Atomic<Int>(0)

    /// A detector over `hosts`. With `previous`, hosts whose key was there keep their state
    /// (ejection, counters, multiplier): use it when the endpoints change.
    public init(settings: OutlierSettings, hosts: HostSet, previous: OutlierDetector? = nil) {
        self.settings = settings
        self.hosts = hosts
        var states = [HostState](repeating: HostState(), count: hosts.count)
        if let previous {
            previous.state.withLock { old in
                for (i, h) in hosts.hosts.enumerated() {
                    guard let j = previous.hosts.index(ofKey: h.key) else { continue }
                    let o = previous.hosts.hosts[j]
                    states[i] = old.hosts[j]
                    h.consecutive5xx.store(o.consecutive5xx.load(ordering: .relaxed), ordering: .relaxed)
                    h.consecutiveGateway.store(o.consecutiveGateway.load(ordering: .relaxed), ordering: .relaxed)
                    h.consecutiveLocalOrigin.store(o.consecutiveLocalOrigin.load(ordering: .relaxed), ordering: .relaxed)
                    if o.isEjected {
                        h.ejectedFlag.store(true, ordering: .releasing)
                        hosts.ejectedCount.wrappingAdd(1, ordering: .relaxed)
                    }
                }
            }
        }
        state = Mutex(State(hosts: states))
        if let previous {
            enforced.store(previous.ejectionsEnforcedTotal, ordering: .relaxed)
            overflowed.store(previous.ejectionsOverflowTotal, ordering: .relaxed)
        }
        updatePanic()
    }

    // MARK: reports (any worker)

    /// Records the outcome of one attempt to host `endpoint` at monotonic time `now` (ms).
    /// Local-origin outcomes (connect failure, reset, refused stream, timeout) count as 503
    /// (504 for a timeout) unless `splitExternalLocalOriginErrors`, as in Envoy.
    public func report(endpoint: Int, outcome: AttemptOutcome, now: UInt64) {
        guard endpoint >= 0 && endpoint < hosts.count else { return }
        switch outcome {
        case .response(let status, _, _):
            putHTTPStatus(endpoint, status, now: now)
        case .perTryTimeout:
            if settings.splitExternalLocalOriginErrors { localOriginFailure(endpoint, now: now) } else { putHTTPStatus(endpoint, 504, now: now) }
        case .connectFailure, .reset, .resetBeforeRequest, .refusedStream:
            if settings.splitExternalLocalOriginErrors { localOriginFailure(endpoint, now: now) } else { putHTTPStatus(endpoint, 503, now: now) }
        }
    }

    /// A connection to (or a stream on) host `endpoint` was obtained: Envoy's
    /// `LocalOriginConnectSuccess`, which clears the consecutive local-origin failures when
    /// errors are split (and means nothing otherwise).
    public func reportConnectSuccess(endpoint: Int) {
        guard settings.splitExternalLocalOriginErrors, endpoint >= 0 && endpoint < hosts.count else { return }
        let h = hosts.hosts[endpoint]
        if h.consecutiveLocalOrigin.load(ordering: .relaxed) != 0 { h.consecutiveLocalOrigin.store(0, ordering: .relaxed) }
    }

    private func putHTTPStatus(_ i: Int, _ status: Int, now: UInt64) {
        let h = hosts.hosts[i]
        guard (500...599).contains(status) else {
            // A success clears both counters (written only when set: no cache-line ping-pong).
            if h.consecutive5xx.load(ordering: .relaxed) != 0 { h.consecutive5xx.store(0, ordering: .relaxed) }
            if h.consecutiveGateway.load(ordering: .relaxed) != 0 { h.consecutiveGateway.store(0, ordering: .relaxed) }
            return
        }
        if (502...504).contains(status) {
            let n = h.consecutiveGateway.wrappingAdd(1, ordering: .relaxed).newValue
            if let limit = settings.consecutiveGatewayErrors, n == limit {
                onThreshold(i, .consecutiveGatewayFailure, now: now)
            }
        } else if h.consecutiveGateway.load(ordering: .relaxed) != 0 {
            h.consecutiveGateway.store(0, ordering: .relaxed)
        }
        let n = h.consecutive5xx.wrappingAdd(1, ordering: .relaxed).newValue
        if let limit = settings.consecutive5xx, n == limit {
            onThreshold(i, .consecutive5xx, now: now)
        }
    }

    private func localOriginFailure(_ i: Int, now: UInt64) {
        let n = hosts.hosts[i].consecutiveLocalOrigin.wrappingAdd(1, ordering: .relaxed).newValue
        if let limit = settings.consecutiveLocalOriginFailures, n == limit {
            onThreshold(i, .consecutiveLocalOriginFailure, now: now)
        }
    }

    /// A counter reached its threshold: eject (if allowed) and clear that counter, so a
    /// further run of the same length can trigger again (Envoy's `onConsecutiveErrorWorker`).
    private func onThreshold(_ i: Int, _ reason: EjectionReason, now: UInt64) {
        let h = hosts.hosts[i]
        state.withLock { st in
            switch reason {
            case .consecutive5xx: h.consecutive5xx.store(0, ordering: .relaxed)
            case .consecutiveGatewayFailure: h.consecutiveGateway.store(0, ordering: .relaxed)
            case .consecutiveLocalOriginFailure: h.consecutiveLocalOrigin.store(0, ordering: .relaxed)
            }
            if h.ejectedFlag.load(ordering: .relaxed) { return }
            let active = hosts.ejectedCount.load(ordering: .relaxed)
            // Envoy: eject while the share already ejected is under the maximum.
            guard Double(100 * active) / Double(hosts.count) < Double(settings.maxEjectionPercent) else {
                overflowed.wrappingAdd(1, ordering: .relaxed)
                return
            }
            var hs = st.hosts[i]
            hs.timesEjected += 1
            let base = settings.baseEjectionMs
            if hs.backoff * base < max(base, settings.maxEjectionMs) { hs.backoff += 1 }
            hs.lastEjectionMs = now
            hs.lastReason = reason
            st.hosts[i] = hs
            h.ejectedFlag.store(true, ordering: .releasing)
            hosts.ejectedCount.wrappingAdd(1, ordering: .relaxed)
            enforced.wrappingAdd(1, ordering: .relaxed)
            updatePanic()
        }
    }

    // MARK: the sweep (one thread)

    /// The interval sweep: unejects hosts whose time is up (`now - lastEjection >=
    /// min(base × multiplier, max(base, maxEjection))`), clearing their counters, and decays
    /// the multiplier of hosts healthy for a whole interval since they came back.
    public func tick(now: UInt64) {
        state.withLock { st in
            let base = settings.baseEjectionMs
            let cap = max(base, settings.maxEjectionMs)
            for i in st.hosts.indices {
                let h = hosts.hosts[i]
                var hs = st.hosts[i]
                if !h.ejectedFlag.load(ordering: .relaxed) {
                    if let back = hs.lastUnejectionMs, now >= back, now - back >= UInt64(settings.intervalMs), hs.backoff > 0 {
                        hs.backoff -= 1
                        st.hosts[i] = hs
                    }
                    continue
                }
                let duration = UInt64(min(base * max(1, hs.backoff), cap))
                if now >= hs.lastEjectionMs && now - hs.lastEjectionMs >= duration {
                    h.consecutive5xx.store(0, ordering: .relaxed)
                    h.consecutiveGateway.store(0, ordering: .relaxed)
                    h.consecutiveLocalOrigin.store(0, ordering: .relaxed)
                    h.ejectedFlag.store(false, ordering: .releasing)
                    hosts.ejectedCount.wrappingSubtract(1, ordering: .relaxed)
                    hs.lastUnejectionMs = now
                    st.hosts[i] = hs
                }
            }
            updatePanic()
        }
    }

    // MARK: reading

    public func isEjected(endpoint: Int) -> Bool { hosts.isEjected(endpoint) }

    /// `outlier_detection_ejections_active`
    public var activeEjections: Int { hosts.ejectedHosts }
    /// `outlier_detection_ejections_enforced_total`
    public var ejectionsEnforcedTotal: Int { enforced.load(ordering: .relaxed) }
    /// `outlier_detection_ejections_overflow`: ejections refused by `maxEjectionPercent`.
    public var ejectionsOverflowTotal: Int { overflowed.load(ordering: .relaxed) }
    /// Panic mode: healthy share under `minHealthPercent`; the load balancers ignore ejections.
    public var inPanic: Bool { hosts.inPanic }

    /// Per-host state for the admin API.
    public func status() -> [HostOutlierStatus] {
        state.withLock { st in
            hosts.hosts.enumerated().map { i, h in
                let hs = st.hosts[i]
                let ejected = h.isEjected
                let until = ejected ? hs.lastEjectionMs + UInt64(min(settings.baseEjectionMs * max(1, hs.backoff),
                                                                    max(settings.baseEjectionMs, settings.maxEjectionMs))) : nil
                return HostOutlierStatus(key: h.key, ejected: ejected, timesEjected: hs.timesEjected, lastReason: hs.lastReason,
                                         ejectedUntilMs: until, consecutive5xx: h.consecutive5xx.load(ordering: .relaxed),
                                         consecutiveGatewayErrors: h.consecutiveGateway.load(ordering: .relaxed),
                                         consecutiveLocalOriginFailures: h.consecutiveLocalOrigin.load(ordering: .relaxed))
            }
        }
    }

    /// Recomputes panic mode (Envoy: healthy percent < panic threshold).
    private func updatePanic() {
        let n = hosts.count
        guard n > 0, settings.minHealthPercent > 0 else {
            hosts.panicFlag.store(false, ordering: .relaxed)
            return
        }
        let healthy = n - hosts.ejectedCount.load(ordering: .relaxed)
        hosts.panicFlag.store(100 * healthy < settings.minHealthPercent * n, ordering: .relaxed)
    }
}
