import RemoraConfig
import RemoraPolicy
import XCTest

/// The traffic policy a cluster gets from its DestinationRule, merged as Istio's
/// `MergeSubsetTrafficPolicy`: the rule's policy for the port (a port-level entry replaces it
/// wholesale), then the subset's policy for the port over it.
final class TrafficPolicyMergeTests: XCTestCase {
    /// The merged policy of the cluster for `svc` on `port` (and `subset`) under a
    /// DestinationRule with this `spec` (without `host`).
    private func policy(_ spec: String, port: Int, subset: String? = nil, file: StaticString = #filePath,
                        line: UInt = #line) throws -> TrafficPolicy? {
        let dest = "{host: svc, port: {number: \(port)}" + (subset.map { ", subset: \($0)" } ?? "") + "}"
        let s = try TestConfig.compile("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: svc}
        spec:
          hosts: [svc]
          ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: svc}
        spec:
          host: svc
        \(spec.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: svc}
        spec:
          hosts: [svc]
          http: [{route: [{destination: \(dest)}]}]
        """)
        let name = "outbound|\(port)|\(subset ?? "")|svc"
        let cluster = try XCTUnwrap(s.clusters.first { $0.name == name }, "\(s.clusters.map(\.name))", file: file, line: line)
        XCTAssertEqual(cluster.trafficPolicy?.portLevelSettings ?? [], [], "port-level settings are resolved", file: file, line: line)
        return cluster.trafficPolicy
    }

    /// One word per section, "-" when unset: lb, connection limit, consecutive 5xx, TLS mode,
    /// tunnel target, proxy protocol version, retry budget percent.
    private func sections(_ p: TrafficPolicy?) -> String {
        [p?.loadBalancer?.simple, p?.connectionPool?.tcp?.maxConnections.map(String.init),
         p?.outlierDetection?.consecutive5xxErrors.map(String.init), p?.tls?.mode, p?.tunnel?.targetHost,
         p?.proxyProtocol?.version, p?.retryBudget?.percent.map { String(Int($0)) }].map { $0 ?? "-" }.joined(separator: " ")
    }

    /// Every section at the top level of the rule.
    private let top = """
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 5}
    tls: {mode: SIMPLE}
    tunnel: {targetHost: top, targetPort: 8443}
    proxyProtocol: {version: V1}
    retryBudget: {percent: 30}
    """

    /// `top`, with a port-level entry for 8080 that sets two sections.
    private var topWithPort8080: String {
        "trafficPolicy:\n" + indented(top, 2) + """

