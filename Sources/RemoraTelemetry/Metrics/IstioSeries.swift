/// The Istio label set of one series, packed into integers so that finding a series on
/// the request path is one dictionary probe with no strings (and no allocation).
struct SeriesKey: Hashable, Sendable {
    /// service | serviceName << 32
    var ids: UInt64
    /// serviceNamespace | responseCode << 32 | (grpcStatus + 1) << 42 | reporter << 50 | grpc << 51
    var rest: UInt64
    var flags: UInt32

    @inline(__always) init(_ s: RequestSample) {
        ids = UInt64(UInt32(bitPattern: s.service)) | UInt64(UInt32(bitPattern: s.serviceName)) << 32
        // HTTP codes are three digits; gRPC codes 0…16 (+1 frees 0 for "none"). Out-of-range
        // values are clamped rather than allowed to spill into the neighbouring fields.
        let code = UInt64(min(max(s.responseCode, 0), 1023))
        let grpcStatus = UInt64(min(max(s.grpcStatus + 1, 0), 255))
        rest = UInt64(UInt32(bitPattern: s.serviceNamespace))
            | code << 32 | grpcStatus << 42
            | UInt64(s.reporter.rawValue & 1) << 50 | (s.grpc ? 1 : 0) << 51
        flags = s.flags.rawValue
    }

    var service: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: ids)) }
    var serviceName: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: ids >> 32)) }
    var serviceNamespace: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: rest)) }
    var responseCode: Int { Int((rest >> 32) & 1023) }
    var grpcStatus: Int { Int((rest >> 42) & 255) - 1 }
    var reporter: Reporter { (rest >> 50) & 1 == 0 ? .source : .destination }
    var grpc: Bool { (rest >> 51) & 1 == 1 }
}

/// Where each number of a series lives in the flat `[UInt64]` storage. Bucket counts are
/// kept per bucket (not cumulative) and the last bucket of each histogram is +Inf; the
/// request count is also every histogram's `_count`, since each request observes all three.
enum SeriesLayout {
    /// Istio's default duration buckets (milliseconds).
    static let durationBounds: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
                                           10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
    /// Istio's byte-size buckets.
    static let byteBounds: [Int] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]

    static let requests = 0
    static let durationBuckets = 1                                        // 19 + +Inf
    static let requestBytesBuckets = durationBuckets + durationBounds.count + 1   // 8 + +Inf
    static let responseBytesBuckets = requestBytesBuckets + byteBounds.count + 1  // 8 + +Inf
    static let requestBytesSum = responseBytesBuckets + byteBounds.count + 1
    static let responseBytesSum = requestBytesSum + 1
    static let stride = responseBytesSum + 1

    /// The bucket a duration falls in: the first bound ≥ it (`le` is inclusive), or +Inf.
    @inline(__always) static func durationBucket(_ v: Double) -> Int {
        var i = 0
        let n = durationBounds.count
        while i < n && v > durationBounds[i] { i &+= 1 }
        return i
    }

    @inline(__always) static func byteBucket(_ v: Int) -> Int {
        var i = 0
        let n = byteBounds.count
        while i < n && v > byteBounds[i] { i &+= 1 }
        return i
    }
}
