import RemoraConfig

/// What one upstream attempt ended with, as far as retrying and outlier detection care.
/// Everything is known before a byte of the response is sent to the client: the retry
/// decision is taken on the response head (or on the failure), never after.
public enum AttemptOutcome: Sendable, Hashable {
    /// The connection could not be made (refused, connect timeout, TLS handshake failure).
    /// The request never left the proxy.
    case connectFailure
    /// The connection was reset or closed before a response head arrived (the request had
    /// started). Envoy's `UC`.
    case reset
    /// Like `reset`, but the request head had not been written yet (e.g. a reused pooled
    /// connection found closed when writing). Also matches `reset-before-request`.
    case resetBeforeRequest
    /// HTTP/2 REFUSED_STREAM, or a GOAWAY whose last stream id is below this stream's: the
    /// server did not process the request.
    case refusedStream
    /// The route's `perTryTimeout` fired before a response head arrived.
    case perTryTimeout
    /// A response head arrived. `grpcStatus` is the `grpc-status` of the *headers* (a
    /// trailers-only gRPC response); a status in trailers that follow a body is never seen
    /// here (by then the response is streaming). `rateLimited`: the head carries
    /// `x-envoy-ratelimited`.
    case response(status: Int, grpcStatus: Int? = nil, rateLimited: Bool = false)

    /// A failure the proxy saw locally (Envoy's local-origin errors), as opposed to a status
    /// the upstream chose.
    public var isLocalOrigin: Bool {
        if case .response = self { return false }
        return true
    }
}

/// Envoy's `retry_on` conditions (`x-envoy-retry-on` and `x-envoy-retry-grpc-on` tokens).
public struct RetryConditions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Any 5xx response, and any failure without a response (connect failure, reset,
    /// refused stream, per-try timeout).
    public static let fiveXX = RetryConditions(rawValue: 1 << 0)
    /// 502, 503, 504, and any failure without a response.
    public static let gatewayError = RetryConditions(rawValue: 1 << 1)
    /// Any failure without a response (connect failure, reset, refused stream, per-try timeout).
    public static let reset = RetryConditions(rawValue: 1 << 2)
    /// A failure before the request head was written upstream (connect failure, reset before request).
    public static let resetBeforeRequest = RetryConditions(rawValue: 1 << 3)
    public static let connectFailure = RetryConditions(rawValue: 1 << 4)
    /// 409 Conflict.
    public static let retriable4xx = RetryConditions(rawValue: 1 << 5)
    public static let refusedStream = RetryConditions(rawValue: 1 << 6)
    /// The statuses in `RetryPolicy.retriableStatusCodes`.
    public static let retriableStatusCodes = RetryConditions(rawValue: 1 << 7)
    /// Accepted for compatibility; Istio has no way to name the headers, so it never matches.
    public static let retriableHeaders = RetryConditions(rawValue: 1 << 8)
    /// A response carrying `x-envoy-ratelimited`.
    public static let envoyRateLimited = RetryConditions(rawValue: 1 << 9)
    /// Accepted for compatibility (no HTTP/3 upstreams); never matches.
    public static let http3PostConnectFailure = RetryConditions(rawValue: 1 << 10)
    /// gRPC status 1 in the response headers.
    public static let grpcCancelled = RetryConditions(rawValue: 1 << 11)
    /// gRPC status 4.
    public static let grpcDeadlineExceeded = RetryConditions(rawValue: 1 << 12)
    /// gRPC status 13.
    public static let grpcInternal = RetryConditions(rawValue: 1 << 13)
    /// gRPC status 8.
    public static let grpcResourceExhausted = RetryConditions(rawValue: 1 << 14)
    /// gRPC status 14.
    public static let grpcUnavailable = RetryConditions(rawValue: 1 << 15)

    /// Each `retryOn` name RemoraConfig accepts (`RetryOn.conditionNames`, in its order) with
    /// its condition. A unit test checks that every name has one.
    public static let tokens: [(String, RetryConditions)] = RetryOn.conditionNames.compactMap { name in named(name).map { (name, $0) } }

    private static func named(_ name: String) -> RetryConditions? {
        switch name {
        case "5xx": return .fiveXX
        case "gateway-error": return .gatewayError
        case "reset": return .reset
        case "reset-before-request": return .resetBeforeRequest
        case "connect-failure": return .connectFailure
        case "retriable-4xx": return .retriable4xx
        case "refused-stream": return .refusedStream
        case "retriable-status-codes": return .retriableStatusCodes
        case "retriable-headers": return .retriableHeaders
        case "envoy-ratelimited": return .envoyRateLimited
        case "http3-post-connect-failure": return .http3PostConnectFailure
        case "cancelled": return .grpcCancelled
        case "deadline-exceeded": return .grpcDeadlineExceeded
        case "internal": return .grpcInternal
        case "resource-exhausted": return .grpcResourceExhausted
        case "unavailable": return .grpcUnavailable
        default: return nil
        }
    }

    public static func token(_ name: String) -> RetryConditions? {
        for (t, c) in tokens where t == name { return c }
        return nil
    }

    /// The tokens of this set, comma-separated in `tokens` order (for explain/admin output).
    public var tokenList: String {
        RetryConditions.tokens.filter { contains($0.1) }.map(\.0).joined(separator: ",")
    }
}

