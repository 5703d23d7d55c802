import RemoraConfig
@testable import RemoraResilience
import XCTest

/// Decodes Istio resources from YAML, as the proxy would receive them.
enum Decode {
    static func trafficPolicy(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) throws -> TrafficPolicy? {
        try destinationRule(yaml, file: file, line: line).spec.trafficPolicy
    }

    static func destinationRule(_ spec: String, file: StaticString = #filePath, line: UInt = #line) throws -> DestinationRule {
        let text = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: dr, namespace: default}
        spec:
        \(indent(spec))
        """
        let rs = try ConfigLoader.decode(text, source: "test.yaml")
        return try XCTUnwrap(rs.first?.destinationRule, file: file, line: line)
    }

    /// The `retries` of a one-rule VirtualService (nil when the rule has none).
    static func retries(_ retries: String?) throws -> HTTPRetry? {
        let text = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs, namespace: default}
        spec:
          hosts: [svc]
          http:
          - route: [{destination: {host: svc}}]
        \(retries.map { "    retries: " + $0 } ?? "")
        """
        let rs = try ConfigLoader.decode(text, source: "test.yaml")
        return try XCTUnwrap(rs.first?.virtualService).spec.http.first?.retries
    }

    private static func indent(_ s: String) -> String {
        s.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }
}

/// A deterministic source of the random values the APIs take.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func endpoints(_ n: Int, from: Int = 0, weight: Int = 1) -> [EndpointDescriptor] {
    (from..<(from + n)).map { EndpointDescriptor(key: "10.0.\($0 / 250).\($0 % 250 + 1):8080", weight: weight) }
}
