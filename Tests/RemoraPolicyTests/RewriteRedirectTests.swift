import RemoraConfig
import RemoraPolicy
import XCTest

/// rewrite (uri, uriRegexRewrite, authority), redirect and directResponse, as Istio configures Envoy.
final class RewriteRedirectTests: XCTestCase {
    /// Resolves `path` and rewrites it with the rule's actions, as the proxy does.
    private func rewritten(_ s: Snapshot, _ path: String, headers: [String: String] = [:]) -> String? {
        guard let m = s.resolveMesh(FakeRequest("svc", path: path, headers: headers)) else { return "no match" }
        return m.entry.actions.rewritePath(path, matchedPrefix: m.matchedPrefix)
    }

    func testRewriteUriReplacesThePrefixOrTheWholePath() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /api/}}]
            rewrite: {uri: /v2/}
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /Static}, ignoreUriCase: true}]
            rewrite: {uri: /assets}
            route: [{destination: {host: a}}]
          - match: [{uri: {exact: /old}}]
            rewrite: {uri: /new}
            route: [{destination: {host: a}}]
          - match: [{uri: {regex: "/r/[0-9]+"}}]
            rewrite: {uri: /regex}
            route: [{destination: {host: a}}]
          - match: [{headers: {x-v2: {}}}]
            rewrite: {uri: /v2/}
            route: [{destination: {host: a}}]
          - route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(rewritten(s, "/api/users?id=1"), "/v2/users?id=1", "prefix replaced, query kept")
        XCTAssertEqual(rewritten(s, "/api/"), "/v2/")
        XCTAssertEqual(rewritten(s, "/STATIC/app.js"), "/assets/app.js", "a case-insensitive prefix is replaced whatever its case")
        XCTAssertEqual(rewritten(s, "/old?q=1"), "/new?q=1", "exact: the whole path, query kept")
        XCTAssertEqual(rewritten(s, "/r/42?x"), "/regex?x", "regex: the whole path")
        XCTAssertEqual(rewritten(s, "/a/b", headers: ["x-v2": "1"]), "/v2/a/b",
                       "no uri condition: Istio's route is prefix \"/\", so only the leading / is replaced")
        XCTAssertNil(rewritten(s, "/other"), "no rewrite configured")
    }

    func testRewriteToTheSamePathIsNil() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /same}}]
            rewrite: {uri: /same}
            route: [{destination: {host: a}}]
        """)
        XCTAssertNil(rewritten(s, "/same/x"))
        XCTAssertTrue(s.resolveMesh(FakeRequest("svc", path: "/same"))!.entry.actions.hasPathRewrite)
    }

    func testRegexRewriteWithCaptures() throws {
        let s = try TestConfig.mesh(#"""
          - match: [{uri: {prefix: /service/}}]
            rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\2/instance/\\1"}}
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /xxx/}}]
            rewrite: {uriRegexRewrite: {match: "one", rewrite: "two"}}
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /q}}]
            rewrite: {uriRegexRewrite: {match: "\\?", rewrite: "!"}}
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /whole}}]
            rewrite: {uriRegexRewrite: {match: ".*", rewrite: "/fixed\\0"}}
            route: [{destination: {host: a}}]
        """#)
        // Envoy's documented examples.
        XCTAssertEqual(rewritten(s, "/service/foo/v1/api?x=1"), "/v1/api/instance/foo?x=1", "captures; the query is not rewritten")
        XCTAssertEqual(rewritten(s, "/xxx/one/yyy/one/zzz"), "/xxx/two/yyy/two/zzz", "every match is replaced")
        XCTAssertNil(rewritten(s, "/q/a?b"), "the query is not part of the rewritten path")
        XCTAssertEqual(rewritten(s, "/whole"), "/fixed/whole", "\\0 is the whole match")
        XCTAssertNil(rewritten(s, "/service/nomatch"), "no match: unchanged")
    }

    func testBadRegexRewriteIsAConfigError() {
        let errors = TestConfig.errors(#"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [svc]
          http:
          - rewrite: {uriRegexRewrite: {match: "^/(a)/(b)$", rewrite: "/\\3"}}
            route: [{destination: {host: a}}]
        """#)
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors.first?.hasPrefix("spec.http[0].rewrite.uriRegexRewrite.rewrite: ") ?? false, "\(errors)")
    }

    func testAuthorityRewrite() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /a}}]
            rewrite: {authority: new.example.com}
            headers: {request: {set: {Host: ignored.example.com}}}
            route:
            - destination: {host: a}
              headers: {request: {set: {host: dest.example.com}}}
          - match: [{uri: {prefix: /b}}]
            headers: {request: {set: {":authority": set.example.com}, add: {host: add.example.com}}}
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /c}}]
            route:
            - {destination: {host: a}, weight: 50, headers: {request: {set: {host: one.example.com}}}}
            - {destination: {host: b}, weight: 50}
          - route: [{destination: {host: a}}]
        """)
        func actions(_ p: String) -> RouteActions { s.resolveMesh(FakeRequest("svc", path: p))!.entry.actions }
        XCTAssertEqual(actions("/a").authorityRewrite, "new.example.com", "rewrite.authority wins over a Host header op")
        XCTAssertEqual(actions("/a").authorityRewrite(destination: 0), "new.example.com", "and over the destination's")
        XCTAssertEqual(actions("/b").authorityRewrite, "set.example.com", "set wins over add")
        XCTAssertNil(actions("/c").authorityRewrite)
        XCTAssertEqual(actions("/c").authorityRewrite(destination: 0), "one.example.com", "per destination")
        XCTAssertNil(actions("/c").authorityRewrite(destination: 1))
        XCTAssertNil(actions("/z").authorityRewrite)
        // The authority never appears as a header operation (Envoy cannot mutate Host that way).
        XCTAssertTrue(actions("/b").requestHeaders(destination: 0).isEmpty)
    }

    private func redirect(_ s: Snapshot, scheme: String = "http", authority: String = "svc", _ path: String,
                          listenerPort: Int? = nil) -> String? {
        // Resolved as host svc; the authority given is what the client sent.
        guard let m = s.resolveMesh(FakeRequest("svc", path: path, scheme: scheme)),
              let r = m.entry.actions.redirect(scheme: scheme, authority: authority, path: path, matchedPrefix: m.matchedPrefix,
                                               listenerPort: listenerPort) else { return nil }
        return "\(r.status) \(r.location)"
    }

    func testRedirect() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {prefix: /old}}]
            redirect: {uri: /new}
          - match: [{uri: {prefix: /query}}]
            redirect: {uri: "/q?from=redirect"}
          - match: [{uri: {prefix: /https}}]
            redirect: {scheme: https, redirectCode: 308}
          - match: [{uri: {prefix: /host}}]
            redirect: {authority: other.example.com, uri: /landing, redirectCode: 302}
          - match: [{uri: {prefix: /port}}]
            redirect: {port: 8443, scheme: https}
          - match: [{uri: {prefix: /p443}}]
            redirect: {port: 443, scheme: https}
          - match: [{uri: {prefix: /default}}]
            redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
          - match: [{uri: {prefix: /fromreq}}]
            redirect: {scheme: https, derivePort: FROM_REQUEST_PORT}
          - match: [{uri: {prefix: /relative}}]
            redirect: {uri: relative}
          - route: [{destination: {host: a}}]
        """)
        XCTAssertEqual(redirect(s, "/old/page?x=1"), "301 http://svc/new?x=1",
                       "301 by default; uri replaces the whole path even after a prefix match (Istio); query kept")
        XCTAssertEqual(redirect(s, "/query?x=1"), "301 http://svc/q?from=redirect", "a query in uri replaces the request's")
        XCTAssertEqual(redirect(s, authority: "svc:80", "/https?a"), "308 https://svc/https?a",
                       "scheme change drops the old scheme's default port")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/https"), "308 https://svc:8080/https", "a non-default port is kept")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/host/x"), "302 http://other.example.com/landing")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/port"), "301 https://svc:8443/port", "port replaces the request's")
        XCTAssertEqual(redirect(s, authority: "svc:80", "/p443"), "301 https://svc/p443", "no explicit :443 for https")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/p443"), "301 https://svc:8080/p443",
                       "Istio turns port 443 into no port at all, and Envoy then keeps a non-default request port")
        XCTAssertEqual(redirect(s, authority: "svc:80", "/default"), "301 https://svc/default")
        XCTAssertEqual(redirect(s, authority: "svc", "/default"), "301 https://svc/default")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/fromreq"), "301 https://svc:8080/fromreq")
        XCTAssertEqual(redirect(s, authority: "svc:8080", "/fromreq", listenerPort: 9443), "301 https://svc:9443/fromreq",
                       "Istio uses the listener port")
        XCTAssertEqual(redirect(s, authority: "[::1]:80", "/fromreq", listenerPort: 443), "301 https://[::1]/fromreq",
                       "IPv6 literal: its default port dropped on the scheme change")
        XCTAssertEqual(redirect(s, authority: "[::1]:8080", "/fromreq", listenerPort: 9443), "301 https://[::1]:9443/fromreq")
        XCTAssertEqual(redirect(s, "/relative"), "301 http://svc/relative", "Envoy makes the path absolute")
        XCTAssertNil(redirect(s, "/other"), "not a redirect rule")
        // The API without the listener port.
        let m = s.resolveMesh(FakeRequest("svc", path: "/old"))!
        let r = m.entry.actions.redirect(scheme: "https", authority: "svc:443", path: "/old", matchedPrefix: m.matchedPrefix)
        XCTAssertEqual(r?.status, 301)
        XCTAssertEqual(r?.location, "https://svc:443/new", "no scheme change, no port given: the authority stays as sent")
    }

    func testDirectResponse() throws {
        let s = try TestConfig.mesh("""
          - match: [{uri: {exact: /s}}]
            directResponse: {status: 503, body: {string: "unavailable\\n"}}
          - match: [{uri: {exact: /b}}]
            directResponse: {status: 200, body: {bytes: "aGVsbG8gd29ybGQ="}}
          - match: [{uri: {exact: /u}}]
            directResponse: {status: 200, body: {bytes: "_-8"}}
          - match: [{uri: {exact: /none}}]
            directResponse: {status: 204}
          - route: [{destination: {host: a}}]
        """)
        func dr(_ p: String) -> (status: Int, body: [UInt8])? { s.resolveMesh(FakeRequest("svc", path: p))!.entry.actions.directResponse }
        XCTAssertEqual(dr("/s")?.status, 503)
        XCTAssertEqual(dr("/s").map { String(decoding: $0.body, as: UTF8.self) }, "unavailable\n")
        XCTAssertEqual(dr("/b")?.body, Array("hello world".utf8), "base64 bytes")
        XCTAssertEqual(dr("/u")?.body, [0xFF, 0xEF], "URL-safe alphabet without padding, as protobuf JSON accepts")
        XCTAssertEqual(dr("/none")?.status, 204)
        XCTAssertEqual(dr("/none")?.body, [])
        XCTAssertNil(dr("/other"))
        XCTAssertTrue(s.resolveMesh(FakeRequest("svc", path: "/s"))!.entry.destinations.isEmpty)
    }

    func testBadBase64IsAConfigError() {
        let errors = TestConfig.errors("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [svc]
          http:
          - directResponse: {status: 200, body: {bytes: "not base64!"}}
        """)
        XCTAssertEqual(errors, ["spec.http[0].directResponse.body.bytes: not valid base64"])
    }
}
