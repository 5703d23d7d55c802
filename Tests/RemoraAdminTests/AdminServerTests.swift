import Foundation
import RemoraConfig
import RemoraIO
import RemoraPolicy
import XCTest
@testable import RemoraAdmin

final class AdminServerTests: XCTestCase {
    var h: Harness!

    override func setUpWithError() throws { h = try Harness() }
    override func tearDown() { h?.stop(); h = nil }

    private func errors(_ r: TestResponse) -> [[String: Any]] { r.json["errors"] as? [[String: Any]] ?? [] }

    // MARK: PUT /config

    func testPutValidConfigInstallsAndAnswersWithTheNewVersion() throws {
        let c = try h.client()
        let body = Fixtures.featureBranchWith(adservice: Fixtures.adserviceJSON(extraUser: "alice"))
        let r = try c.request("PUT", "/config", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.json["version"] as? Int, 2)
        XCTAssertEqual(r.json["changed"] as? [String], ["VirtualService default/adservice updated"])
        XCTAssertEqual(r.headers["etag"], "\"2\"")
        XCTAssertEqual(r.headers["content-type"], "application/json")
        XCTAssertEqual(h.host.installs, [2])
        // The installed snapshot routes alice to the branch.
        let snap = try XCTUnwrap(h.host.lastSnapshot)
        XCTAssertEqual(snap.routeEntries.filter { $0.virtualService.name == "adservice" }.count, 3)

        let g = try c.request("GET", "/config")
        XCTAssertEqual(g.status, 200)
        XCTAssertEqual(g.json["version"] as? Int, 2)
        XCTAssertEqual(g.json["kind"] as? String, "List")
        XCTAssertEqual((g.json["items"] as? [Any])?.count, 5)
        XCTAssertEqual(g.headers["etag"], "\"2\"")
        XCTAssertEqual(h.version, 2)
    }

