#if canImport(Glibc)
import Glibc
#endif

/// One request as the access log shows it (SPEC §5).
public struct AccessLogEntry {
    /// Wall clock at the start of the request (see `WallClock.now()`).
    public var startTime: (seconds: Int, nanos: Int)
    public var method: String
    public var authority: String
    public var path: String
    /// "HTTP/1.1", "HTTP/2".
    public var `protocol`: String
    /// 0 when the client went away before any response.
    public var status: Int
    /// -1 when none.
    public var grpcStatus: Int
    public var flags: ResponseFlags
    /// Body bytes from the client / to the client.
    public var bytesReceived: Int
    public var bytesSent: Int
    public var durationMs: Int
    /// "10.0.0.1:8080".
    public var upstreamHost: String?
    public var upstreamCluster: String?
    public var routeName: String?
    public var requestID: String?
    public var downstreamPeer: String?

    public init(startTime: (seconds: Int, nanos: Int) = (0, 0), method: String = "", authority: String = "",
                path: String = "", protocol: String = "HTTP/1.1", status: Int = 0, grpcStatus: Int = -1,
                flags: ResponseFlags = [], bytesReceived: Int = 0, bytesSent: Int = 0, durationMs: Int = 0,
                upstreamHost: String? = nil, upstreamCluster: String? = nil, routeName: String? = nil,
                requestID: String? = nil, downstreamPeer: String? = nil) {
        self.startTime = startTime
        self.method = method
        self.authority = authority
        self.path = path
        self.protocol = `protocol`
        self.status = status
        self.grpcStatus = grpcStatus
        self.flags = flags
        self.bytesReceived = bytesReceived
        self.bytesSent = bytesSent
        self.durationMs = durationMs
        self.upstreamHost = upstreamHost
        self.upstreamCluster = upstreamCluster
        self.routeName = routeName
        self.requestID = requestID
        self.downstreamPeer = downstreamPeer
    }
}

/// Wall-clock time for access log timestamps (durations use `MonotonicClock`).
public enum WallClock {
    public static func now() -> (seconds: Int, nanos: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec))
    }
}