          portLevelSettings:
          - port: {number: 8080}
            loadBalancer: {simple: RANDOM}
            connectionPool: {tcp: {maxConnections: 20}}
        """
    }

    /// A `subsets` list with one subset, v1, whose `trafficPolicy` is `policy`.
    private func subsetV1(_ policy: String) -> String {
        "\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy:\n" + indented(policy, 4)
    }

    private func indented(_ s: String, _ n: Int) -> String {
        s.split(separator: "\n").map { String(repeating: " ", count: n) + $0 }.joined(separator: "\n")
    }

    func testTopLevelOnly() throws {
        let spec = "trafficPolicy:\n" + indented(top, 2)
        XCTAssertEqual(sections(try policy(spec, port: 80)), "ROUND_ROBIN 10 5 SIMPLE top V1 30")
        XCTAssertEqual(sections(try policy(spec, port: 8080)), "ROUND_ROBIN 10 5 SIMPLE top V1 30")
        XCTAssertNil(try policy("subsets: [{name: v1, labels: {version: v1}}]", port: 80), "no policy anywhere")
    }

    /// A port-level entry replaces the top level for its port: what it omits is the default
    /// (outlier detection off, no TLS), not the top level's; tunnel, proxy protocol and the
    /// retry budget are not kept either. Other ports keep the top level.
    func testPortLevelReplacesTheTopLevelWholesale() throws {
        let spec = topWithPort8080
        XCTAssertEqual(sections(try policy(spec, port: 8080)), "RANDOM 20 - - - - -")
        XCTAssertEqual(sections(try policy(spec, port: 80)), "ROUND_ROBIN 10 5 SIMPLE top V1 30")
    }

    func testPortLevelEntryWithoutOutlierDetectionMeansNone() throws {
        let p = try policy("""
        trafficPolicy:
          outlierDetection: {consecutive5xxErrors: 5, interval: 1s}
          portLevelSettings:
          - port: {number: 8080}
            connectionPool: {http: {http2MaxRequests: 7}}
        """, port: 8080)
        XCTAssertNil(p?.outlierDetection)
        XCTAssertEqual(p?.connectionPool?.http?.http2MaxRequests, 7)
    }

    /// Each section the subset sets replaces the rule's; the others stay.
    func testSubsetOverTopLevel() throws {
        let spec = "trafficPolicy:\n" + indented(top, 2) + subsetV1("""
        loadBalancer: {simple: LEAST_REQUEST}
        tunnel: {targetHost: sub, targetPort: 8443}
        retryBudget: {percent: 60}
        """)
        XCTAssertEqual(sections(try policy(spec, port: 80, subset: "v1")), "LEAST_REQUEST 10 5 SIMPLE sub V1 60")
        XCTAssertEqual(sections(try policy(spec, port: 80)), "ROUND_ROBIN 10 5 SIMPLE top V1 30", "no subset: the rule's")
    }

    /// The rule's port-level entry first, then the subset over it: the subset wins where it
    /// sets a section; the rest is the port-level entry's (not the top level's).
    func testSubsetOverTopAndPortLevel() throws {
        let spec = topWithPort8080 + subsetV1("""
        loadBalancer: {simple: LEAST_REQUEST}
        proxyProtocol: {version: V2}
        """)
        XCTAssertEqual(sections(try policy(spec, port: 8080, subset: "v1")), "LEAST_REQUEST 20 - - - V2 -")
        XCTAssertEqual(sections(try policy(spec, port: 80, subset: "v1")), "LEAST_REQUEST 10 5 SIMPLE top V2 30")
    }

    /// A subset's own port-level entry gives all four sections (nil where it omits them); its
    /// top-level tunnel/proxy protocol/budget are not used for that port, the rule's stay.
    func testSubsetWithItsOwnPortLevelSettings() throws {
        let spec = "trafficPolicy:\n" + indented(top, 2) + subsetV1("""
        loadBalancer: {simple: LEAST_REQUEST}
        outlierDetection: {consecutive5xxErrors: 9}
        tunnel: {targetHost: sub, targetPort: 8443}
        portLevelSettings:
        - port: {number: 8080}
          connectionPool: {tcp: {maxConnections: 40}}
        """)
        XCTAssertEqual(sections(try policy(spec, port: 8080, subset: "v1")), "- 40 - - top V1 30")
        XCTAssertEqual(sections(try policy(spec, port: 80, subset: "v1")), "LEAST_REQUEST 10 9 SIMPLE sub V1 30")
    }

    /// Without a top-level policy the subset's policy for the port is the cluster's.
    func testSubsetWithoutARulePolicy() throws {
        let spec = subsetV1("""
        loadBalancer: {simple: RANDOM}
        retryBudget: {}
        portLevelSettings:
        - port: {number: 8080}
          tls: {mode: SIMPLE}
        """)
        XCTAssertEqual(sections(try policy(spec, port: 80, subset: "v1")), "RANDOM - - - - - -")
        XCTAssertNotNil(try policy(spec, port: 80, subset: "v1")?.retryBudget)
        XCTAssertEqual(sections(try policy(spec, port: 8080, subset: "v1")), "- - - SIMPLE - - -")
    }

    /// The connect timeout follows the merged policy too.
    func testConnectTimeoutComesFromTheMergedPolicy() throws {
        let s = try TestConfig.compile("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: svc}
        spec:
          host: svc.example.com
          trafficPolicy:
            connectionPool: {tcp: {connectTimeout: 2s}}
            portLevelSettings:
            - port: {number: 8080}
              loadBalancer: {simple: RANDOM}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: svc}
        spec:
          hosts: [svc.example.com]
          http:
          - match: [{uri: {prefix: /alt}}]
            route: [{destination: {host: svc.example.com, port: {number: 8080}}}]
          - route: [{destination: {host: svc.example.com, port: {number: 80}}}]
        """)
        let timeouts = Dictionary(uniqueKeysWithValues: s.clusters.map { ($0.port, $0.connectTimeoutMs) })
        XCTAssertEqual(timeouts, [80: 2000, 8080: 10_000], "the port-level entry has no connectionPool: the default")
    }
}