    func testPutSameConfigIsANewVersionWithNothingChanged() throws {
        let r = try h.client().request("PUT", "/config", body: Fixtures.featureBranch)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json["version"] as? Int, 2)
        XCTAssertEqual(r.json["changed"] as? [String], [])
    }

    func testPutReplacesEverything() throws {
        // Only the adservice VirtualService and its ServiceEntries remain.
        let docs = Fixtures.featureBranch.components(separatedBy: "\n---\n").filter { !$0.contains("frontend") && !$0.contains("kind: Gateway") }
        let r = try h.client().request("PUT", "/config", body: docs.joined(separator: "\n---\n"))
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(Set(r.json["changed"] as? [String] ?? []),
                       ["Gateway istio-system/ingressgateway deleted", "VirtualService default/frontend deleted"])
        XCTAssertEqual(h.onLoop { self.h.store.current.resources.count }, 3)
    }

    func testInvalidConfigIsRejectedWithEveryErrorAndTheVersionStays() throws {
        var bad = Fixtures.featureBranch.replacingOccurrences(of: "exact: 4f9e715d-fe56-4a1e-964b-b00b607e7695", with: "regex: \"(unclosed\"")
        bad = bad.replacingOccurrences(of: "number: 9555, name: grpc", with: "number: 99999, name: grpc")
        let c = try h.client()
        let r = try c.request("PUT", "/config", body: bad)
        XCTAssertEqual(r.status, 400, r.body)
        let errs = errors(r)
        XCTAssertTrue(errs.contains { $0["resource"] as? String == "VirtualService default/adservice"
                && $0["path"] as? String == "spec.http[0].match[0].headers.userid.regex" }, "\(errs)")
        XCTAssertTrue(errs.contains { ($0["resource"] as? String ?? "").hasPrefix("ServiceEntry default/adservice")
                && ($0["path"] as? String ?? "").hasPrefix("spec.ports[0].number") }, "\(errs)")
        XCTAssertTrue(errs.allSatisfy { !($0["message"] as? String ?? "").isEmpty })
        XCTAssertEqual(r.headers["etag"], "\"1\"")
        XCTAssertEqual(h.version, 1)
        XCTAssertEqual(h.host.installs, [])

        // A cross-resource error (unknown gateway) is a 400 too, with its path.
        let vs = #"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"x"},"spec":{"hosts":["x"],"gateways":["nope"],"http":[{"route":[{"destination":{"host":"x"}}]}]}}"#
        let r2 = try c.request("PUT", "/config/virtualservices/default/x", body: vs)
        XCTAssertEqual(r2.status, 400, r2.body)
        XCTAssertEqual(errors(r2).first?["path"] as? String, "spec.gateways[0]")

        // Not YAML at all.
        let r3 = try c.request("PUT", "/config", body: "kind: [unclosed")
        XCTAssertEqual(r3.status, 400)
        XCTAssertFalse(errors(r3).isEmpty)
        XCTAssertEqual(h.version, 1)

        let m = try h.client(h.metricsPort).request("GET", "/stats/prometheus")
        XCTAssertTrue(m.body.contains("remora_config_reloads_total{result=\"failure\"} 3"), m.body)
        XCTAssertTrue(m.body.contains("remora_config_version 1"), m.body)
    }

    // MARK: If-Match

    func testIfMatchGuardsAgainstLostUpdates() throws {
        let c = try h.client()
        let body = Fixtures.adserviceJSON(extraUser: "alice")
        let path = "/config/virtualservices/default/adservice"
        XCTAssertEqual(try c.request("PUT", path, headers: ["If-Match": "\"7\""], body: body).status, 412)
        XCTAssertEqual(h.version, 1)
        let ok = try c.request("PUT", path, headers: ["If-Match": "\"1\""], body: body)
        XCTAssertEqual(ok.status, 200, ok.body)
        XCTAssertEqual(ok.headers["etag"], "\"2\"")
        // The same precondition again: someone else's change happened since (ours).
        let stale = try c.request("PUT", path, headers: ["If-Match": "\"1\""], body: body)
        XCTAssertEqual(stale.status, 412)
        XCTAssertEqual(stale.json["version"] as? Int, 2)
        XCTAssertEqual(stale.headers["etag"], "\"2\"")
        // Unquoted and weak forms.
        XCTAssertEqual(try c.request("PUT", path, headers: ["If-Match": "2"], body: body).status, 200)
        XCTAssertEqual(try c.request("PUT", "/config", headers: ["If-Match": "W/\"3\""], body: Fixtures.featureBranch).status, 200)
        XCTAssertEqual(try c.request("DELETE", path, headers: ["If-Match": "\"3\""]).status, 412)
        XCTAssertEqual(try c.request("POST", "/config/rollback", headers: ["If-Match": "\"3\""]).status, 412)
        XCTAssertEqual(h.version, 4)
    }

    // MARK: one resource

    func testPerResourceGetPutDelete() throws {
        let c = try h.client()
        let path = "/config/virtualservices/default/adservice"
        let g = try c.request("GET", path)
        XCTAssertEqual(g.status, 200)
        XCTAssertEqual(g.json["kind"] as? String, "VirtualService")
        XCTAssertEqual((g.json["metadata"] as? [String: Any])?["name"] as? String, "adservice")
        XCTAssertEqual(g.headers["etag"], "\"1\"")

        // Kind by name, any case; the singular; the plural.
        for p in ["/config/VirtualService/default/adservice", "/config/virtualservice/default/adservice", "/config/VIRTUALSERVICES/default/adservice"] {
            XCTAssertEqual(try c.request("GET", p).status, 200, p)
        }
        let list = try c.request("GET", "/config/virtualservices")
        XCTAssertEqual((list.json["items"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual(try c.request("GET", "/config/ServiceEntry").json["version"] as? Int, 1)
        XCTAssertEqual((try c.request("GET", "/config/gateways").json["items"] as? [Any])?.count, 1)
        XCTAssertEqual(try c.request("GET", "/config/widgets").status, 404)

        // Replace.
        let u = try c.request("PUT", path, body: Fixtures.adserviceJSON(extraUser: "alice"))
        XCTAssertEqual(u.status, 200, u.body)
        XCTAssertEqual(u.json["changed"] as? [String], ["VirtualService default/adservice updated"])
        XCTAssertEqual(((try c.request("GET", path).json["spec"] as? [String: Any])?["http"] as? [Any])?.count, 3)

        // Create, in another namespace (the path's namespace is taken when the body has none).
        let cr = try c.request("PUT", "/config/virtualservices/shop/cartservice", body: Fixtures.adserviceJSON(name: "cartservice"))
        XCTAssertEqual(cr.status, 200, cr.body)
        XCTAssertEqual(cr.json["changed"] as? [String], ["VirtualService shop/cartservice created"])
        XCTAssertEqual(try c.request("GET", "/config/virtualservices/shop/cartservice").status, 200)

        // The body must agree with the path.
        let wrongName = try c.request("PUT", "/config/virtualservices/default/other", body: Fixtures.adserviceJSON())
        XCTAssertEqual(wrongName.status, 400)
        XCTAssertEqual(errors(wrongName).first?["path"] as? String, "metadata.name")
        let wrongNs = try c.request("PUT", path, body: Fixtures.adserviceJSON(namespace: "shop"))
        XCTAssertEqual(wrongNs.status, 400)
        XCTAssertEqual(errors(wrongNs).first?["path"] as? String, "metadata.namespace")
        let wrongKind = try c.request("PUT", "/config/destinationrules/default/adservice", body: Fixtures.adserviceJSON())
        XCTAssertEqual(wrongKind.status, 400)
        XCTAssertEqual(errors(wrongKind).first?["path"] as? String, "kind")
        let two = try c.request("PUT", path, body: Fixtures.adserviceJSON() + "\n---\n" + Fixtures.adserviceJSON(name: "b"))
        XCTAssertEqual(two.status, 400)

        // Delete; deleting what is not there is 404.
        let d = try c.request("DELETE", "/config/virtualservices/shop/cartservice")
        XCTAssertEqual(d.status, 200, d.body)
        XCTAssertEqual(d.json["changed"] as? [String], ["VirtualService shop/cartservice deleted"])
        XCTAssertEqual(d.json["version"] as? Int, 4)
        XCTAssertEqual(try c.request("DELETE", "/config/virtualservices/shop/cartservice").status, 404)
        XCTAssertEqual(try c.request("GET", "/config/virtualservices/shop/cartservice").status, 404)
        XCTAssertEqual(h.host.installs, [2, 3, 4])

        // Deleting a ServiceEntry a route needs is fine (DNS then); deleting the Gateway the frontend names is not.
        let g2 = try c.request("DELETE", "/config/gateways/istio-system/ingressgateway")
        XCTAssertEqual(g2.status, 400, g2.body)
        XCTAssertEqual(h.version, 4)
    }

    // MARK: dry run

    func testDryRunChangesNothing() throws {
        let c = try h.client()
        let put = try c.request("PUT", "/config/virtualservices/default/adservice?dryRun=true", body: Fixtures.adserviceJSON(extraUser: "alice"))
        XCTAssertEqual(put.status, 200, put.body)
        XCTAssertEqual(put.json["dryRun"] as? Bool, true)
        XCTAssertEqual(put.json["version"] as? Int, 1)
        XCTAssertEqual(put.json["changed"] as? [String], ["VirtualService default/adservice updated"])
        let del = try c.request("DELETE", "/config/virtualservices/default/adservice?dryRun=true")
        XCTAssertEqual(del.status, 200)
        XCTAssertEqual(del.json["changed"] as? [String], ["VirtualService default/adservice deleted"])
        let all = try c.request("PUT", "/config?dryRun=true", body: "")
        XCTAssertEqual(all.status, 200)
        XCTAssertEqual((all.json["changed"] as? [String])?.count, 5)
        let bad = try c.request("PUT", "/config?dryRun=true", body: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: []}\n")
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(h.version, 1)
        XCTAssertEqual(h.host.installs, [])
        XCTAssertEqual(h.onLoop { self.h.store.history().count }, 1)
        XCTAssertEqual((try c.request("GET", "/config/virtualservices/default/adservice").json["spec"] as? [String: Any]).flatMap { ($0["http"] as? [Any])?.count }, 2)
        // Dry runs are not reloads.
        let m = try c.request("GET", "/stats/prometheus")
        XCTAssertTrue(m.body.contains("remora_config_reloads_total{result=\"failure\"} 0"), m.body)
    }

    // MARK: history and rollback

    func testHistoryAndRollback() throws {
        let c = try h.client()
        let path = "/config/virtualservices/default/adservice"
        XCTAssertEqual(try c.request("PUT", path, body: Fixtures.adserviceJSON(extraUser: "alice")).status, 200)
        XCTAssertEqual(try c.request("DELETE", "/config/serviceentries/default/adservice-myfeature").status, 200)

        let hist = try c.request("GET", "/config/history")
        XCTAssertEqual(hist.status, 200)
        XCTAssertEqual(hist.json["version"] as? Int, 3)
        let entries = try XCTUnwrap(hist.json["history"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["version"] as? Int }, [1, 2, 3])
        XCTAssertEqual(entries[1]["changed"] as? [String], ["VirtualService default/adservice updated"])
        XCTAssertEqual(entries[1]["cause"] as? String, "PUT /config/virtualservices/default/adservice")
        XCTAssertEqual(entries[2]["changed"] as? [String], ["ServiceEntry default/adservice-myfeature deleted"])
        XCTAssertEqual((entries[0]["changed"] as? [String])?.count, 5)
        let time = try XCTUnwrap(entries[0]["time"] as? String)
        XCTAssertNotNil(ISO8601DateFormatter().date(from: time.replacingOccurrences(of: #"\.\d+Z"#, with: "Z", options: .regularExpression)), time)

        // Back to the previous version, as a new version.
        let rb = try c.request("POST", "/config/rollback")
        XCTAssertEqual(rb.status, 200, rb.body)
        XCTAssertEqual(rb.json["version"] as? Int, 4)
        XCTAssertEqual(rb.json["rolledBackTo"] as? Int, 2)
        XCTAssertEqual(rb.json["changed"] as? [String], ["ServiceEntry default/adservice-myfeature created"])
        XCTAssertEqual(try c.request("GET", "/config/serviceentries/default/adservice-myfeature").status, 200)

        // To the start.
        let rb1 = try c.request("POST", "/config/rollback?to=1")
        XCTAssertEqual(rb1.status, 200, rb1.body)
        XCTAssertEqual(rb1.json["version"] as? Int, 5)
        XCTAssertEqual(rb1.json["changed"] as? [String], ["VirtualService default/adservice updated"])
        XCTAssertEqual(((try c.request("GET", path).json["spec"] as? [String: Any])?["http"] as? [Any])?.count, 2)
        XCTAssertEqual(h.host.installs, [2, 3, 4, 5])

        XCTAssertEqual(try c.request("POST", "/config/rollback?to=99").status, 404)
        XCTAssertEqual(try c.request("POST", "/config/rollback?to=x").status, 400)
        let dry = try c.request("POST", "/config/rollback?to=3&dryRun=true")
        XCTAssertEqual(dry.status, 200)
        XCTAssertEqual(dry.json["version"] as? Int, 5)
        XCTAssertEqual(h.version, 5)
        let last = try XCTUnwrap(try c.request("GET", "/config/history").json["history"] as? [[String: Any]]).last
        XCTAssertEqual(last?["cause"] as? String, "rollback to version 1")
    }

    // MARK: explain

    func testExplainShowsEachRuleAndWhy() throws {
        let c = try h.client()
        let body = #"{"listener": "meshOutbound", "authority": "adservice:9555", "method": "POST", "path": "/hipstershop.AdService/GetAds", "headers": {"userid": "someone-else", "content-type": "application/grpc"}}"#
        let r = try c.request("POST", "/routes/explain", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual((r.json["listener"] as? [String: Any])?["name"] as? String, "0.0.0.0_15001")
        XCTAssertEqual(r.json["matched"] as? Bool, true)
        XCTAssertEqual(r.json["virtualService"] as? String, "default/adservice")
        XCTAssertEqual(r.json["rule"] as? String, "default/adservice#1")
        let rules = try XCTUnwrap(r.json["rules"] as? [[String: Any]])
        XCTAssertEqual(rules.count, 2)
        XCTAssertEqual(rules[0]["matched"] as? Bool, false)
        XCTAssertEqual(rules[0]["reasons"] as? [String],
                       ["header userid \"someone-else\" does not match exact \"\(Fixtures.session)\""])
        XCTAssertEqual(rules[1]["matched"] as? Bool, true)
        XCTAssertEqual(rules[1]["reasons"] as? [String], [])
        let dest = try XCTUnwrap((r.json["destinations"] as? [[String: Any]])?.first)
        XCTAssertEqual(dest["host"] as? String, "adservice")
        XCTAssertEqual(dest["port"] as? Int, 9555)
        XCTAssertEqual(dest["cluster"] as? String, "outbound|9555||adservice")

        // The branch user: the first rule matches, nothing else is tried. Listener by port, headers any case.
        let branch = #"{"listener": 15001, "authority": "adservice", "headers": {"UserId": "\#(Fixtures.session)"}}"#
        let b = try c.request("POST", "/routes/explain", body: branch)
        XCTAssertEqual(b.status, 200, b.body)
        XCTAssertEqual((b.json["rules"] as? [Any])?.count, 1)
        XCTAssertEqual((b.json["destinations"] as? [[String: Any]])?.first?["host"] as? String, "adservice-myfeature")
        XCTAssertEqual(b.json["outcome"] as? String, "route to outbound|9555||adservice-myfeature")

        // By listener name; a host no VirtualService has.
        let none = try c.request("POST", "/routes/explain", body: #"{"listener": "0.0.0.0_15001", "authority": "cartservice"}"#)
        XCTAssertEqual(none.status, 200)
        XCTAssertEqual(none.json["matched"] as? Bool, false)
        XCTAssertEqual((none.json["rules"] as? [Any])?.count, 0)
        XCTAssertTrue((none.json["outcome"] as? String ?? "").contains("passes through"), none.body)

        // The gateway listener on port 80: the frontend's cookie rule.
        let gw = try c.request("POST", "/routes/explain", body: #"{"listener": "80", "authority": "shop.example.com", "headers": {"cookie": "shop_session-id=x-readiness-probe"}}"#)
        XCTAssertEqual(gw.status, 200, gw.body)
        XCTAssertEqual(gw.json["rule"] as? String, "default/frontend#1")

        // YAML in, YAML out.
        let y = try c.request("POST", "/routes/explain", headers: ["Content-Type": "application/yaml", "Accept": "application/yaml"],
                              body: "listener: meshOutbound\nauthority: adservice\nheaders:\n  userid: nobody\n")
        XCTAssertEqual(y.status, 200, y.body)
        XCTAssertEqual(y.headers["content-type"], "application/yaml")
        let parsed = try ConfigValue.parse(y.body)
        XCTAssertEqual(parsed["rule"]?.stringValue, "default/adservice#1")

        // Unknown listener, missing authority.
        let bad = try c.request("POST", "/routes/explain", body: #"{"listener": "nope", "authority": "x"}"#)
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(errors(bad).first?["path"] as? String, "listener")
        XCTAssertTrue((errors(bad).first?["message"] as? String ?? "").contains("0.0.0.0_15001"))
        XCTAssertEqual(try c.request("POST", "/routes/explain", body: #"{"listener": "meshInbound"}"#).status, 400)
        XCTAssertEqual(try c.request("GET", "/routes/explain").status, 405)
    }

    // MARK: YAML

    func testYAMLInAndOut() throws {
        let c = try h.client()
        let yamlBody = Fixtures.featureBranch.replacingOccurrences(of: "host: adservice-myfeature", with: "host: adservice\n            subset: v2")
        let r = try c.request("PUT", "/config", headers: ["Content-Type": "application/yaml", "Accept": "application/yaml"], body: yamlBody)
        // The subset is not defined by any DestinationRule: rejected, in YAML.
        XCTAssertEqual(r.status, 400, r.body)
        XCTAssertEqual(r.headers["content-type"], "application/yaml")
        let errs = try ConfigValue.parse(r.body)
        guard case .array(let list)? = errs["errors"] else { return XCTFail(r.body) }
        XCTAssertFalse(list.isEmpty)
        XCTAssertEqual(list.first?["path"]?.stringValue, "spec.http[0].route[0].destination.subset", r.body)

        let ok = try c.request("PUT", "/config", headers: ["Content-Type": "application/yaml", "Accept": "application/yaml"],
                               body: Fixtures.featureBranchWith(adservice: """
                               apiVersion: networking.istio.io/v1
                               kind: VirtualService
                               metadata:
                                 name: adservice
                               spec:
                                 hosts: [adservice]
                                 http:
                                 - route:
                                   - destination: {host: adservice}
                               """))
        XCTAssertEqual(ok.status, 200, ok.body)
        XCTAssertEqual(try ConfigValue.parse(ok.body)["version"], .int(2))

        // GET as YAML: a kubectl-style List that loads back as it is.
        let g = try c.request("GET", "/config", headers: ["Accept": "application/yaml"])
        XCTAssertEqual(g.status, 200)
        XCTAssertTrue(g.body.contains("kind: List"), g.body)
        let back = try c.request("PUT", "/config", headers: ["Content-Type": "application/yaml"], body: g.body)
        XCTAssertEqual(back.status, 200, back.body)
        XCTAssertEqual(back.json["changed"] as? [String], [])

        // The JSON List as well.
        let j = try c.request("GET", "/config")
        let back2 = try c.request("PUT", "/config", body: j.body)
        XCTAssertEqual(back2.status, 200, back2.body)
        XCTAssertEqual(back2.json["changed"] as? [String], [])

        // One resource in YAML, put back unchanged.
        let one = try c.request("GET", "/config/serviceentries/default/adservice?format=yaml")
        XCTAssertEqual(one.headers["content-type"], "application/yaml")
        XCTAssertTrue(one.body.contains("kind: ServiceEntry"), one.body)
        let put = try c.request("PUT", "/config/serviceentries/default/adservice", headers: ["Content-Type": "application/yaml"], body: one.body)
        XCTAssertEqual(put.status, 200, put.body)
        XCTAssertEqual(put.json["changed"] as? [String], [])

        // kubectl's output with server fields is the same resource.
        let kubectl = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata:
          name: adservice
          namespace: default
          uid: 1234
          resourceVersion: "998"
          generation: 3
          creationTimestamp: "2024-01-01T00:00:00Z"
        spec:
          hosts: [adservice]
          ports: [{number: 9555, name: grpc, protocol: GRPC}]
          resolution: STATIC
          endpoints: [{address: 127.0.0.1}]
        status: {}
        """
        let k = try c.request("PUT", "/config/serviceentries/default/adservice", headers: ["Content-Type": "application/yaml"], body: kubectl)
        XCTAssertEqual(k.status, 200, k.body)
        XCTAssertEqual(k.json["changed"] as? [String], [], "only apiVersion and server-written fields differ")
    }

    // MARK: readiness

    func testReadyAndHealthzFollowTheHost() throws {
        let admin = try h.client()
        let health = try h.client(h.healthPort)
        var r = try admin.request("GET", "/ready")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.body, "LIVE\n")
        XCTAssertEqual(try health.request("GET", "/healthz/ready").status, 200)
        XCTAssertEqual(try admin.request("GET", "/healthz/ready").status, 200)
        h.host.serving = false
        r = try admin.request("GET", "/ready")
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(try health.request("GET", "/healthz/ready").status, 503)
        XCTAssertEqual(try health.request("HEAD", "/healthz/ready").status, 503)
        h.host.serving = true
        XCTAssertEqual(try health.request("GET", "/healthz/ready").status, 200)
        // The health port serves nothing else.
        XCTAssertEqual(try health.request("GET", "/config").status, 404)
        XCTAssertEqual(try h.client(h.metricsPort).request("GET", "/ready").status, 404)
    }

    // MARK: methods and paths

    func testUnknownPathsAndWrongMethods() throws {
        let c = try h.client()
        XCTAssertEqual(try c.request("GET", "/nope").status, 404)
        XCTAssertEqual(try c.request("GET", "/config/virtualservices/default").status, 404)
        let r = try c.request("DELETE", "/ready")
        XCTAssertEqual(r.status, 405)
        XCTAssertEqual(r.headers["allow"], "GET, HEAD")
        let p = try c.request("POST", "/config")
        XCTAssertEqual(p.status, 405)
        XCTAssertEqual(p.headers["allow"], "GET, HEAD, PUT")
        XCTAssertEqual(try c.request("GET", "/drain").headers["allow"], "POST")
        XCTAssertEqual(try c.request("GET", "/").status, 200)
        // Still one healthy keep-alive connection after all that.
        XCTAssertEqual(try c.request("GET", "/ready").status, 200)
    }

    // MARK: clusters, metrics, drain

    func testClustersMetricsAndDrain() throws {
        let c = try h.client()
        let cl = try c.request("GET", "/clusters")
        XCTAssertEqual(cl.status, 200)
        XCTAssertEqual(((cl.json["clusters"] as? [[String: Any]])?.first)?["name"] as? String, "outbound|9555||adservice")

        let m = try h.client(h.metricsPort).request("GET", "/stats/prometheus")
        XCTAssertEqual(m.status, 200)
        XCTAssertTrue(m.headers["content-type"]?.hasPrefix("text/plain") == true)
        XCTAssertTrue(m.body.contains("fake_requests_total 7\n"), m.body)
        XCTAssertTrue(m.body.contains("remora_config_version 1\n"), m.body)
        XCTAssertEqual(try c.request("GET", "/stats/prometheus").status, 200)

        XCTAssertEqual(try c.request("POST", "/drain").status, 200)
        XCTAssertEqual(h.host.drains, [false])
        let q = try c.request("POST", "/quitquitquit")
        XCTAssertEqual(q.status, 200)
        XCTAssertEqual(q.headers["connection"], "close")
        // Draining starts once the reply is out.
        let deadline = Date().addingTimeInterval(5)
        while h.host.drains.count < 2 && Date() < deadline { usleep(1000) }
        XCTAssertEqual(h.host.drains, [false, true])
    }

    // MARK: the reply waits for every worker

    func testChangeIsAnsweredOnlyOnceInstalled() throws {
        h.host.holdInstalls()
        let c = try h.client()
        try c.send(TestClient.requestText("PUT", "/config/virtualservices/default/adservice", body: Fixtures.adserviceJSON(extraUser: "alice")))
        c.setTimeout(seconds: 0, milliseconds: 300)
        XCTAssertThrowsError(try c.readResponse(), "answered before the workers had the snapshot")
        // The loop is not blocked meanwhile.
        XCTAssertEqual(try h.client().request("GET", "/ready").status, 200)
        XCTAssertEqual(h.host.installs, [2])
        c.setTimeout(seconds: 10)
        h.host.release()
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.json["version"] as? Int, 2)
    }

    // MARK: the HTTP side

    func testSlowClientsDoNotBlockOthers() throws {
        // A client that sends half a head and stops.
        let slow = try h.client()
        try slow.send("GET /config HTTP/1.1\r\nHo")
        // A client that pipelines many large replies and reads none of them.
        let big = Fixtures.featureBranch + (0..<200).map { i in
            "\n---\n" + Fixtures.adserviceJSON(extraUser: "user-\(i)", name: "svc\(i)")
        }.joined()
        XCTAssertEqual(try h.client().request("PUT", "/config", body: big).status, 200)
        let reader = try TestClient(port: h.adminPort, receiveBuffer: 4096)
        let count = 60
        let pipelined = String(repeating: TestClient.requestText("GET", "/config"), count: count)
        let sender = Thread { try? reader.send(pipelined) }
        sender.start()
        usleep(200_000)

        let start = Date()
        let other = try h.client()
        for _ in 0..<5 { XCTAssertEqual(try other.request("GET", "/ready").status, 200) }
        XCTAssertEqual(try other.request("GET", "/config/virtualservices/default/svc3").status, 200)
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)

        // The stalled reader still gets every reply, in order, once it reads.
        var sizes = Set<Int>()
        for _ in 0..<count {
            let r = try reader.readResponse()
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.json["version"] as? Int, 2)
            sizes.insert(r.body.utf8.count)
        }
        XCTAssertEqual(sizes.count, 1)
        XCTAssertGreaterThan(sizes.first ?? 0, 100_000)
        // The half-sent head completes.
        try slow.send("st: x\r\n\r\n")
        XCTAssertEqual(try slow.readResponse().status, 200)
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let c = try h.client()
        try c.send(TestClient.requestText("GET", "/ready") + TestClient.requestText("PUT", "/config/virtualservices/default/adservice", body: Fixtures.adserviceJSON(extraUser: "a"))
                   + TestClient.requestText("GET", "/config/virtualservices/default/adservice") + TestClient.requestText("GET", "/nope"))
        XCTAssertEqual(try c.readResponse().body, "LIVE\n")
        XCTAssertEqual(try c.readResponse().json["version"] as? Int, 2)
        let g = try c.readResponse()
        XCTAssertEqual(g.headers["etag"], "\"2\"")
        XCTAssertEqual(try c.readResponse().status, 404)
    }

    /// Many pipelined requests whose replies come later (metrics are asked of the workers): the read buffer
    /// fills up, reading stops, and must resume once replies are sent.
    func testReadingResumesAfterAFullBuffer() throws {
        h.stop()
        var limits = AdminHTTPLimits()
        limits.maxBodyBytes = 100
        limits.maxHeadBytes = 1024
        h = try Harness(limits: limits)
        let c = try h.client()
        let count = 3000
        let text = String(repeating: TestClient.requestText("GET", "/stats/prometheus"), count: count)
        let sender = Thread { try? c.send(text) }
        sender.start()
        for i in 0..<count {
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, "reply \(i)")
            if r.status != 200 { break }
        }
        XCTAssertEqual(try c.request("GET", "/ready").status, 200)
    }

    func testChunkedBodyAndExpectContinue() throws {
        let c = try h.client()
        let body = Array(Fixtures.adserviceJSON(extraUser: "chunky").utf8)
        var req = "PUT /config/virtualservices/default/adservice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        let half = body.count / 2
        req += String(half, radix: 16) + "\r\n" + String(decoding: body[0..<half], as: UTF8.self) + "\r\n"
        req += String(body.count - half, radix: 16) + "\r\n" + String(decoding: body[half...], as: UTF8.self) + "\r\n0\r\n\r\n"
        try c.send(req)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.json["changed"] as? [String], ["VirtualService default/adservice updated"])
    }

    func testOversizedBodyIs413() throws {
        let c = try h.client()
        try c.send("PUT /config HTTP/1.1\r\nHost: x\r\nContent-Length: \(16 * 1024 * 1024 + 1)\r\nExpect: 100-continue\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.headers["connection"], "close")
        XCTAssertTrue(c.readsEOF())
        // A body at the limit is read (and rejected as configuration, not as size).
        let ok = try h.client()
        let pad = "#" + String(repeating: "x", count: 16 * 1024 * 1024 - 2) + "\n"
        let r2 = try ok.request("PUT", "/config?dryRun=true", body: pad)
        XCTAssertEqual(r2.status, 200, String(r2.body.prefix(200)))
        XCTAssertEqual(h.version, 1)
    }

    func testMalformedRequestIs400AndCloses() throws {
        let c = try h.client()
        try c.send("GET /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 400)
        XCTAssertTrue(c.readsEOF())
    }

    // MARK: SIGHUP / file watching

    func testReloadFromSourcesIsAVersionLikeAPut() throws {
        let text = Fixtures.featureBranchWith(adservice: Fixtures.adserviceJSON(extraUser: "bob"))
        let v = h.onLoop { self.h.server.reloadFromSources({ try ConfigLoader.parse(text, source: "x.yaml") }, cause: "SIGHUP") }
        XCTAssertEqual(v, 2)
        XCTAssertEqual(h.host.installs, [2])
        let failed = h.onLoop { self.h.server.reloadFromSources({ () throws(ConfigErrors) -> ConfigSet in try ConfigLoader.parse("kind: Nope", source: "x.yaml") }, cause: "SIGHUP") }
        XCTAssertNil(failed)
        let hist = try h.client().request("GET", "/config/history")
        let last = try XCTUnwrap((hist.json["history"] as? [[String: Any]])?.last)
        XCTAssertEqual(last["cause"] as? String, "SIGHUP")
        XCTAssertEqual(last["changed"] as? [String], ["VirtualService default/adservice updated"])
        let m = try h.client(h.metricsPort).request("GET", "/stats/prometheus").body
        XCTAssertTrue(m.contains("remora_config_version 2"), m)
        XCTAssertTrue(m.contains("remora_config_reloads_total{result=\"success\"} 1"), m)
        XCTAssertTrue(m.contains("remora_config_reloads_total{result=\"failure\"} 1"), m)
    }

    func testCloseStopsServing() throws {
        let port = h.adminPort
        XCTAssertEqual(try h.client().request("GET", "/ready").status, 200)
        h.onLoop { self.h.server.close() }
        XCTAssertThrowsError(try TestClient(port: port).request("GET", "/ready"))
    }
}
