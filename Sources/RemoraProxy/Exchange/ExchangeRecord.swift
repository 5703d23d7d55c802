import RemoraCore
import RemoraHTTP1
import RemoraPolicy
import RemoraTelemetry

/// What one exchange did, for the metrics and the access log (SPEC §5). Kept by the
/// downstream side (an HTTP/1.1 connection's current request, or an HTTP/2 stream) and
/// reported once when the exchange ends.
struct ExchangeRecord {
    var startNs: UInt64 = 0
    var wallStart: (seconds: Int, nanos: Int) = (0, 0)
    var grpc = false
    var status = 0
    var grpcStatus = -1
    var flags: ResponseFlags = []
    var bytesIn = 0
    var bytesOut = 0
    var cluster: ClusterTarget?
    var upstream: EndpointRef?
    var routeName: String?
    /// Request line fields, built only when the access log is on.
    var method = ""
    var authority = ""
    var path = ""
    var requestID: String?
    var active = false

    mutating func begin(_ req: ParsedRequest, worker: ProxyWorker) {
        self = ExchangeRecord()
        active = true
        startNs = MonotonicClock.nowNanoseconds()
        grpc = req.isGrpc
        if worker.accessLog != nil {
            wallStart = WallClock.now()
            method = req.method
            authority = req.authority
            path = req.path
            requestID = req.header("x-request-id")
        }
    }

    /// The gRPC status of a response head or trailers, read from its fields.
    mutating func noteGrpcStatus(_ value: UnsafeRawBufferPointer?) {
        guard grpc, let v = value, !v.isEmpty else { return }
        var n = 0
        for c in v { guard c >= 48 && c <= 57 else { return }; n = n * 10 + Int(c - 48) }
        grpcStatus = n
    }
}

extension LocalReply {
    /// The response flag of a proxy-generated reply.
    var responseFlags: ResponseFlags {
        switch status {
        case 404: return .noRouteFound
        case 504: return .upstreamRequestTimeout
        default: break
        }
        switch flag.description {
        case "UH": return .noHealthyUpstream
        case "UF": return .upstreamConnectionFailure
        case "UC": return .upstreamConnectionTermination
        case "UO": return .upstreamOverflow
        case "UPE": return .upstreamProtocolError
        default: return []
        }
    }
}

extension ProxyWorker {
    /// Reports a finished exchange: Istio's request metrics, and an access log line.
    func report(_ r: inout ExchangeRecord, listener: ListenerSpec, protocolName: StaticString, peerIP: String) {
        guard r.active else { return }
        r.active = false
        let now = MonotonicClock.nowNanoseconds()
        let durationMs = Double(now &- r.startNs) / 1_000_000
        var sample = RequestSample()
        if let c = r.cluster {
            sample.service = c.stats.service
            sample.serviceName = c.stats.serviceName
            sample.serviceNamespace = c.stats.namespace
            sample.cluster = c.stats.cluster
        }
        sample.reporter = listener.kind == .meshInbound ? .destination : .source
        sample.grpc = r.grpc
        sample.responseCode = r.status
        sample.grpcStatus = r.grpcStatus
        sample.flags = r.flags
        sample.durationMs = durationMs
        sample.requestBytes = r.bytesIn
        sample.responseBytes = r.bytesOut
        stats.record(sample)
        guard let log = accessLog else { return }
        var e = AccessLogEntry()
        e.startTime = r.wallStart
        e.method = r.method
        e.authority = r.authority
        e.path = r.path
        e.protocol = protocolName.description
        e.status = r.status
        e.grpcStatus = r.grpcStatus
        e.flags = r.flags
        e.bytesReceived = r.bytesIn
        e.bytesSent = r.bytesOut
        e.durationMs = Int(durationMs.rounded())
        e.upstreamHost = r.upstream?.address.description
        e.upstreamCluster = r.cluster?.spec.name
        e.routeName = r.routeName
        e.requestID = r.requestID
        e.downstreamPeer = peerIP
        log.append(e)
    }
}
