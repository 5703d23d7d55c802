import RemoraCore
import RemoraHTTP1
import RemoraIO
import RemoraResilience

/// The attempts of one forwarded request (Envoy's router retry loop), shared by both
/// downstream protocols: what was decided, which hosts were tried, and the request kept
/// for a replay — its body only up to `bufferLimitBytes` (a larger one is not retried).
struct Attempts {
    var forwarding: Forwarding
    var retry: RetryState
    /// The request body sent so far (decoded bytes), while it fits. The owner's buffer (an
    /// HTTP/1.1 connection reuses one for all its requests: no allocation per request).
    let body: ByteBuffer
    var trailers: ByteBuffer?
    /// An attempt holds a LEAST_REQUEST active count on its host.
    var inFlight = false
    /// The exchange holds one of the cluster's `.requests` (http2MaxRequests).
    var holdsRequest = false
    /// A request found its pooled connection closed and was sent again (once per request).
    var staleReplayed = false

    init(_ f: Forwarding, body: ByteBuffer) {
        forwarding = f
        retry = RetryState(policy: f.retryPolicy)
        retry.recordHost(f.hostIndex)
        body.clear()
        self.body = body
    }

    var canReplay: Bool { retry.policy.isEnabled && retry.bodyReplayable && !retry.responseStarted }

    /// Keeps request body bytes for a replay while they fit.
    mutating func keepBody(_ data: UnsafeRawBufferPointer, limit: Int) {
        guard canReplay else { return }
        if body.count + data.count > limit {
            body.clear()
            if let s = forwarding.cluster.resilience?.stats { retry.requestBodyExceededBuffer(stats: s) }
            return
        }
        body.append(data)
    }

    mutating func keepTrailers(_ t: Trailers, pool: BufferPool) {
        guard canReplay else { return }
        let b = ByteBuffer(pool: pool)
        t.writeLines(into: b)
        trailers = b
    }
}

extension ProxyWorker {
    /// An attempt starts on `a.forwarding`'s host.
    func attemptStarted(_ a: inout Attempts) {
        guard !a.inFlight, let res = a.forwarding.cluster.resilience else { return }
        a.inFlight = true
        res.hosts.requestStarted(a.forwarding.hostIndex)
    }

    /// The attempt in progress ended (a response head, or a failure before one): outlier
    /// detection hears of it, and the retry policy decides.
    func attemptFinished(_ a: inout Attempts, _ outcome: AttemptOutcome) -> RetryDecision {
        let f = a.forwarding
        guard let res = f.cluster.resilience else { return .stop(.disabled) }
        if a.inFlight {
            a.inFlight = false
            res.hosts.requestFinished(f.hostIndex)
        }
        res.report(endpoint: f.hostIndex, outcome: outcome, now: MonotonicClock.nowMilliseconds())
        let decision = a.retry.onAttemptFinished(outcome, breaker: res.breaker, random: random.next())
        let id = f.cluster.stats.cluster
        if outcome == .perTryTimeout { stats.count(.upstream_rq_per_try_timeout, cluster: id) }
        switch decision {
        case .retry: stats.count(.upstream_rq_retry, cluster: id)
        case .stop(.overflow): stats.count(.upstream_rq_retry_overflow, cluster: id)
        case .stop(.notRetriable) where a.retry.attempt > 1: stats.count(.upstream_rq_retry_success, cluster: id)
        default: break
        }
        return decision
    }

    /// The exchange is over: give back what its attempts held.
    func attemptsDone(_ a: inout Attempts) {
        guard let res = a.forwarding.cluster.resilience else { return }
        if a.inFlight {
            a.inFlight = false
            res.hosts.requestFinished(a.forwarding.hostIndex)
        }
        a.retry.finish(breaker: res.breaker)
        if a.holdsRequest {
            a.holdsRequest = false
            res.breaker.release(.requests)
        }
    }

    /// The attempt in progress died on a stale pooled connection and will be sent again:
    /// its host's active count drops and outlier detection hears of the reset, but the retry
    /// policy is not consulted (this is not one of its retries).
    func attemptReplayed(_ a: inout Attempts) {
        guard let res = a.forwarding.cluster.resilience else { return }
        if a.inFlight {
            a.inFlight = false
            res.hosts.requestFinished(a.forwarding.hostIndex)
        }
        res.report(endpoint: a.forwarding.hostIndex, outcome: .reset, now: MonotonicClock.nowMilliseconds())
    }

