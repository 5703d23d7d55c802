import RemoraConfig
import RemoraPolicy
import XCTest

/// Every match field against the edge cases Istio (and the Envoy route it generates) defines. Each row
/// compiles `match: [ENTRY]` as rule 0 before a catch-all, and says whether a request hits rule 0.
final class MatchTableTests: XCTestCase {
    struct Row {
        let entry: String
        let checks: [(FakeRequest, Bool, String)]
        let line: UInt
        init(_ entry: String, line: UInt = #line, _ checks: [(FakeRequest, Bool, String)]) {
            self.entry = entry
            self.checks = checks
            self.line = line
        }
    }

    static func req(_ path: String = "/", method: String = "GET", scheme: String = "http", authority: String = "svc", port: Int = 80,
                    _ headers: [String: String] = [:]) -> FakeRequest {
        FakeRequest(authority, path: path, method: method, scheme: scheme, port: port, headers: headers)
    }

    static func req(_ headers: [String: String]) -> FakeRequest { FakeRequest("svc", headers: headers) }

    let rows: [Row] = [
        // uri
        Row("{uri: {exact: /api}}", [
            (req("/api"), true, "exact"),
            (req("/api?x=1"), true, "exact ignores the query string"),
            (req("/api/"), false, "no trailing slash"),
            (req("/API"), false, "case-sensitive by default"),
        ]),
        Row("{uri: {prefix: /api}}", [
            (req("/api"), true, "prefix equal to the path"),
            (req("/apis/x"), true, "a string prefix, not a path segment"),
            (req("/api?x=1"), true, "prefix with a query string"),
            (req("/ap"), false, "shorter"),
            (req("/v1/api"), false, "not at the start"),
        ]),
        Row("{uri: {prefix: \"/api?debug\"}}", [
            (req("/api?debug=1"), true, "Envoy's prefix covers the whole :path, query included"),
            (req("/api"), false, "the query is part of the prefix"),
        ]),
        Row("{uri: {regex: \"/v[0-9]+/items\"}}", [
            (req("/v12/items"), true, "regex"),
            (req("/v1/items?page=2"), true, "regex ignores the query string"),
            (req("/v1/items/3"), false, "regex must match the whole path"),
            (req("/x/v1/items"), false, "regex is anchored at the start too"),
        ]),
        Row("{uri: {prefix: /Static/}, ignoreUriCase: true}", [
            (req("/static/app.js"), true, "ignoreUriCase prefix"),
            (req("/STATIC/APP.JS"), true, "ignoreUriCase prefix, upper case"),
            (req("/stat"), false, "still a prefix"),
        ]),
        Row("{uri: {exact: /Login}, ignoreUriCase: true}", [
            (req("/LOGIN?next=/"), true, "ignoreUriCase exact, query ignored"),
            (req("/login/"), false, "still exact"),
        ]),
        Row("{uri: {regex: \"/[a-z]+\"}, ignoreUriCase: true}", [
            (req("/abc"), true, "regex"),
            (req("/ABC"), false, "ignoreUriCase does not apply to regex (Envoy)"),
        ]),
        // method, scheme, authority, port
        Row("{method: {exact: POST}}", [
            (req(method: "POST"), true, "method"),
            (req(method: "post"), false, "method is case-sensitive"),
        ]),
        Row("{method: {regex: \"PUT|PATCH\"}}", [
            (req(method: "PATCH"), true, "alternation"),
            (req(method: "PATCHX"), false, "whole value"),
        ]),
        Row("{scheme: {exact: https}}", [
            (req(scheme: "https"), true, "scheme"),
            (req(scheme: "http"), false, "scheme"),
        ]),
        Row("{authority: {exact: \"svc:8080\"}}", [
            (req(authority: "svc:8080"), true, "authority includes the port (Envoy :authority)"),
            (req(authority: "svc"), false, "without the port"),
        ]),
        Row("{authority: {prefix: svc}}", [
            (req(authority: "svc:9090"), true, "authority prefix"),
        ]),
        Row("{authority: {regex: \"svc(:[0-9]+)?\"}}", [
            (req(authority: "svc"), true, "regex"),
            (req(authority: "svc:80"), true, "regex with port"),
            (req(authority: "svc.default"), false, "whole value"),
        ]),
        Row("{port: 9080}", [
            (req(port: 9080), true, "listener port"),
            (req(port: 80), false, "other port"),
        ]),
        // headers
        Row("{headers: {X-User: {exact: alice}}}", [
            (req(["x-user": "alice"]), true, "a mixed-case name in the rule matches a lowercase request header"),
            (req(["X-USER": "alice"]), true, "header names are case-insensitive on the wire"),
            (req(["x-user": "Alice"]), false, "values are case-sensitive"),
            (req(["x-user": "alice "]), false, "exact means exact"),
            (req(), false, "absent"),
        ]),
        Row("{headers: {x-user: {exact: \"\"}}}", [
            (req(["x-user": ""]), true, "exact empty value"),
            (req(), false, "exact \"\" still needs the header"),
        ]),
        Row("{headers: {x-user: {prefix: \"\"}}}", [
            (req(["x-user": "anything"]), true, "empty prefix: any value"),
            (req(), false, "but the header must be there"),
        ]),
        Row("{headers: {x-user: {regex: \"u-[0-9]+\"}}}", [
            (req(["x-user": "u-42"]), true, "regex"),
            (req(["x-user": "u-42x"]), false, "regex must match the whole value"),
            (req(["x-user": "xu-42"]), false, "regex must match the whole value"),
        ]),
        Row("{headers: {x-canary: {}}}", [
            (req(["x-canary": ""]), true, "{} is presence, even with an empty value"),
            (req(["x-canary": "1"]), true, "presence"),
            (req(), false, "absent"),
        ]),
        Row("{headers: {x-a: {exact: \"1\"}, x-b: {exact: \"2\"}}}", [
            (req(["x-a": "1", "x-b": "2"]), true, "headers are ANDed"),
            (req(["x-a": "1"]), false, "one missing"),
        ]),
        Row("{headers: {\":authority\": {exact: \"svc:8080\"}, \":path\": {prefix: /x}, \":method\": {exact: GET}}}", [
            (req("/x/1", authority: "svc:8080"), true, "pseudo-headers as in Envoy"),
            (req("/y", authority: "svc:8080"), false, ":path prefix"),
        ]),
        // withoutHeaders
        Row("{withoutHeaders: {x-internal: {}}}", [
            (req(), true, "absent header: matches"),
            (req(["x-internal": ""]), false, "present, even empty: does not match"),
        ]),
        Row("{withoutHeaders: {x-tenant: {exact: acme}}}", [
            (req(["x-tenant": "other"]), true, "another value"),
            (req(), true, "absent"),
            (req(["x-tenant": "acme"]), false, "the excluded value"),
        ]),
        Row("{withoutHeaders: {x-tenant: {exact: \"\"}}}", [
            (req(["x-tenant": "a"]), true, "non-empty value"),
            (req(), false, "Istio treats a missing header as empty for withoutHeaders"),
            (req(["x-tenant": ""]), false, "empty value"),
        ]),
        Row("{withoutHeaders: {x-v: {regex: \"v[0-9]\"}}, headers: {x-w: {}}}", [
            (req(["x-w": "1", "x-v": "v10"]), true, "regex is whole-value here too"),
            (req(["x-w": "1", "x-v": "v1"]), false, "excluded"),
        ]),
        // queryParams
        Row("{queryParams: {debug: {exact: \"\"}}}", [
            (req("/x?debug"), true, "?debug: a parameter without value is \"\""),
            (req("/x?debug="), true, "?debug= is \"\""),
            (req("/x?a=1&debug"), true, "among others"),
            (req("/x?debug=1"), false, "a value is not \"\""),
            (req("/x?debugx"), false, "another name"),
            (req("/x"), false, "absent"),
        ]),
        Row("{queryParams: {v: {exact: \"2\"}}}", [
            (req("/x?v=2"), true, "exact"),
            (req("/x?v=2&v=3"), true, "the first occurrence is matched"),
            (req("/x?v=3&v=2"), false, "only the first occurrence counts"),
            (req("/x?V=2"), false, "names are case-sensitive"),
            (req("/x?v=2#frag"), true, "the fragment is not part of the value"),
        ]),
        Row("{queryParams: {q: {exact: \"a b\"}}}", [
            (req("/s?q=a%20b"), false, "no percent-decoding (Envoy matches the raw value)"),
        ]),
        Row("{queryParams: {q: {exact: \"a%20b\"}}}", [
            (req("/s?q=a%20b"), true, "the raw value"),
        ]),
        Row("{queryParams: {page: {regex: \"[0-9]+\"}}}", [
            (req("/x?page=12"), true, "regex"),
            (req("/x?page=12a"), false, "whole value"),
        ]),
        Row("{queryParams: {q: {prefix: ab}}}", [
            (req("/x?q=abc"), true, "prefix"),
            (req("/x?q=b"), false, "prefix"),
        ]),
        Row("{queryParams: {flag: {}}}", [
            (req("/x?flag"), true, "presence"),
            (req("/x?flag=no"), true, "presence with a value"),
            (req("/x"), false, "absent"),
        ]),
        // cookies (Remora extension) and the Istio way
        Row("{cookies: {session: {exact: abc}}}", [
            (req(["cookie": "session=abc"]), true, "alone"),
            (req(["cookie": "a=1; session=abc; b=2"]), true, "among other cookies"),
            (req(["cookie": "a=1;session=abc"]), true, "no space after ;"),
            (req(["cookie": "session=\"abc\""]), true, "quoted value (RFC 6265)"),
            (req(["cookie": "session=abcd"]), false, "exact"),
            (req(["cookie": "xsession=abc"]), false, "the name is a whole name"),
            (req(["cookie": "a=session=abc"]), false, "not inside another cookie's value"),
            (req(), false, "no Cookie header"),
        ]),
        Row("{cookies: {session: {regex: \"[0-9a-f]{4}\"}}}", [
            (req(["cookie": "x=1; session=beef"]), true, "regex"),
            (req(["cookie": "session=beefy"]), false, "whole value"),
        ]),
        Row("{cookies: {flag: {}}}", [
            (req(["cookie": "a=1; flag"]), true, "presence without value"),
            (req(["cookie": "flag=on"]), true, "presence"),
            (req(["cookie": "flags=on"]), false, "another name"),
        ]),
        Row("{headers: {cookie: {regex: \"^(.*?;)?(user=jason)(;.*)?$\"}}}", [
            (req(["cookie": "a=1;user=jason;b=2"]), true, "the Istio way: a regex on the cookie header"),
            (req(["cookie": "user=jasonx"]), false, "the regex decides"),
        ]),
    ]

