import Foundation
import XCTest
import RemoraConfig

final class ValidationTests: XCTestCase {
    /// Parses and returns the errors (failing when the text is accepted).
    private func errors(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [ConfigError] {
        do {
            _ = try ConfigLoader.parse(text, source: "test.yaml")
            XCTFail("configuration was accepted", file: file, line: line)
            return []
        } catch {
            return error.errors
        }
    }

    private func assertOne(_ text: String, resource: String?, path: String, contains: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        let errs = errors(text, file: file, line: line)
        XCTAssertEqual(errs.count, 1, "\(errs)", file: file, line: line)
        guard let e = errs.first else { return }
        XCTAssertEqual(e.resource, resource, file: file, line: line)
        XCTAssertEqual(e.path, path, file: file, line: line)
        XCTAssertTrue(e.message.contains(contains), "message: \(e.message)", file: file, line: line)
        XCTAssertEqual(e.file, "test.yaml", file: file, line: line)
        XCTAssertEqual(e.kind, .invalid, file: file, line: line)
    }

    private func vs(_ spec: String, name: String = "adservice") -> String {
        """
        apiVersion: networking.istio.io/v1beta1
        kind: VirtualService
        metadata: {name: \(name)}
        spec:
        \(spec)
        """
    }

    func testBadRegex() {
        assertOne(vs("""
          hosts: [adservice]
          http:
          - match:
            - headers:
                userid: {regex: "4f9e(.*"}
            route: [{destination: {host: adservice}}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].match[0].headers.userid.regex", contains: "RE2")
    }

    func testWeightsMustSumTo100() {
        assertOne(vs("""
          hosts: [adservice]
          http:
          - route:
            - {destination: {host: a}, weight: 50}
            - {destination: {host: b}, weight: 40}
        """), resource: "VirtualService default/adservice", path: "spec.http[0].route", contains: "90 != 100")
        // One destination needs no weight.
        XCTAssertNoThrow(try ConfigLoader.parse(vs("""
          hosts: [adservice]
          http: [{route: [{destination: {host: a}}]}]
        """), source: "t"))
    }

    func testRedirectWithRoute() {
        assertOne(vs("""
          hosts: [adservice]
          http:
          - redirect: {uri: /x}
            route: [{destination: {host: a}}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].redirect", contains: "redirect and route")
    }

    func testUndefinedSubset() {
        let text = vs("""
          hosts: [reviews]
          http:
          - route:
            - {destination: {host: reviews, subset: v3}, weight: 50}
            - {destination: {host: reviews, subset: v1}, weight: 50}
        """, name: "reviews") + """

        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews.default.svc.cluster.local
          subsets: [{name: v1, labels: {version: v1}}]
        """
        assertOne(text, resource: "VirtualService default/reviews", path: "spec.http[0].route[0].destination.subset", contains: "v3")
    }

    func testUndefinedGateway() {
        let text = vs("""
          hosts: [adservice]
          gateways: [mesh, istio-system/ingressgateway, missing]
          http: [{route: [{destination: {host: a}}]}]
        """) + """

        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: ingressgateway, namespace: istio-system}
        spec:
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        """
        assertOne(text, resource: "VirtualService default/adservice", path: "spec.gateways[2]", contains: "default/missing")
        // A bare name is the VirtualService's own namespace: istio-system's gateway is not "ingressgateway" from default.
        let bare = text.replacingOccurrences(of: "gateways: [mesh, istio-system/ingressgateway, missing]", with: "gateways: [ingressgateway]")
        assertOne(bare, resource: "VirtualService default/adservice", path: "spec.gateways[0]", contains: "default/ingressgateway")
    }

    func testCatchAllHostNotAllowedOnTheMesh() {
        assertOne(vs("""
          hosts: [a, "*"]
          http: [{route: [{destination: {host: a}}]}]
        """), resource: "VirtualService default/adservice", path: "spec.hosts[1]", contains: "wildcard host *")
    }

    func testDuplicateResource() {
        let one = vs("""
          hosts: [a]
          http: [{route: [{destination: {host: a}}]}]
        """)
        assertOne(one + "\n---\n" + one, resource: "VirtualService default/adservice", path: "metadata.name", contains: "duplicate")
        // Same name in another namespace or kind is fine.
        let other = one.replacingOccurrences(of: "metadata: {name: adservice}", with: "metadata: {name: adservice, namespace: shop}")
        XCTAssertNoThrow(try ConfigLoader.parse(one + "\n---\n" + other, source: "t"))
    }

    func testStaticServiceEntryWithoutEndpoints() {
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db, namespace: data}
        spec:
          hosts: [db.internal]
          ports: [{number: 5432, name: pg, protocol: TCP}]
          resolution: STATIC
        """, resource: "ServiceEntry data/db", path: "spec.endpoints", contains: "STATIC")
    }

    func testPortOutOfRange() {
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers: [{port: {number: 70000, name: http, protocol: HTTP}, hosts: ["*"]}]
        """, resource: "Gateway default/gw", path: "spec.servers[0].port.number", contains: "out of range")
        assertOne(vs("""
          hosts: [a]
          http: [{route: [{destination: {host: a, port: {number: 0}}}]}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].route[0].destination.port.number", contains: "out of range")
    }

    func testMoreThanOneProxy() {
        assertOne("""
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: a}
        ---
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: b}
        """, resource: "Proxy default/b", path: "", contains: "at most one Proxy")
    }

    func testMissingRequiredFields() {
        assertOne(vs("""
          http: [{route: [{destination: {host: a}}]}]
          gateways: [mesh]
        """), resource: "VirtualService default/adservice", path: "spec.hosts", contains: "required")
        assertOne(vs("""
          http: [{route: [{destination: {host: a}}]}]
        """), resource: "VirtualService default/adservice", path: "spec.hosts", contains: "required")
        // ...unless it is another VirtualService's delegate.
        XCTAssertNoThrow(try ConfigLoader.parse(vs("""
          http: [{route: [{destination: {host: a}}]}]
        """, name: "target") + "\n---\n" + vs("""
          hosts: [a]
          http: [{delegate: {name: target}}]
        """), source: "t"))
        assertOne(vs("""
          hosts: [a]
          http: [{delegate: {name: nothing, namespace: x}}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].delegate", contains: "x/nothing")
        assertOne(vs("""
          hosts: [a]
          http: [{route: [{destination: {subset: v1}}]}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].route[0].destination.host", contains: "required")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {namespace: x}
        spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
        """, resource: "VirtualService x/<unnamed>", path: "metadata.name", contains: "required")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: x}
        spec: {trafficPolicy: {}}
        """, resource: "DestinationRule default/x", path: "spec.host", contains: "required")
    }

    func testUnknownFieldAndBadValues() {
        assertOne(vs("""
          hosts: [a]
          http: [{route: [{destination: {host: a}}], retry: {attempts: 3}}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].retry", contains: "unknown field")
        assertOne(vs("""
          hosts: [a]
          http: [{route: [{destination: {host: a}}], timeout: 10 seconds}]
        """), resource: "VirtualService default/adservice", path: "spec.http[0].timeout", contains: "invalid duration")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: x}
        spec: {host: x, trafficPolicy: {loadBalancer: {simple: FASTEST}}}
        """, resource: "DestinationRule default/x", path: "spec.trafficPolicy.loadBalancer.simple", contains: "FASTEST")
        assertOne("""
        apiVersion: networking.istio.io/v2
        kind: Gateway
        metadata: {name: gw}
        spec: {servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
        """, resource: "Gateway default/gw", path: "apiVersion", contains: "networking.istio.io/v2")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: s}
        spec: {}
        """, resource: "Sidecar default/s", path: "kind", contains: "unknown kind")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec: {servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"]}]}
        """, resource: "Gateway default/gw", path: "spec.servers[0].tls", contains: "requires tls")
        assertOne("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec: {servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE}}]}
        """, resource: "Gateway default/gw", path: "spec.servers[0].tls", contains: "credentialName")
    }