    /// Takes one of the cluster's request slots (`http2MaxRequests`): false when at the limit.
    func admitRequest(_ a: inout Attempts) -> Bool {
        guard let b = a.forwarding.cluster.resilience?.breaker else { return true }
        guard b.tryAcquire(.requests) else {
            stats.count(.upstream_rq_pending_overflow, cluster: a.forwarding.cluster.stats.cluster)
            return false
        }
        a.holdsRequest = true
        return true
    }

    /// The next attempt's host (avoiding the ones tried when the policy says so).
    func nextAttempt(_ a: inout Attempts, state st: ProxyState) -> Bool {
        let f = a.forwarding
        guard f.clusterIndex >= 0, f.clusterIndex < st.clusters.count,
              let (ep, i) = pickEndpoint(cluster: f.clusterIndex, in: st, hash: f.hash, retry: a.retry) else { return false }
        a.forwarding.endpoint = ep
        a.forwarding.hostIndex = i
        a.retry.recordHost(i)
        return true
    }
}

extension UpstreamFailure {
    /// The reply when no retry follows (SPEC §6).
    var localReply: LocalReply {
        switch self {
        case .connectFailed: .connectFailure
        case .tlsFailed: .upstreamTLSFailure
        case .reset, .refused: .upstreamReset
        case .protocolError: .badUpstreamResponse
        }
    }

    /// As the retry policy and outlier detection see it.
    var outcome: AttemptOutcome {
        switch self {
        case .connectFailed, .tlsFailed: .connectFailure
        case .reset, .protocolError: .reset
        case .refused: .refusedStream
        }
    }
}

enum TryPurpose { case perTry, backoff }

/// The client side of an exchange that retries (an HTTP/1.1 connection's request or an
/// HTTP/2 stream): the per-try timeout, the backoff, and the next attempt, written once.
protocol RetryingExchange: ResponseSink {
    var worker: ProxyWorker { get }
    var attempts: Attempts? { get set }
    var upstream: UpstreamRequest? { get set }
    var record: ExchangeRecord { get set }
    var tryPurpose: TryPurpose { get set }
    /// The timer has been armed at least once (it is made lazily: most exchanges never need it).
    var tryTimerUsed: Bool { get set }
    var tryTimer: LoopTimer { get }
    /// No response has reached the client and the exchange is still on.
    var canStillRetry: Bool { get }
    var retryState: ProxyState? { get }
    /// The request head and the buffer its ranges point into (kept for replays).
    var retryHead: (head: RequestHead, buf: UnsafeRawBufferPointer) { get }
    var requestBodyEnded: Bool { get }
    /// Request body bytes received from the client (all kept for a replay when equal to
    /// `attempts.body.count`).
    var requestBodyBytes: Int { get }
    /// Not a request that may be sent again as if never sent (an upgrade).
    var replayForbidden: Bool { get }
    func answerLocally(_ reply: LocalReply)
    func upstreamFailed(_ f: UpstreamFailure, reused: Bool)
    /// A retry has been sent: anything protocol-specific left to do.
    func retrySent(_ us: UpstreamRequest)
}

extension RetryingExchange {
    func armPerTry() {
        guard let ms = attempts?.retry.policy.perTryTimeoutMs else { return }
        tryPurpose = .perTry
        tryTimerUsed = true
        worker.loop.arm(tryTimer, afterMs: ms)
    }

    func retryAfter(_ ms: Int) {
        tryPurpose = .backoff
        tryTimerUsed = true
        worker.loop.arm(tryTimer, afterMs: ms)
    }

    func cancelTryTimer() {
        if tryTimerUsed { worker.loop.cancel(tryTimer) }
    }

    func tryTimerFired() {
        guard canStillRetry, attempts != nil else { return }
        switch tryPurpose {
        case .perTry:
            if let us = upstream { upstream = nil; us.abandon() }
            switch worker.attemptFinished(&attempts!, .perTryTimeout) {
            case .retry(let ms): retryAfter(ms)
            case .stop: answerLocally(.upstreamTimeout)
            }
        case .backoff:
            retryNow()
        }
    }

