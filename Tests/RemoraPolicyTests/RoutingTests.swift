import RemoraConfig
import RemoraPolicy
import XCTest

final class RoutingTests: XCTestCase {
    private func compile(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> Snapshot {
        try Snapshot.compile(try ConfigLoader.parse(text, source: "test.yaml"))
    }

    /// A mesh VirtualService named `vs` in namespace `default` with the given hosts and http rules.
    private func mesh(hosts: String = "[svc]", _ http: String) throws -> Snapshot {
        try compile("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: \(hosts)
          http:
        \(http)
        """)
    }

    private func dest(_ s: Snapshot, _ req: FakeRequest) -> String? { s.destinationHost(15001, req) }

    func testFirstMatchWins() throws {
        let s = try mesh("""
          - match: [{uri: {prefix: /api}}]
            route: [{destination: {host: api}}]
          - match: [{uri: {prefix: /api/v2}}]
            route: [{destination: {host: never}}]
          - route: [{destination: {host: fallback}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/api/v2/x")), "api")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/other")), "fallback")
    }

    func testConditionsAreANDedAndEntriesORed() throws {
        let s = try mesh("""
          - match:
            - headers: {x-a: {exact: "1"}}
              method: {exact: POST}
            - queryParams: {debug: {exact: "true"}}
            route: [{destination: {host: hit}}]
          - route: [{destination: {host: miss}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", method: "POST", headers: ["x-a": "1"])), "hit")
        XCTAssertEqual(dest(s, FakeRequest("svc", method: "GET", headers: ["x-a": "1"])), "miss", "AND inside one entry")
        XCTAssertEqual(dest(s, FakeRequest("svc", method: "POST")), "miss")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/x?a=b&debug=true")), "hit", "OR across entries")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/x?debug=truex")), "miss")
        let why = s.explain(listener: 0, FakeRequest("svc", path: "/x?debug=no", method: "POST", headers: ["x-a": "2"]))
        XCTAssertEqual(why.first?.reasons, ["match[0]: header x-a \"2\" does not match exact \"1\"",
                                            "match[1]: query parameter debug \"no\" does not match exact \"true\""])
    }

    func testRegexIsAFullMatch() throws {
        let s = try mesh("""
          - match: [{headers: {userid: {regex: "user-[0-9]+"}}}]
            route: [{destination: {host: hit}}]
          - match: [{uri: {regex: "/v[0-9]/items"}}]
            route: [{destination: {host: items}}]
          - route: [{destination: {host: miss}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["userid": "user-42"])), "hit")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["userid": "user-42x"])), "miss", "partial match is not a match")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["userid": "xuser-42"])), "miss")
        // The URI regex applies to the path without its query.
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/v1/items?page=2")), "items")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/v1/items/3")), "miss")
    }

    func testIstioCookieRegexAndCookieExtension() throws {
        let s = try mesh("""
          - match: [{cookies: {session: {exact: abc}}}]
            route: [{destination: {host: by-cookie}}]
          - match: [{headers: {cookie: {regex: "^(.*?;)?(user=jason)(;.*)?$"}}}]
            route: [{destination: {host: by-regex}}]
          - match: [{cookies: {flag: {}}}]
            route: [{destination: {host: has-flag}}]
          - route: [{destination: {host: other}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "a=1; session=abc; b=2"])), "by-cookie")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "session=abcd"])), "other")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "xsession=abc"])), "other")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "a=1;user=jason;b=2"])), "by-regex")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "flag"])), "has-flag")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["Cookie": "x=1;  flag=on"])), "has-flag")
        XCTAssertEqual(dest(s, FakeRequest("svc")), "other")
    }

    func testHeaderPresenceWithoutHeadersAndPrefix() throws {
        let s = try mesh("""
          - match: [{headers: {x-canary: {}}, withoutHeaders: {x-internal: {}}}]
            route: [{destination: {host: canary}}]
          - match: [{headers: {x-version: {prefix: v2}}}]
            route: [{destination: {host: v2}}]
          - match: [{withoutHeaders: {x-tenant: {exact: acme}}}]
            route: [{destination: {host: not-acme}}]
          - route: [{destination: {host: acme}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["X-Canary": ""])), "canary", "presence, even empty")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["x-canary": "1", "x-internal": "1", "x-tenant": "acme"])), "acme")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["x-version": "v2.1", "x-tenant": "acme"])), "v2")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["x-tenant": "other"])), "not-acme")
        XCTAssertEqual(dest(s, FakeRequest("svc")), "not-acme")
        XCTAssertEqual(dest(s, FakeRequest("svc", headers: ["x-tenant": "acme"])), "acme")
    }

    func testUriMatchesAndIgnoreUriCase() throws {
        let s = try mesh("""
          - match: [{uri: {exact: /Login}, ignoreUriCase: true}]
            route: [{destination: {host: login}}]
          - match: [{uri: {exact: /exact}}]
            route: [{destination: {host: exact}}]
          - match: [{uri: {prefix: /Static/}, ignoreUriCase: true}]
            route: [{destination: {host: static}}]
          - route: [{destination: {host: other}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/LOGIN")), "login")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/login?next=/")), "login")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/exact?x=1")), "exact", "exact ignores the query string")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/Exact")), "other", "case-sensitive by default")
        XCTAssertEqual(dest(s, FakeRequest("svc", path: "/static/app.js")), "static")
    }

    func testMethodSchemeAuthorityAndPort() throws {
        let s = try mesh("""
          - match: [{method: {regex: "PUT|PATCH"}}]
            route: [{destination: {host: writes}}]
          - match: [{scheme: {exact: https}}]
            route: [{destination: {host: tls}}]
          - match: [{authority: {exact: "svc:8080"}}]
            route: [{destination: {host: by-authority}}]
          - match: [{port: 9090}]
            route: [{destination: {host: by-port}}]
          - route: [{destination: {host: other}}]
        """)
        XCTAssertEqual(dest(s, FakeRequest("svc", method: "PATCH")), "writes")
        XCTAssertEqual(dest(s, FakeRequest("svc", scheme: "https")), "tls")
        XCTAssertEqual(dest(s, FakeRequest("svc:8080")), "by-authority")
        XCTAssertEqual(dest(s, FakeRequest("svc", port: 9090)), "by-port")
        XCTAssertEqual(dest(s, FakeRequest("svc")), "other")
    }

    func testWildcardHostsAndSpecificity() throws {
        // A catch-all `*` is for gateways (Istio rejects it on the mesh), so this runs on a gateway listener.
        let s = try compile("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: star}
        spec:
          hosts: ["*"]
          gateways: [gw]
          http: [{route: [{destination: {host: star}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: example}
        spec:
          hosts: ["*.example.com"]
          gateways: [gw]
          http: [{route: [{destination: {host: example}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: api}
        spec:
          hosts: ["*.api.example.com", "exact.example.com"]
          gateways: [gw, mesh]
          http:
          - match: [{headers: {x-only: {exact: "1"}}}]
            route: [{destination: {host: api}}]
        """)
        XCTAssertEqual(s.destinationHost(80, FakeRequest("www.example.com")), "example")
        XCTAssertEqual(s.destinationHost(80, FakeRequest("WWW.Example.COM:443")), "example")
        XCTAssertEqual(s.destinationHost(80, FakeRequest("v1.api.example.com", headers: ["x-only": "1"])), "api")
        XCTAssertEqual(s.destinationHost(80, FakeRequest("exact.example.com", headers: ["x-only": "1"])), "api")
        XCTAssertEqual(s.destinationHost(80, FakeRequest("example.com")), "star", "*.example.com does not cover example.com")
        XCTAssertEqual(s.destinationHost(80, FakeRequest("other.org")), "star")
        // The most specific host decides, without falling back to less specific ones (Envoy virtual hosts).
        XCTAssertNil(s.routeName(80, FakeRequest("exact.example.com")))
        XCTAssertNil(s.routeName(80, FakeRequest("v1.api.example.com")))
        // On the mesh only the VirtualService bound there applies.
        XCTAssertEqual(s.destinationHost(15001, FakeRequest("a.api.example.com", headers: ["x-only": "1"])), "api")
        XCTAssertNil(s.routeName(15001, FakeRequest("www.example.com")))
    }

    func testShortNamesResolveInTheirNamespace() throws {
        let s = try compile("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings, namespace: bookinfo}
        spec:
          hosts: [ratings.bookinfo.svc.cluster.local]
          http: [{route: [{destination: {host: ratings.bookinfo.svc.cluster.local}}]}]
        """)
        for h in ["reviews", "reviews.bookinfo", "reviews.bookinfo.svc", "reviews.bookinfo.svc.cluster.local:9080"] {
            XCTAssertEqual(s.routeName(15001, FakeRequest(h)), "bookinfo/reviews#0", h)
        }
        XCTAssertNil(s.routeName(15001, FakeRequest("reviews.default.svc.cluster.local")))
        for h in ["ratings", "ratings.bookinfo", "ratings.bookinfo.svc", "ratings.bookinfo.svc.cluster.local"] {
            XCTAssertEqual(s.routeName(15001, FakeRequest(h)), "bookinfo/ratings#0", h)
        }
    }

    func testWeightedDestinations() throws {
        let s = try mesh("""
          - name: split
            route:
            - {destination: {host: a}, weight: 75}
            - {destination: {host: b}, weight: 25}
            - {destination: {host: c}, weight: 0}
            timeout: 2s
        """)
        guard case .route(let e) = s.route(listener: 0, FakeRequest("svc")) else { return XCTFail("no route") }
        XCTAssertEqual(e.name, "default/vs#split")
        XCTAssertEqual(e.timeoutMs, 2000)
        XCTAssertEqual(e.destinations.map(\.weight), [75, 25, 0])
        var counts: [String: Int] = [:]
        var rng = SystemRandomNumberGenerator()
        let n = 100_000
        for _ in 0..<n { counts[s.clusters[e.pickCluster(random: rng.next())].host, default: 0] += 1 }
        XCTAssertEqual(Double(counts["a", default: 0]) / Double(n), 0.75, accuracy: 0.01)
        XCTAssertEqual(Double(counts["b", default: 0]) / Double(n), 0.25, accuracy: 0.01)
        XCTAssertNil(counts["c"], "a zero weight is never chosen")
        // Deterministic boundaries: 0..74 → a, 75..99 → b.
        XCTAssertEqual(s.clusters[e.pickCluster(random: 74)].host, "a")
        XCTAssertEqual(s.clusters[e.pickCluster(random: 75)].host, "b")
        XCTAssertEqual(s.clusters[e.pickCluster(random: 199)].host, "b")
        XCTAssertEqual(s.clusters[e.pickCluster(random: UInt32.max)].host, "b")
    }

    func testRedirectAndDirectResponseAreMatchedButNotRouted() throws {
        let s = try mesh("""
          - match: [{uri: {exact: /old}}]
            redirect: {uri: /new}
          - match: [{uri: {exact: /teapot}}]
            directResponse: {status: 418}
          - route: [{destination: {host: other}}]
        """)
        XCTAssertNil(s.routeName(15001, FakeRequest("svc", path: "/old")), "first match wins: the redirect, not the later route")
        let e = s.matchedRule(listener: 0, FakeRequest("svc", path: "/old"))
        if case .redirect(let r)? = e?.action { XCTAssertEqual(r.uri, "/new") } else { XCTFail("\(String(describing: e?.action))") }
        if case .directResponse(let d)? = s.matchedRule(listener: 0, FakeRequest("svc", path: "/teapot"))?.action {
            XCTAssertEqual(d.status, 418)
        } else { XCTFail() }
        let steps = s.explain(listener: 0, FakeRequest("svc", path: "/x"))
        XCTAssertEqual(steps.map(\.matched), [false, false, true])
        XCTAssertEqual(steps[0].reasons, ["uri \"/x\" does not match exact \"/old\""])
        XCTAssertEqual(steps[2].reasons, [])
    }

    func testMirrorsGetClusters() throws {
        let s = try mesh("""
          - route: [{destination: {host: main}}]
            mirror: {host: shadow, port: {number: 8080}}
            mirrorPercentage: {value: 10}
        """)
        guard case .route(let e) = s.route(listener: 0, FakeRequest("svc")) else { return XCTFail() }
        XCTAssertEqual(e.mirrors.count, 1)
        XCTAssertEqual(s.clusters[e.mirrors[0].cluster].name, "outbound|8080||shadow")
        XCTAssertEqual(e.mirrors[0].percentage, 10)
    }
}
