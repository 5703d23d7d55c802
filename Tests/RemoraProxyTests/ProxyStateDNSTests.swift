import RemoraConfig
import RemoraPolicy
import XCTest
@testable import RemoraProxy

/// How a state takes its addresses from DNS answers: names through the lookup, IP literals
/// as they are, never a blocking resolution.
final class ProxyStateDNSTests: XCTestCase {
    private let config = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: dns}
    spec:
      hosts: [svc.example.test]
      resolution: DNS
      ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: static}
    spec:
      hosts: [static.local]
      resolution: STATIC
      ports: [{number: 80, name: http, protocol: HTTP}]
      endpoints: [{address: 10.0.0.5, ports: {http: 9000}}, {address: db.example.test, ports: {http: 9001}}, {address: "::1", ports: {http: 9002}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: routes}
    spec:
      hosts: [a.local]
      http:
      - match: [{uri: {prefix: /dns}}]
        route: [{destination: {host: svc.example.test}}]
      - match: [{uri: {prefix: /static}}]
        route: [{destination: {host: static.local}}]
      - match: [{uri: {prefix: /literal}}]
        route: [{destination: {host: 10.1.1.1, port: {number: 7000}}}]
      - route: [{destination: {host: fallback.example.test, port: {number: 81}}}]
    """

    private func snapshot() throws -> Snapshot {
        try Snapshot.compile(try ConfigLoader.parse(config, source: "test.yaml"))
    }

    func testTheNamesToResolveLeaveLiteralsOut() throws {
        XCTAssertEqual(ProxyState.dnsNames(try snapshot()), ["svc.example.test", "db.example.test", "fallback.example.test"])
    }

    func testAddressesComeFromTheLookup() throws {
        let snap = try snapshot()
        let answers = ["svc.example.test": ["10.9.0.2", "10.9.0.1"], "fallback.example.test": ["fd00::7"]]
        var asked: [String] = []
        let state = ProxyState.build(snap, version: 3, registry: EndpointRegistry()) { name in
            asked.append(name)
            return answers[name] ?? []
        }
        func endpoints(_ host: String) -> [String] {
            state.clusters.first { $0.spec.host == host }!.endpoints.map(\.address.description)
        }
        XCTAssertEqual(endpoints("svc.example.test"), ["10.9.0.2:8080", "10.9.0.1:8080"])
        XCTAssertEqual(endpoints("static.local"), ["10.0.0.5:9000", "[::1]:9002"], "an unanswered name adds nothing")
        XCTAssertEqual(endpoints("10.1.1.1"), ["10.1.1.1:7000"])
        XCTAssertEqual(endpoints("fallback.example.test"), ["[fd00::7]:81"])
        XCTAssertEqual(Set(asked), ["svc.example.test", "db.example.test", "fallback.example.test"])
        XCTAssertEqual(state.version, 3)
    }

    func testSameEndpointsComparesTheAnswers() throws {
        let snap = try snapshot()
        let registry = EndpointRegistry()
        let a = ProxyState.build(snap, version: 1, registry: registry) { _ in ["10.9.0.1"] }
        let b = ProxyState.build(snap, version: 1, registry: registry) { _ in ["10.9.0.1"] }
        let c = ProxyState.build(snap, version: 1, registry: registry) { _ in ["10.9.0.1", "10.9.0.3"] }
        XCTAssertTrue(a.sameEndpoints(as: b))
        XCTAssertFalse(a.sameEndpoints(as: c))
    }
}