    func testMatchTable() throws {
        var checked = 0
        for row in rows {
            let s = try TestConfig.mesh("""
              - match: [\(row.entry)]
                route: [{destination: {host: hit}}]
              - route: [{destination: {host: miss}}]
            """)
            for (req, expected, why) in row.checks {
                let hit = s.ruleIndex(req) == 0
                XCTAssertEqual(hit, expected, "\(row.entry) on \(req.method) \(req.authority)\(req.path) \(req.headers): \(why)", line: row.line)
                // explain (a linear scan) agrees with resolve.
                XCTAssertEqual(s.explain(listener: 0, req).first?.matched, expected, "explain: \(row.entry): \(why)", line: row.line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 90)
    }

    /// Repeated Cookie headers: the proxy joins them with "; ", a joined list may also use ",".
    func testCookieAcrossRepeatedHeaders() throws {
        let s = try TestConfig.mesh("""
          - match: [{cookies: {session: {exact: abc}}}]
            route: [{destination: {host: hit}}]
        """)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["cookie": "a=1; b=2; session=abc"])), 0)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["cookie": "a=1, session=abc"])), 0)
    }

    /// The authority is reduced to a host the way HostNames.stripPort does (case, port, trailing dot, IPv6).
    func testAuthorityNormalization() throws {
        let s = try TestConfig.mesh("  - route: [{destination: {host: a}}]", hosts: "[svc, \"svc.example.com\", \"*.wild.io\", \"[::1]\"]")
        for a in ["svc", "SVC", "svc:8080", "Svc.:80", "svc.example.com.", "SVC.EXAMPLE.COM:443", "x.wild.io", "A.B.WILD.IO:1",
                  "[::1]", "[::1]:15001", "svc.default.svc.cluster.local"] {
            XCTAssertNotNil(s.resolveMesh(FakeRequest(a)), a)
        }
        for a in ["wild.io", "svc.other", "[::2]:80", "svc:8080:9", "sv", "", "[::1"] {
            XCTAssertNil(s.resolveMesh(FakeRequest(a)), a)
        }
    }

    func testMatchedPrefixReported() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {exact: /e}}, {uri: {prefix: /Api/}, ignoreUriCase: true}, {uri: {regex: "/r.*"}}, {headers: {x: {}}}]
            route: [{destination: {host: a}}]
        """)
        XCTAssertNil(s.resolveMesh(FakeRequest("svc", path: "/e"))!.matchedPrefix, "exact")
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", path: "/api/x"))!.matchedPrefix, "/Api/", "the prefix as written")
        XCTAssertNil(s.resolveMesh(FakeRequest("svc", path: "/r1"))!.matchedPrefix, "regex")
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", path: "/z", headers: ["x": "1"]))!.matchedPrefix, "/",
                       "no uri condition: Envoy's prefix \"/\" route")
        XCTAssertNil(s.resolveMesh(FakeRequest("svc", path: "/z")))
    }

    func testResolveCoversEveryAction() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /old}}]
            redirect: {uri: /new}
          - match: [{uri: {exact: /teapot}}]
            directResponse: {status: 418}
          - route: [{destination: {host: other}}]
        """)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", path: "/old/x")), 0)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", path: "/teapot")), 1)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", path: "/")), 2)
        XCTAssertNil(s.resolveMesh(FakeRequest("elsewhere")), "no VirtualService for the host")
        XCTAssertNil(s.resolve(listener: 99, FakeRequest("svc")), "no such listener")
    }

    func testWeighted80_20WithinThreePoints() throws {
        let s = try TestConfig.mesh("""
          - route:
            - {destination: {host: stable}, weight: 80}
            - {destination: {host: canary}, weight: 20}
        """)
        let e = try XCTUnwrap(s.resolveMesh(FakeRequest("svc"))).entry
        var rng = SeededRandom(seed: 0x5EED)
        var counts = [0, 0]
        let n = 10_000
        for _ in 0..<n { counts[e.pickDestination(random: rng.next32())] += 1 }
        XCTAssertEqual(Double(counts[0]) / Double(n), 0.80, accuracy: 0.03)
        XCTAssertEqual(Double(counts[1]) / Double(n), 0.20, accuracy: 0.03)
        XCTAssertEqual(s.clusters[e.destinations[e.pickDestination(random: 79)].cluster].host, "stable")
        XCTAssertEqual(s.clusters[e.destinations[e.pickDestination(random: 80)].cluster].host, "canary")
        XCTAssertEqual(e.pickCluster(random: 12345), e.destinations[e.pickDestination(random: 12345)].cluster)
    }

    func testPickDestinationEdgeCases() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /one}}]
            route: [{destination: {host: only}}]
          - match: [{uri: {prefix: /r}}]
            redirect: {uri: /x}
          - route:
            - {destination: {host: a}, weight: 0}
            - {destination: {host: b}, weight: 100}
        """)
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", path: "/one"))!.entry.pickDestination(random: 7), 0)
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", path: "/r"))!.entry.pickDestination(random: 7), -1, "no destinations")
        let z = s.resolveMesh(FakeRequest("svc", path: "/z"))!.entry
        var rng = SeededRandom(seed: 1)
        for _ in 0..<1000 { XCTAssertEqual(z.pickDestination(random: rng.next32()), 1, "weight 0 is never chosen") }
    }
}
