/// Istio's `reporter` label: a sidecar's outbound side and gateways report as source,
/// a sidecar's inbound side as destination.
public enum Reporter: UInt8, Sendable {
    case source, destination

    var label: String { self == .source ? "source" : "destination" }
}

/// One finished request, as the worker knows it. Names are `NameTable` ids so that
/// recording it touches no strings.
public struct RequestSample {
    /// Destination service host ("adservice.default.svc.cluster.local", or the
    /// ServiceEntry host); -1 = "unknown".
    public var service: Int32
    /// Its short name ("adservice"); -1 = "unknown".
    public var serviceName: Int32
    /// -1 = "unknown".
    public var serviceNamespace: Int32
    /// The Envoy-style cluster "outbound|80||adservice…"; -1 when none (local replies).
    public var cluster: Int32
    public var reporter: Reporter
    /// request_protocol "grpc" rather than "http".
    public var grpc: Bool
    /// 0 when the client went away before any response.
    public var responseCode: Int
    /// -1 when none.
    public var grpcStatus: Int
    public var flags: ResponseFlags
    public var durationMs: Double
    /// Body bytes received from the client.
    public var requestBytes: Int
    /// Body bytes sent to the client.
    public var responseBytes: Int

    public init(service: Int32 = -1, serviceName: Int32 = -1, serviceNamespace: Int32 = -1,
                cluster: Int32 = -1, reporter: Reporter = .source, grpc: Bool = false,
                responseCode: Int = 0, grpcStatus: Int = -1, flags: ResponseFlags = [],
                durationMs: Double = 0, requestBytes: Int = 0, responseBytes: Int = 0) {
        self.service = service
        self.serviceName = serviceName
        self.serviceNamespace = serviceNamespace
        self.cluster = cluster
        self.reporter = reporter
        self.grpc = grpc
        self.responseCode = responseCode
        self.grpcStatus = grpcStatus
        self.flags = flags
        self.durationMs = durationMs
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
    }
}
