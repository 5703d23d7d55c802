import RemoraConfig

extension TrafficPolicy {
    /// The policy in force for a cluster, as Istio's `MergeSubsetTrafficPolicy` builds it:
    ///
    /// 1. the DestinationRule's policy for `port` (`forPort`: a port-level entry replaces it);
    /// 2. the subset's policy for `port`, resolved the same way, then over (1):
    ///    - if the subset had a port-level entry for `port`, all four sections come from it
    ///      (nil where it omits them: defaults, not the DestinationRule's);
    ///    - otherwise each of the four sections the subset sets replaces the DestinationRule's;
    ///    - tunnel, proxyProtocol and retryBudget set in (the resolved) subset policy replace
    ///      the DestinationRule's.
    static func merged(destination: TrafficPolicy?, subset: TrafficPolicy?, port: Int) -> TrafficPolicy? {
        let base = destination?.forPort(port).policy
        guard let (over, portLevel) = subset?.forPort(port) else { return base }
        guard var out = base else { return over }
        if portLevel || over.loadBalancer != nil { out.loadBalancer = over.loadBalancer }
        if portLevel || over.connectionPool != nil { out.connectionPool = over.connectionPool }
        if portLevel || over.outlierDetection != nil { out.outlierDetection = over.outlierDetection }
        if portLevel || over.tls != nil { out.tls = over.tls }
        if let v = over.tunnel { out.tunnel = v }
        if let v = over.proxyProtocol { out.proxyProtocol = v }
        if let v = over.retryBudget { out.retryBudget = v }
        return out
    }
}