    /// A response head arrived: records it, and answers whether a retry replaces it (the
    /// decision is taken on the head, before a byte reaches the client).
    func retryOnResponseHead(_ rh: ResponseHead, buf: UnsafeRawBufferPointer) -> Bool {
        record.status = rh.status
        if record.grpc { record.noteGrpcStatus(Grpc.field("grpc-status", rh, buf)) }
        guard attempts != nil else { return false }
        cancelTryTimer()
        let grpcStatus = record.grpc && record.grpcStatus >= 0 ? record.grpcStatus : nil
        if case .retry(let ms) = worker.attemptFinished(&attempts!, .response(status: rh.status, grpcStatus: grpcStatus)) {
            record.grpcStatus = -1
            if let us = upstream { upstream = nil; us.abandon() }
            retryAfter(ms)
            return true
        }
        attempts!.retry.markResponseStarted()
        return false
    }

    /// A pooled keep-alive connection closed under the request before any response (its
    /// endpoint restarted or died, and the close crossed our request): the request goes once
    /// more, to a host the load balancer picks, on a fresh connection, and the endpoint's
    /// other idle connections are dropped (likely closed too). pingora's rule, not a retry:
    /// Envoy answers 503 `UC` here unless the route retries `reset`. Only when the whole
    /// request (head, body, trailers) is kept.
    func replayAfterStaleConnection(_ f: UpstreamFailure, reused: Bool) -> Bool {
        guard f == .reset, reused, canStillRetry, requestBodyEnded, !replayForbidden, let a = attempts,
              !a.staleReplayed, a.retry.bodyReplayable, a.body.count == requestBodyBytes else { return false }
        cancelTryTimer()
        attempts!.staleReplayed = true
        worker.dropIdle(a.forwarding.endpoint)
        worker.attemptReplayed(&attempts!)
        retryNow()
        return true
    }

    /// The upstream failed before a response: counts it, and answers whether a retry follows.
    func retryOnFailure(_ f: UpstreamFailure) -> Bool {
        if f == .connectFailed || f == .tlsFailed, let c = record.cluster {
            worker.stats.count(.upstream_cx_connect_fail, cluster: c.stats.cluster)
        }
        guard attempts != nil else { return false }
        cancelTryTimer()
        switch worker.attemptFinished(&attempts!, f.outcome) {
        case .retry(let ms):
            retryAfter(ms)
            return true
        case .stop(.limitExceeded):
            record.flags.insert(.upstreamRetryLimitExceeded)
        default:
            break
        }
        return false
    }

    /// The upstream side of an attempt on `f`; nil when there is none, after answering
    /// (overflow: 503 UO) or reporting the failed connect (which may retry).
    func openAttempt(_ f: Forwarding) -> UpstreamRequest? {
        switch worker.openUpstream(f) {
        case .ready(let u): return u
        case .overflow: answerLocally(.overflow)
        case .failed: upstreamFailed(.connectFailed, reused: false)
        }
        return nil
    }

    /// The next attempt: another host (when the policy says so), the kept head and body.
    func retryNow() {
        guard let st = retryState, worker.nextAttempt(&attempts!, state: st) else { return answerLocally(.noHealthyUpstream) }
        let f = attempts!.forwarding
        record.upstream = f.endpoint
        worker.stats.count(.upstream_rq_total, cluster: f.cluster.stats.cluster)
        guard let us = openAttempt(f) else { return }
        upstream = us
        let (head, buf) = retryHead
        us.attach(self, method: head.methodKind)
        var idRandom = FastRandom(seed: f.requestIDSeed)   // the same x-request-id as before
        us.sendHead(head, buf: buf, ctx: f.ctx, random: &idRandom)
        if !attempts!.body.isEmpty { us.sendBody(attempts!.body.readable) }
        retrySent(us)
        if requestBodyEnded { us.sendEnd(trailers: attempts!.trailers.map { .http1($0.readable) }) }
        worker.attemptStarted(&attempts!)
        armPerTry()
        us.flush()
    }
}
