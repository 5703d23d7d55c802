/// A VirtualService rule's `retries` (Istio `HTTPRetry`). RemoraResilience compiles it
/// (`RetryPolicy`); the defaults it applies for absent fields are documented there.
public struct HTTPRetry: Sendable, Hashable {
    public var attempts: Int?
    public var perTryTimeout: ConfigDuration?
    /// Comma-separated Envoy retry conditions and/or status codes (`RetryOn`), validated on decode.
    public var retryOn: String?
    public var retryRemoteLocalities: Bool?
    /// Whether a retry avoids the hosts already tried (Envoy's `previous_hosts` predicate).
    /// nil: Istio's default, on unless the destination uses a consistent-hash load balancer.
    public var retryIgnorePreviousHosts: Bool?
    /// Envoy's `retry_back_off.base_interval` (nil: 25 ms); the cap is 10 × this.
    public var backoff: ConfigDuration?

    static func decode(_ r: ObjectReader) -> HTTPRetry {
        // Istio's ValidateDuration: at least 1ms.
        let oneMs = ConfigDuration(milliseconds: 1)
        let retryOn = r.string("retryOn")
        for message in RetryOn.errors(retryOn ?? "") { r.ctx.error(r.p("retryOn"), message) }
        return HTTPRetry(attempts: r.int("attempts", min: 0, max: Int(Int32.max)), perTryTimeout: r.duration("perTryTimeout", min: oneMs),
                         retryOn: retryOn, retryRemoteLocalities: r.bool("retryRemoteLocalities"),
                         retryIgnorePreviousHosts: r.bool("retryIgnorePreviousHosts"), backoff: r.duration("backoff", min: oneMs))
    }
}
