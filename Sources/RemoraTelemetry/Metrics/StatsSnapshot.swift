/// A value copy of one or more workers' stats; `merge` adds another worker's in.
/// Built and merged at scrape time only, so it favours simplicity over speed.
public struct StatsSnapshot: Sendable {
    var keys: [SeriesKey]
    var slots: [UInt64]
    var durationSums: [Double]
    var clusterCounters: [UInt64]
    var clusterGauges: [Int64]
    var clusterSeen: [Bool]
    public var accessLogDropped: UInt64

    /// An empty snapshot, the starting point for merging workers.
    public init() {
        self.init(keys: [], slots: [], durationSums: [], clusterCounters: [], clusterGauges: [],
                  clusterSeen: [], accessLogDropped: 0)
    }

    init(keys: [SeriesKey], slots: [UInt64], durationSums: [Double], clusterCounters: [UInt64],
         clusterGauges: [Int64], clusterSeen: [Bool], accessLogDropped: UInt64) {
        self.keys = keys
        self.slots = slots
        self.durationSums = durationSums
        self.clusterCounters = clusterCounters
        self.clusterGauges = clusterGauges
        self.clusterSeen = clusterSeen
        self.accessLogDropped = accessLogDropped
    }

    /// Adds `other` in: series with the same labels are summed, counters summed, gauges
    /// summed (each worker reports its own share).
    public mutating func merge(_ other: StatsSnapshot) {
        var position = [SeriesKey: Int](minimumCapacity: keys.count + other.keys.count)
        for (i, k) in keys.enumerated() { position[k] = i }
        let stride = SeriesLayout.stride
        for (j, k) in other.keys.enumerated() {
            let i: Int
            if let found = position[k] {
                i = found
            } else {
                i = keys.count
                position[k] = i
                keys.append(k)
                slots.append(contentsOf: repeatElement(0, count: stride))
                durationSums.append(0)
            }
            for f in 0..<stride { slots[i * stride + f] &+= other.slots[j * stride + f] }
            durationSums[i] += other.durationSums[j]
        }

        let n = other.clusterSeen.count
        if n > clusterSeen.count {
            let extra = n - clusterSeen.count
            clusterSeen.append(contentsOf: repeatElement(false, count: extra))
            clusterCounters.append(contentsOf: repeatElement(0, count: extra * ClusterCounter.count))
            clusterGauges.append(contentsOf: repeatElement(0, count: extra * ClusterGauge.count))
        }
        for c in 0..<n where other.clusterSeen[c] {
            clusterSeen[c] = true
            for f in 0..<ClusterCounter.count {
                clusterCounters[c * ClusterCounter.count + f] &+= other.clusterCounters[c * ClusterCounter.count + f]
            }
            for f in 0..<ClusterGauge.count {
                clusterGauges[c * ClusterGauge.count + f] &+= other.clusterGauges[c * ClusterGauge.count + f]
            }
        }
        accessLogDropped &+= other.accessLogDropped
    }

    // MARK: reading (admin pages, tests)

    /// Requests counted across every series.
    public var totalRequests: UInt64 {
        var total: UInt64 = 0
        for i in keys.indices { total &+= slots[i * SeriesLayout.stride + SeriesLayout.requests] }
        return total
    }

    /// Cluster ids that have any counter or gauge, ascending.
    public var clusters: [Int32] {
        clusterSeen.indices.filter { clusterSeen[$0] }.map { Int32($0) }
    }

    public func counter(_ c: ClusterCounter, cluster: Int32) -> UInt64 {
        guard cluster >= 0, Int(cluster) < clusterSeen.count else { return 0 }
        return clusterCounters[Int(cluster) * ClusterCounter.count + c.rawValue]
    }

    public func gauge(_ g: ClusterGauge, cluster: Int32) -> Int64 {
        guard cluster >= 0, Int(cluster) < clusterSeen.count else { return 0 }
        return clusterGauges[Int(cluster) * ClusterGauge.count + g.rawValue]
    }
}