/// A compiled VirtualService `retries` block, with Istio's translation to Envoy applied:
///
/// - `retries` absent: Istio's default policy, 2 retries on
///   `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with
///   retriable status 503, avoiding previously tried hosts (not with consistent hashing).
/// - `attempts` 0 (or absent: the proto default is 0): retries disabled, and the whole policy,
///   `perTryTimeout` included, is dropped (Istio returns no Envoy retry policy).
/// - `retryOn`: comma-separated tokens and HTTP status codes; any status code turns on
///   `retriable-status-codes`. Parsed once here (RemoraConfig has rejected unknown tokens).
/// - `retryIgnorePreviousHosts`: when written it decides the previous-hosts predicate; absent,
///   Istio's default (on, off with a consistent-hash load balancer).
/// - Backoff: Envoy's fully jittered exponential backoff, base `backoff` (25 ms when absent),
///   cap 10 × base (Envoy's default `max_interval`).
public struct RetryPolicy: Sendable, Hashable {
    /// Retries allowed after the first attempt (Istio `attempts`).
    public var numRetries: Int
    public var conditions: RetryConditions
    /// Statuses retried under `retriable-status-codes` (linear scan: it holds one or two).
    public var retriableStatusCodes: [Int]
    /// Istio `perTryTimeout` in milliseconds; nil: none (the route `timeout` bounds all attempts).
    public var perTryTimeoutMs: Int?
    /// Envoy's `previous_hosts` retry predicate: a retry prefers a host not tried yet.
    public var ignorePreviousHosts: Bool
    /// Envoy `host_selection_retry_max_attempts` (Istio sets 5): how many picks the load
    /// balancer may make looking for a host not tried yet before it takes the last pick.
    public var hostSelectionMaxAttempts: Int
    public var backoffBaseMs: Int
    public var backoffMaxMs: Int

    public init(numRetries: Int, conditions: RetryConditions, retriableStatusCodes: [Int] = [], perTryTimeoutMs: Int? = nil,
                ignorePreviousHosts: Bool = true, hostSelectionMaxAttempts: Int = 5, backoffBaseMs: Int = 25, backoffMaxMs: Int? = nil) {
        self.numRetries = max(0, numRetries)
        self.conditions = conditions
        self.retriableStatusCodes = retriableStatusCodes
        self.perTryTimeoutMs = perTryTimeoutMs.flatMap { $0 > 0 ? $0 : nil }
        self.ignorePreviousHosts = ignorePreviousHosts
        self.hostSelectionMaxAttempts = max(1, hostSelectionMaxAttempts)
        self.backoffBaseMs = max(1, backoffBaseMs)
        self.backoffMaxMs = max(self.backoffBaseMs, backoffMaxMs ?? self.backoffBaseMs * 10)
    }

    /// No retries at all (and no per-try timeout).
    public static let disabled = RetryPolicy(numRetries: 0, conditions: [], ignorePreviousHosts: false)

    /// The conditions of Istio's default policy.
    public static let istioDefaultConditions: RetryConditions = [.connectFailure, .refusedStream, .grpcUnavailable, .grpcCancelled, .retriableStatusCodes]

    /// Istio's policy for a route without `retries`. With a consistent-hash load balancer,
    /// Istio leaves out the previous-hosts predicate so a retry stays on the hashed host.
    public static func istioDefault(consistentHash: Bool = false) -> RetryPolicy {
        RetryPolicy(numRetries: 2, conditions: istioDefaultConditions, retriableStatusCodes: [503],
                    ignorePreviousHosts: !consistentHash)
    }

    /// Compiles a route's `retries` as Istio does. `consistentHash`: the destination's load
    /// balancer hashes, so the previous-hosts predicate is off unless the route turns it on.
    public init(_ retry: HTTPRetry?, consistentHash: Bool = false) {
        guard let retry else {
            self = .istioDefault(consistentHash: consistentHash)
            return
        }
        let attempts = retry.attempts ?? 0
        guard attempts > 0 else {
            self = .disabled
            return
        }
        var conditions = RetryPolicy.istioDefaultConditions
        var codes = [503]
        if let text = retry.retryOn, !text.isEmpty {
            let parsed = RetryPolicy.parseRetryOn(text)
            conditions = parsed.conditions
            codes = parsed.statusCodes
            if !codes.isEmpty { conditions.insert(.retriableStatusCodes) }
        }
        self.init(numRetries: attempts, conditions: conditions, retriableStatusCodes: codes,
                  perTryTimeoutMs: retry.perTryTimeout.map(\.milliseconds),
                  ignorePreviousHosts: retry.retryIgnorePreviousHosts ?? !consistentHash,
                  backoffBaseMs: retry.backoff.map(\.milliseconds) ?? 25)
    }

