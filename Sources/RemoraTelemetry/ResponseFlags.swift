/// Envoy's response flags (SPEC §5) as a bit set.
///
/// The bits are Envoy's own (`StreamInfo::CoreResponseFlag`), so `description` lists
/// the flags in the order Envoy prints them (ascending bit): `UH,UF` never `UF,UH`.
public struct ResponseFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    @inline(__always) public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let failedLocalHealthCheck = ResponseFlags(rawValue: 1 << 0)          // LH
    public static let noHealthyUpstream = ResponseFlags(rawValue: 1 << 1)               // UH
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: 1 << 2)          // UT
    public static let localReset = ResponseFlags(rawValue: 1 << 3)                      // LR
    public static let upstreamRemoteReset = ResponseFlags(rawValue: 1 << 4)             // UR
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: 1 << 5)       // UF
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: 1 << 6)   // UC
    public static let upstreamOverflow = ResponseFlags(rawValue: 1 << 7)                // UO
    public static let noRouteFound = ResponseFlags(rawValue: 1 << 8)                    // NR
    public static let delayInjected = ResponseFlags(rawValue: 1 << 9)                   // DI
    public static let faultInjected = ResponseFlags(rawValue: 1 << 10)                  // FI
    public static let rateLimited = ResponseFlags(rawValue: 1 << 11)                    // RL
    public static let unauthorizedExternalService = ResponseFlags(rawValue: 1 << 12)    // UAEX
    public static let rateLimitServiceError = ResponseFlags(rawValue: 1 << 13)          // RLSE
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: 1 << 14) // DC
    public static let upstreamRetryLimitExceeded = ResponseFlags(rawValue: 1 << 15)     // URX
    public static let streamIdleTimeout = ResponseFlags(rawValue: 1 << 16)              // SI
    public static let invalidEnvoyRequestHeaders = ResponseFlags(rawValue: 1 << 17)     // IH
    public static let downstreamProtocolError = ResponseFlags(rawValue: 1 << 18)        // DPE
    public static let upstreamMaxStreamDurationReached = ResponseFlags(rawValue: 1 << 19) // UMSDR
    public static let responseFromCacheFilter = ResponseFlags(rawValue: 1 << 20)        // RFCF
    public static let noFilterConfigFound = ResponseFlags(rawValue: 1 << 21)            // NFCF
    public static let durationTimeout = ResponseFlags(rawValue: 1 << 22)                // DT
    public static let upstreamProtocolError = ResponseFlags(rawValue: 1 << 23)          // UPE
    public static let noClusterFound = ResponseFlags(rawValue: 1 << 24)                 // NC
    public static let overloadManager = ResponseFlags(rawValue: 1 << 25)                // OM
    public static let dnsResolutionFailed = ResponseFlags(rawValue: 1 << 26)            // DF
    public static let dropOverload = ResponseFlags(rawValue: 1 << 27)                   // DO
    public static let downstreamRemoteReset = ResponseFlags(rawValue: 1 << 28)          // DR

    /// Short names indexed by bit number.
    static let shortNames: [StaticString] = [
        "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE",
        "DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
        "DO", "DR",
    ]

    /// Envoy's text: "-" when empty, else the short names comma-joined.
    public var description: String {
        var out: [UInt8] = []
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the text form without building a String (access log, metric labels).
    public func write(into out: inout [UInt8]) {
        var bits = rawValue
        if bits == 0 { out.append(UInt8(ascii: "-")); return }
        var first = true
        while bits != 0 {
            let bit = bits.trailingZeroBitCount
            bits &= bits &- 1
            guard bit < ResponseFlags.shortNames.count else { continue }  // unknown bits: not Envoy's
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            let name = ResponseFlags.shortNames[bit]
            name.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        if first { out.append(UInt8(ascii: "-")) }
    }
}
