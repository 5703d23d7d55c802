import XCTest
@testable import RemoraTelemetry

final class ResponseFlagsTests: XCTestCase {
    func testEmptyIsDash() {
        XCTAssertEqual(ResponseFlags().description, "-")
    }

    func testSingleFlags() {
        let cases: [(ResponseFlags, String)] = [
            (.noHealthyUpstream, "UH"), (.upstreamConnectionFailure, "UF"), (.upstreamOverflow, "UO"),
            (.noRouteFound, "NR"), (.upstreamRetryLimitExceeded, "URX"), (.upstreamConnectionTermination, "UC"),
            (.upstreamRequestTimeout, "UT"), (.downstreamConnectionTermination, "DC"), (.delayInjected, "DI"),
            (.faultInjected, "FI"), (.upstreamProtocolError, "UPE"), (.localReset, "LR"),
            (.upstreamRemoteReset, "UR"), (.rateLimited, "RL"), (.streamIdleTimeout, "SI"),
            (.downstreamProtocolError, "DPE"), (.failedLocalHealthCheck, "LH"), (.durationTimeout, "DT"),
        ]
        for (f, s) in cases { XCTAssertEqual(f.description, s) }
    }

    /// Envoy joins flags in its bit order (the order of its ResponseFlag enum).
    func testEnvoyOrder() {
        XCTAssertEqual(([.upstreamRetryLimitExceeded, .noHealthyUpstream] as ResponseFlags).description, "UH,URX")
        XCTAssertEqual(([.noRouteFound, .upstreamConnectionFailure, .upstreamRequestTimeout] as ResponseFlags).description,
                       "UT,UF,NR")
        XCTAssertEqual(([.upstreamProtocolError, .downstreamConnectionTermination, .upstreamOverflow] as ResponseFlags).description,
                       "UO,DC,UPE")
        XCTAssertEqual(([.faultInjected, .delayInjected] as ResponseFlags).description, "DI,FI")
    }

    func testUnknownBitsIgnored() {
        XCTAssertEqual(ResponseFlags(rawValue: 1 << 31).description, "-")
        XCTAssertEqual(ResponseFlags(rawValue: 1 << 31 | 1 << 1).description, "UH")
    }

    func testEveryBitHasAName() {
        XCTAssertEqual(ResponseFlags.shortNames.count, 29)
        XCTAssertEqual(Set(ResponseFlags.shortNames.map { "\($0)" }).count, 29)
    }
}
