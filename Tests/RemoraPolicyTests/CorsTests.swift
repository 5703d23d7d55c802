import RemoraConfig
import RemoraPolicy
import XCTest

/// `corsPolicy` as Envoy's CORS filter applies Istio's translation of it.
final class CorsTests: XCTestCase {
    private func cors(_ policy: String) throws -> CompiledCors {
        let s = try TestConfig.mesh("""
          - corsPolicy: \(policy)
            route: [{destination: {host: a}}]
        """)
        return try XCTUnwrap(s.resolveMesh(FakeRequest("svc"))?.entry.actions.cors)
    }

    private func show(_ r: PreflightResult) -> String {
        switch r {
        case .notPreflight: return "notPreflight"
        case .forward: return "forward"
        case .respond(let h): return "respond " + h.map { "\($0.0): \($0.1)" }.joined(separator: " | ")
        }
    }

    private func preflight(_ c: CompiledCors, origin: String?, method: String = "OPTIONS", acrm: String? = "PUT",
                           acrh: String? = nil) -> String {
        show(c.preflight(method: method, origin: origin, requestMethod: acrm, requestHeaders: acrh))
    }

    func testPreflightAllowedDeniedAndNotAPreflight() throws {
        let c = try cors("""
        {allowOrigins: [{exact: "https://app.example.com"}], allowMethods: [GET, PUT], allowHeaders: [content-type, x-token],
               exposeHeaders: [x-request-id], maxAge: 24h, allowCredentials: true}
        """)
        XCTAssertEqual(preflight(c, origin: "https://app.example.com"),
                       "respond access-control-allow-origin: https://app.example.com | access-control-allow-credentials: true"
                       + " | access-control-allow-methods: GET,PUT | access-control-allow-headers: content-type,x-token"
                       + " | access-control-max-age: 86400")
        XCTAssertEqual(preflight(c, origin: "https://evil.example.com"), "forward", "unmatchedPreflights unset: FORWARD")
        XCTAssertEqual(preflight(c, origin: "https://app.example.com", method: "GET"), "notPreflight", "not OPTIONS")
        XCTAssertEqual(preflight(c, origin: "https://app.example.com", acrm: nil), "notPreflight", "no Access-Control-Request-Method")
        XCTAssertEqual(preflight(c, origin: "https://app.example.com", acrm: ""), "notPreflight", "empty Access-Control-Request-Method")
        XCTAssertEqual(preflight(c, origin: nil), "notPreflight", "no Origin")
        XCTAssertEqual(preflight(c, origin: ""), "notPreflight", "empty Origin")

        XCTAssertEqual(c.responseHeaders(origin: "https://app.example.com").map { "\($0.0): \($0.1)" },
                       ["access-control-allow-origin: https://app.example.com", "access-control-allow-credentials: true",
                        "access-control-expose-headers: x-request-id"])
        XCTAssertTrue(c.responseHeaders(origin: "https://evil.example.com").isEmpty)
        XCTAssertTrue(c.responseHeaders(origin: nil).isEmpty)
    }

    func testUnmatchedPreflights() throws {
        let ignore = try cors("{allowOrigins: [{exact: https://a.example}], allowMethods: [POST], unmatchedPreflights: IGNORE}")
        XCTAssertEqual(preflight(ignore, origin: "https://b.example"), "respond access-control-allow-methods: POST",
                       "IGNORE answers itself, without Access-Control-Allow-Origin (Envoy keeps the other headers)")
        let bare = try cors("{allowOrigins: [{exact: https://a.example}], unmatchedPreflights: IGNORE}")
        XCTAssertEqual(preflight(bare, origin: "https://b.example"), "respond ", "no CORS headers at all")
        let forward = try cors("{allowOrigins: [{exact: https://a.example}], unmatchedPreflights: FORWARD}")
        XCTAssertEqual(preflight(forward, origin: "https://b.example"), "forward")
        XCTAssertEqual(preflight(forward, origin: "https://a.example"), "respond access-control-allow-origin: https://a.example",
                       "only what is configured")
    }

    func testOriginMatchers() throws {
        let c = try cors(#"{allowOrigins: [{prefix: "https://dev-"}, {regex: "https://[a-z]+\\.example\\.com"}, {exact: http://localhost:3000}]}"#)
        XCTAssertTrue(c.allowsForTest("https://dev-alice.example.org"), "prefix")
        XCTAssertTrue(c.allowsForTest("https://shop.example.com"), "regex")
        XCTAssertFalse(c.allowsForTest("https://shop.example.com.evil.io"), "regex must match the whole origin")
        XCTAssertFalse(c.allowsForTest("https://a.b.example.com"), "regex")
        XCTAssertTrue(c.allowsForTest("http://localhost:3000"), "exact")
        XCTAssertFalse(c.allowsForTest("http://localhost:3001"), "exact")
        XCTAssertFalse(c.allowsForTest("HTTP://LOCALHOST:3000"), "exact is case-sensitive")

        let star = try cors(#"{allowOrigins: [{exact: "*"}], allowMethods: ["*"], allowHeaders: ["*"]}"#)
        XCTAssertEqual(preflight(star, origin: "https://anything.io", acrm: "DELETE", acrh: "x-a,x-b"),
                       "respond access-control-allow-origin: https://anything.io | access-control-allow-methods: DELETE"
                       + " | access-control-allow-headers: x-a,x-b",
                       "\"*\" allows every origin (echoed), and * methods/headers echo the request's")
        let anyRegex = try cors(#"{allowOrigins: [{regex: ".*"}]}"#)
        XCTAssertTrue(anyRegex.allowsForTest("null"), "a matcher accepting \"*\" accepts all (Envoy)")

        let legacy = try cors("{allowOrigin: [https://old.example]}")
        XCTAssertTrue(legacy.allowsForTest("https://old.example"), "deprecated allowOrigin: exact origins")
        XCTAssertFalse(legacy.allowsForTest("https://old.example.com"))

        let empty = try cors("{allowMethods: [GET]}")
        XCTAssertEqual(preflight(empty, origin: "https://a.example"), "forward", "no origins: nothing is allowed")
    }

    func testNoCorsPolicy() throws {
        let s = try TestConfig.mesh("  - route: [{destination: {host: a}}]")
        XCTAssertNil(s.resolveMesh(FakeRequest("svc"))?.entry.actions.cors)
    }
}

extension CompiledCors {
    /// Whether an actual request from `origin` gets CORS headers.
    func allowsForTest(_ origin: String) -> Bool { !responseHeaders(origin: origin).isEmpty }
}