    /// `retryOn` tokens must be Envoy/Istio conditions or HTTP status codes Istio knows; the
    /// error is at the field and names the token. Per-try timeout and backoff are at least 1ms.
    func testRetries() {
        func rule(_ retries: String) -> String {
            vs("""
              hosts: [a]
              http: [{route: [{destination: {host: a}}], retries: \(retries)}]
            """)
        }
        assertOne(rule("{attempts: 2, retryOn: \"5xx,gateway-errors, 503\"}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.retryOn", contains: "\"gateway-errors\" is not a valid retryOn policy")
        assertOne(rule("{attempts: 2, retryOn: \"connect-failure,599\"}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.retryOn", contains: "\"599\" is not a valid retryOn status code")
        XCTAssertEqual(errors(rule("{attempts: 2, retryOn: \"bogus,Reset,5xx\"}")).map(\.path),
                       ["spec.http[0].retries.retryOn", "spec.http[0].retries.retryOn"], "one error per bad token")
        assertOne(rule("{attempts: 2, perTryTimeout: 0s}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.perTryTimeout", contains: "at least 1ms")
        assertOne(rule("{attempts: 2, backoff: 500us}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.backoff", contains: "at least 1ms")
        assertOne(rule("{attempts: 2, backoff: soon}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.backoff", contains: "invalid duration")
        assertOne(rule("{attempts: 2, retryIgnorePreviousHosts: sometimes}"), resource: "VirtualService default/adservice",
                  path: "spec.http[0].retries.retryIgnorePreviousHosts", contains: "expected true or false")
        XCTAssertNoThrow(try ConfigLoader.parse(rule("""
        {attempts: 3, perTryTimeout: 1ms, backoff: 50ms, retryIgnorePreviousHosts: false,
         retryOn: "5xx,gateway-error,reset,reset-before-request,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,\\
        retriable-headers,envoy-ratelimited,http3-post-connect-failure,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,\\
        100,226,418,429,503,511"}
        """), source: "t"))
    }

    func testRetryBudget() {
        func dr(_ budget: String) -> String {
            """
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: x}
            spec: {host: x, trafficPolicy: {retryBudget: \(budget)}}
            """
        }
        assertOne(dr("{percent: 120}"), resource: "DestinationRule default/x", path: "spec.trafficPolicy.retryBudget.percent",
                  contains: "between 0 and 100")
        assertOne(dr("{percent: lots}"), resource: "DestinationRule default/x", path: "spec.trafficPolicy.retryBudget.percent",
                  contains: "expected a number")
        assertOne(dr("{minRetryConcurrency: -1}"), resource: "DestinationRule default/x",
                  path: "spec.trafficPolicy.retryBudget.minRetryConcurrency", contains: "out of range")
        assertOne(dr("{percent: 20, maxRetries: 3}"), resource: "DestinationRule default/x",
                  path: "spec.trafficPolicy.retryBudget.maxRetries", contains: "unknown field")
        XCTAssertNoThrow(try ConfigLoader.parse(dr("{percent: 0.5, minRetryConcurrency: 0}"), source: "t"))
    }

    func testEveryErrorAtOnce() {
        let text = vs("""
          hosts: [adservice]
          gateways: [nowhere]
          http:
          - match:
            - headers:
                userid: {regex: "("}
            route:
            - {destination: {host: a}, weight: 10}
            - {destination: {host: b, subset: v9}, weight: 10}
          - redirect: {uri: /x}
            route: [{destination: {host: a}}]
            timeout: soon
        """) + """

        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db}
        spec: {hosts: [db], resolution: STATIC, ports: [{number: 99999, name: x}]}
        ---
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: p}
        spec: {workers: -1, drainTimeout: never}
        """
        let errs = errors(text)
        let got = Set(errs.map { "\($0.resource ?? "")|\($0.path)" })
        let want: Set<String> = [
            "VirtualService default/adservice|spec.http[0].match[0].headers.userid.regex",
            "VirtualService default/adservice|spec.http[0].route",
            "VirtualService default/adservice|spec.http[1].redirect",
            "VirtualService default/adservice|spec.http[1].timeout",
            "ServiceEntry default/db|spec.ports[0].number",
            "ServiceEntry default/db|spec.endpoints",
            "Proxy default/p|spec.workers",
            "Proxy default/p|spec.drainTimeout",
        ]
        XCTAssertTrue(want.isSubset(of: got), "missing: \(want.subtracting(got)); all: \(errs.map(\.description))")
        // Each line names file, resource and field.
        let line = errs.first { $0.path == "spec.http[0].route" }!.description
        XCTAssertEqual(line, "test.yaml: VirtualService default/adservice: spec.http[0].route: total destination weight 20 != 100")
    }

    func testCrossResourceErrorsAlsoReportedWithDecodeErrors() {
        // A resource with a decoding error is dropped, but the others are still cross-checked.
        let text = vs("""
          hosts: [a]
          gateways: [nowhere]
          http: [{route: [{destination: {host: a}}]}]
        """) + """

        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec: {servers: [{port: {number: 80, name: http, protocol: SPDY}, hosts: ["*"]}]}
        """
        let paths = Set(errors(text).map(\.path))
        XCTAssertEqual(paths, ["spec.gateways[0]", "spec.servers[0].port.protocol"])
        // A reference to a resource that has its own errors is not reported again.
        let refersToBroken = text.replacingOccurrences(of: "gateways: [nowhere]", with: "gateways: [gw]")
        XCTAssertEqual(errors(refersToBroken).map(\.path), ["spec.servers[0].port.protocol"])
    }

    func testYAMLSyntaxError() {
        let errs = errors("apiVersion: v1\nkind: [unclosed\n")
        XCTAssertEqual(errs.count, 1)
        XCTAssertEqual(errs.first?.file, "test.yaml")
        XCTAssertTrue(errs.first?.message.contains("line") ?? false, "\(errs)")
    }

    func testErrorDescriptionFormat() {
        let e = ConfigError(kind: .invalid, file: "f.yaml", resource: "VirtualService default/a", path: "spec.hosts", message: "required field is missing")
        XCTAssertEqual(e.description, "f.yaml: VirtualService default/a: spec.hosts: required field is missing")
        XCTAssertEqual(ConfigError(message: "boom").description, "boom")
    }

    func testLoadPathsDirectoriesAndUnreadable() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("remora-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("nested"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ name: String, _ text: String) throws {
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try write("b.yaml", vs("  hosts: [b]\n  http: [{route: [{destination: {host: b}}]}]", name: "b"))
        try write("a.json", #"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "a"}, "spec": {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]}}"#)
        try write("c.yml", vs("  hosts: [c]\n  http: [{route: [{destination: {host: c}}]}]", name: "c"))
        try write("notes.txt", "not config")
        try write("nested/d.yaml", "garbage: [")
        let set = try ConfigLoader.load(paths: [dir.path])
        XCTAssertEqual(set.resources.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(set.resources[0].source, dir.appendingPathComponent("a.json").path)

        do {
            _ = try ConfigLoader.load(paths: [dir.path, dir.appendingPathComponent("missing.yaml").path])
            XCTFail("missing file accepted")
        } catch {
            XCTAssertEqual(error.errors.count, 1)
            XCTAssertEqual(error.errors.first?.kind, .unreadable)
            XCTAssertTrue(error.hasUnreadable)
        }
    }

    func testDecodeWithoutCrossValidationThenValidate() throws {
        let resources = try ConfigLoader.decode(vs("""
          hosts: [a]
          gateways: [gw]
          http: [{route: [{destination: {host: a}}]}]
        """), source: "admin")
        XCTAssertEqual(resources.count, 1)
        XCTAssertThrowsError(try ConfigSet.validated(resources))
    }

    func testHostNameAliases() {
        XCTAssertEqual(Set(HostNames.aliases("adservice", namespace: "default")),
                       ["adservice", "adservice.default", "adservice.default.svc", "adservice.default.svc.cluster.local"])
        XCTAssertTrue(HostNames.sameService("adservice", namespace: "default", "adservice.default.svc.cluster.local", namespace: "other"))
        XCTAssertFalse(HostNames.sameService("adservice", namespace: "default", "adservice", namespace: "shop"))
        XCTAssertTrue(HostNames.sameService("*.example.com", namespace: "a", "api.example.com", namespace: "b"))
        XCTAssertEqual(HostNames.stripPort("Adservice.Default:9555"), "adservice.default")
        XCTAssertEqual(HostNames.stripPort("[::1]:8080"), "[::1]")
        XCTAssertEqual(HostNames.stripPort("example.com."), "example.com")
    }
}
