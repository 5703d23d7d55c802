/// One worker's numbers: the Istio request series and the per-cluster upstream stats.
///
/// Mutated only by its worker thread, and `snapshot()` runs on that same thread (the
/// lead posts it to the worker's loop when scraping), so there are no locks or atomics.
/// `record` allocates only the first time a label combination is seen: series live in one
/// flat array indexed through a dictionary keyed by packed label ids.
public final class WorkerStats {
    private var index: [SeriesKey: Int] = [:]
    private var keys: [SeriesKey] = []
    private var slots: [UInt64] = []
    private var durationSums: [Double] = []

    private var clusterCounters: [UInt64] = []
    private var clusterGauges: [Int64] = []
    /// Clusters this worker has counted or set anything for (ids are shared with
    /// service names in the NameTable, so "has a slot" does not mean "is a cluster").
    private var clusterSeen: [Bool] = []

    public var accessLogDropped: UInt64 = 0

    public init() {
        index.reserveCapacity(64)
        keys.reserveCapacity(64)
        slots.reserveCapacity(64 * SeriesLayout.stride)
        durationSums.reserveCapacity(64)
    }

    /// Counts one finished request in istio_requests_total and the three histograms.
    public func record(_ s: RequestSample) {
        let key = SeriesKey(s)
        let series: Int
        if let i = index[key] {
            series = i
        } else {
            series = keys.count
            index[key] = series
            keys.append(key)
            slots.append(contentsOf: repeatElement(0, count: SeriesLayout.stride))
            durationSums.append(0)
        }
        // NaN and negative durations would poison the sum; they count as 0.
        let ms = s.durationMs >= 0 ? s.durationMs : 0
        let reqBytes = max(s.requestBytes, 0)
        let respBytes = max(s.responseBytes, 0)
        let base = series &* SeriesLayout.stride
        slots.withUnsafeMutableBufferPointer { p in
            p[base + SeriesLayout.requests] &+= 1
            p[base + SeriesLayout.durationBuckets + SeriesLayout.durationBucket(ms)] &+= 1
            p[base + SeriesLayout.requestBytesBuckets + SeriesLayout.byteBucket(reqBytes)] &+= 1
            p[base + SeriesLayout.responseBytesBuckets + SeriesLayout.byteBucket(respBytes)] &+= 1
            p[base + SeriesLayout.requestBytesSum] &+= UInt64(reqBytes)
            p[base + SeriesLayout.responseBytesSum] &+= UInt64(respBytes)
        }
        durationSums[series] += ms
    }

    /// Adds `n` to a cluster counter; a negative cluster id (no cluster) is ignored.
    /// `by: 0` makes a cluster appear with zeros before it sees traffic.
    public func count(_ c: ClusterCounter, cluster: Int32, by n: UInt64 = 1) {
        guard cluster >= 0 else { return }
        let i = Int(cluster)
        if i >= clusterSeen.count { growClusters(to: i + 1) }
        clusterSeen[i] = true
        clusterCounters[i &* ClusterCounter.count &+ c.rawValue] &+= n
    }

    /// Sets this worker's value of a cluster gauge (the scrape sums workers).
    public func set(_ g: ClusterGauge, cluster: Int32, to v: Int64) {
        guard cluster >= 0 else { return }
        let i = Int(cluster)
        if i >= clusterSeen.count { growClusters(to: i + 1) }
        clusterSeen[i] = true
        clusterGauges[i &* ClusterGauge.count &+ g.rawValue] = v
    }

    /// Once per new cluster id, off the steady-state path; doubles to keep it rare.
    private func growClusters(to n: Int) {
        let newCount = max(n, clusterSeen.count * 2, 16)
        let extra = newCount - clusterSeen.count
        clusterSeen.append(contentsOf: repeatElement(false, count: extra))
        clusterCounters.append(contentsOf: repeatElement(0, count: extra * ClusterCounter.count))
        clusterGauges.append(contentsOf: repeatElement(0, count: extra * ClusterGauge.count))
    }

    /// A value copy. The arrays are copied here, eagerly, so that the next `record` does
    /// not pay for copy-on-write on the request path.
    public func snapshot() -> StatsSnapshot {
        StatsSnapshot(keys: Array(unsharedCopyOf: keys),
                      slots: Array(unsharedCopyOf: slots),
                      durationSums: Array(unsharedCopyOf: durationSums),
                      clusterCounters: Array(unsharedCopyOf: clusterCounters),
                      clusterGauges: Array(unsharedCopyOf: clusterGauges),
                      clusterSeen: Array(unsharedCopyOf: clusterSeen),
                      accessLogDropped: accessLogDropped)
    }

    /// Distinct label combinations seen (for tests and diagnostics).
    var seriesCount: Int { keys.count }
    /// Storage capacities: constant once every label combination has been seen.
    var storageCapacities: [Int] { [index.capacity, keys.capacity, slots.capacity, durationSums.capacity] }
}

extension Array {
    /// A copy with its own storage (plain assignment would share it until the next write).
    init(unsharedCopyOf other: [Element]) {
        self = other.withUnsafeBufferPointer { Array($0) }
    }
}