    public var isEnabled: Bool { numRetries > 0 }

    /// Parses an Istio `retryOn` value (`RetryOn.tokens`: comma-separated, blanks ignored).
    /// Tokens that validation rejects are skipped.
    public static func parseRetryOn(_ text: String) -> (conditions: RetryConditions, statusCodes: [Int]) {
        var conditions: RetryConditions = []
        var codes: [Int] = []
        for token in RetryOn.tokens(text) {
            switch token {
            case .condition(let name): if let c = RetryConditions.token(name) { conditions.insert(c) }
            case .statusCode(let n): if !codes.contains(n) { codes.append(n) }
            case .invalid: break
            }
        }
        return (conditions, codes)
    }

    /// Whether `outcome` is one this policy retries (ignoring how many retries are left).
    /// Plain bit tests: no set literals on the request path.
    public func matches(_ outcome: AttemptOutcome) -> Bool {
        let c = conditions.rawValue
        let anyReset = RetryConditions.fiveXX.rawValue | RetryConditions.gatewayError.rawValue | RetryConditions.reset.rawValue
        switch outcome {
        case .connectFailure:
            return c & (anyReset | RetryConditions.connectFailure.rawValue | RetryConditions.resetBeforeRequest.rawValue) != 0
        case .resetBeforeRequest:
            return c & (anyReset | RetryConditions.resetBeforeRequest.rawValue) != 0
        case .reset:
            return c & anyReset != 0
        case .refusedStream:
            return c & (anyReset | RetryConditions.refusedStream.rawValue) != 0
        case .perTryTimeout:
            // Envoy resets the attempt locally and asks the reset rules (a local reset is
            // neither a connect failure nor a refused stream).
            return c & anyReset != 0
        case .response(let status, let grpcStatus, let rateLimited):
            // A response from an upstream Envoy's rate limiter is retried only under envoy-ratelimited.
            if rateLimited { return (c & RetryConditions.envoyRateLimited.rawValue != 0) }
            if (c & RetryConditions.fiveXX.rawValue != 0) && status >= 500 && status <= 599 { return true }
            if (c & RetryConditions.gatewayError.rawValue != 0) && status >= 502 && status <= 504 { return true }
            if (c & RetryConditions.retriable4xx.rawValue != 0) && status == 409 { return true }
            if (c & RetryConditions.retriableStatusCodes.rawValue != 0) {
                let codes = retriableStatusCodes
                var i = 0
                while i < codes.count {
                    if codes[i] == status { return true }
                    i += 1
                }
            }
            guard let g = grpcStatus else { return false }
            switch g {
            case 1: return (c & RetryConditions.grpcCancelled.rawValue != 0)
            case 4: return (c & RetryConditions.grpcDeadlineExceeded.rawValue != 0)
            case 8: return (c & RetryConditions.grpcResourceExhausted.rawValue != 0)
            case 13: return (c & RetryConditions.grpcInternal.rawValue != 0)
            case 14: return (c & RetryConditions.grpcUnavailable.rawValue != 0)
            default: return false
            }
        }
    }

    /// Whether to retry after attempt number `attempt` (1 = the original request) ended with
    /// `outcome`: the outcome matches and a retry is left (`attempt <= numRetries`).
    /// Budget and circuit breaker checks are `RetryState`'s.
    public func shouldRetry(outcome: AttemptOutcome, attempt: Int) -> Bool {
        attempt >= 1 && attempt <= numRetries && matches(outcome)
    }

    /// Envoy's jittered exponential backoff before retry number `retry` (1 = first retry):
    /// uniform in `[0, min(backoffMaxMs, backoffBaseMs × 2^(retry-1)))`, from `random`.
    /// (Envoy's `JitteredExponentialBackOffStrategy`: the interval starts at the base,
    /// doubles per retry, is capped at the max, and the wait is `random % interval`.)
    public func backoffMs(attempt retry: Int, random: UInt64) -> Int {
        let interval = backoffIntervalMs(retry: retry)
        return Int(random % UInt64(interval))
    }

    /// The upper bound (exclusive) of `backoffMs` for retry number `retry`.
    public func backoffIntervalMs(retry: Int) -> Int {
        let n = max(1, retry)
        if n - 1 >= 40 { return backoffMaxMs }
        let (v, overflow) = backoffBaseMs.multipliedReportingOverflow(by: 1 << (n - 1))
        return overflow ? backoffMaxMs : min(backoffMaxMs, v)
    }
}
