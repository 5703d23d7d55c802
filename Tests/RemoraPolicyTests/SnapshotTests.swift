import RemoraConfig
import RemoraPolicy
import XCTest

final class SnapshotTests: XCTestCase {
    private func compile(_ text: String) throws -> Snapshot {
        try Snapshot.compile(try ConfigLoader.parse(text, source: "test.yaml"))
    }

    private let gateways = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: edge, namespace: istio-system}
    spec:
      selector: {istio: ingressgateway}
      servers:
      - port: {number: 8080, name: http, protocol: HTTP}
        hosts: ["*"]
      - port: {number: 8443, name: https, protocol: HTTPS}
        hosts: ["*"]
        tls: {mode: SIMPLE, credentialName: edge-cert}
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: internal, namespace: ops}
    spec:
      selector: {app: internal-gw}
      servers:
      - port: {number: 9000, name: grpc, protocol: GRPC}
        bind: 127.0.0.1
        hosts: ["*"]
    """

    func testGatewaySelectionByProxyLabels() throws {
        let proxy = """
        ---
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: edge, labels: {istio: ingressgateway, zone: a}}
        spec:
          meshListeners: {}
        """
        let s = try compile(gateways + "\n" + proxy)
        XCTAssertEqual(s.listeners.map(\.name), ["0.0.0.0_8080", "0.0.0.0_8443"], "only the Gateway whose selector the Proxy's labels satisfy; no mesh listeners")
        XCTAssertEqual(s.listeners.map(\.tls), [false, true])
        XCTAssertEqual(s.listeners.map(\.serverProtocol), ["HTTP", "HTTPS"])
        XCTAssertNil(s.settings.meshOutbound)
        XCTAssertNil(s.settings.meshInbound)
        XCTAssertEqual(s.settings.labels["zone"], "a")

        // No Proxy, or a Proxy without labels: every Gateway applies.
        let all = try compile(gateways)
        XCTAssertEqual(all.listeners.map(\.name), ["0.0.0.0_15001", "0.0.0.0_15006", "0.0.0.0_8080", "0.0.0.0_8443", "127.0.0.1_9000"])
        XCTAssertEqual(all.listeners.last?.serverProtocol, "GRPC")
        XCTAssertEqual(all.listeners.last?.address, ListenAddress(address: "127.0.0.1", port: 9000))
        let unlabeled = try compile(gateways + "\n---\napiVersion: remora.dev/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n")
        XCTAssertEqual(unlabeled.listeners.count, 5)
    }

    func testProxySettingsApplied() throws {
        let s = try compile("""
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: sidecar, namespace: shop}
        spec:
          workers: 3
          admin: {port: 16000}
          health: null
          metrics: {address: 127.0.0.1, port: 16090}
          meshListeners:
            outbound: {address: 127.0.0.1, port: 16001}
          credentialsDir: /tmp/creds
          accessLog: {path: /var/log/remora.log}
          drainTimeout: 5s
          limits: {maxHeaders: 50, bufferLimitBytes: 4096}
        """)
        let st = s.settings
        XCTAssertEqual(st.name, "sidecar")
        XCTAssertEqual(st.workers, 3)
        XCTAssertEqual(st.admin, ListenAddress(address: "127.0.0.1", port: 16000))
        XCTAssertNil(st.health)
        XCTAssertEqual(st.metrics, ListenAddress(address: "127.0.0.1", port: 16090))
        XCTAssertEqual(st.meshOutbound, ListenAddress(address: "127.0.0.1", port: 16001))
        XCTAssertNil(st.meshInbound)
        XCTAssertEqual(st.credentialsDir, "/tmp/creds")
        XCTAssertEqual(st.accessLog, .file("/var/log/remora.log"))
        XCTAssertEqual(st.drainTimeoutMs, 5000)
        XCTAssertEqual(st.limits.maxHeaders, 50)
        XCTAssertEqual(st.limits.bufferLimitBytes, 4096)
        XCTAssertEqual(st.limits.maxConnections, 10000)
        XCTAssertEqual(s.listeners.map(\.name), ["127.0.0.1_16001"])
        let off = try compile("apiVersion: remora.dev/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {accessLog: {path: \"off\"}}\n")
        XCTAssertEqual(off.settings.accessLog, .off)
        XCTAssertEqual(st.dns, DNSSettings(), "no dns: resolv.conf's servers, 60 s")
        XCTAssertEqual(st.dns.refreshRateMs, 60_000)
        let dns = try compile("apiVersion: remora.dev/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec: {dns: {servers: [\"127.0.0.1:5353\", \"fd00::1\"], refreshRate: 2m}}\n")
        XCTAssertEqual(dns.settings.dns.servers, [ListenAddress(address: "127.0.0.1", port: 5353), ListenAddress(address: "fd00::1", port: 53)])
        XCTAssertEqual(dns.settings.dns.refreshRateMs, 120_000)
    }

    func testVirtualServiceBindingToGatewaysAndMesh() throws {
        let s = try compile(gateways + """

        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web, namespace: shop}
        spec:
          hosts: ["shop.example.com"]
          gateways: [istio-system/edge, mesh]
          http: [{route: [{destination: {host: web}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: grpc, namespace: ops}
        spec:
          hosts: ["*"]
          gateways: [internal]
          http:
          - match: [{gateways: [mesh], headers: {x-mesh: {}}}]
            route: [{destination: {host: mesh-only}}]
          - route: [{destination: {host: ops-api}}]
        """)
        let req = FakeRequest("shop.example.com")
        XCTAssertEqual(s.destinationHost(8080, req), "web")
        XCTAssertEqual(s.destinationHost(15001, req), "web")
        XCTAssertEqual(s.destinationHost(15006, req), "web")
        XCTAssertEqual(s.destinationHost(9000, req), "ops-api")
        XCTAssertNil(s.destinationHost(8080, FakeRequest("other.example.com")))
        // A match entry with its own gateways applies there (the mesh), overriding the VirtualService's.
        XCTAssertEqual(s.destinationHost(15001, FakeRequest("anything", headers: ["x-mesh": "1"])), "mesh-only")
        XCTAssertEqual(s.destinationHost(9000, FakeRequest("anything", headers: ["x-mesh": "1"])), "ops-api")
        XCTAssertNil(s.destinationHost(15001, FakeRequest("anything")))
    }

    func testGatewayServerHostsRestrictVirtualServices() throws {
        let s = try compile("""
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: edge}
        spec:
          servers:
          - port: {number: 80, name: http, protocol: HTTP}
            hosts: ["shop/*.shop.example.com", "./edge.example.com", "api.example.com"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: shop, namespace: shop}
        spec:
          hosts: ["*"]
          gateways: [edge/gw]
          http: [{route: [{destination: {host: shop}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: intruder, namespace: other}
        spec:
          hosts: ["www.shop.example.com", "api.example.com", "edge.example.com"]
          gateways: [edge/gw]
          http: [{route: [{destination: {host: intruder}}]}]
        """)
        // `*` from namespace shop is narrowed to the server's *.shop.example.com (and api.example.com, any namespace).
        XCTAssertEqual(s.destinationHost(80, FakeRequest("cart.shop.example.com")), "shop")
        // Both VirtualServices serve api.example.com (shop's `*` narrowed to it): their rules merge in load order.
        XCTAssertEqual(s.destinationHost(80, FakeRequest("api.example.com")), "shop")
        // `shop/*.shop.example.com` admits only namespace shop: the intruder's www.shop.example.com is not served.
        XCTAssertEqual(s.destinationHost(80, FakeRequest("www.shop.example.com")), "shop")
        XCTAssertNil(s.destinationHost(80, FakeRequest("other.example.com")))
        // `./edge.example.com` admits only VirtualServices in the Gateway's namespace.
        XCTAssertNil(s.destinationHost(80, FakeRequest("edge.example.com")))
        XCTAssertEqual(s.listeners.map(\.name), ["0.0.0.0_15001", "0.0.0.0_15006", "0.0.0.0_80"])
        // The gateway VirtualServices are not served on the mesh.
        XCTAssertNil(s.destinationHost(15001, FakeRequest("www.shop.example.com")))
    }

    func testServiceEntryEndpointsSubsetsAndPolicy() throws {
        let s = try compile("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews.bookinfo.svc.cluster.local]
          ports:
          - {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
          - {number: 9443, name: grpc, protocol: GRPC}
          resolution: STATIC
          endpoints:
          - {address: 10.0.0.1, labels: {version: v1}}
          - {address: 10.0.0.2, labels: {version: v2}, ports: {http: 18080}}
          - {address: 10.0.0.3, labels: {version: v2}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          trafficPolicy:
            connectionPool: {tcp: {connectTimeout: 250ms}}
          subsets:
          - name: v1
            labels: {version: v1}
          - name: v2
            labels: {version: v2}
            trafficPolicy:
              connectionPool: {tcp: {connectTimeout: 1s}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http:
          - match: [{headers: {end-user: {exact: jason}}}]
            route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]
          - route:
            - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 90}
            - {destination: {host: reviews.bookinfo.svc.cluster.local, port: {number: 9443}}, weight: 10}
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ext, namespace: bookinfo}
        spec:
          hosts: [api.external.com]
          ports: [{number: 443, name: https, protocol: HTTPS}]
          resolution: DNS
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ext, namespace: bookinfo}
        spec:
          hosts: [api.external.com]
          http: [{route: [{destination: {host: api.external.com}}]}]
        """)
        func cluster(_ name: String) -> ClusterSpec? { s.clusters.first { $0.name == name } }
        let v2 = try XCTUnwrap(cluster("outbound|9080|v2|reviews.bookinfo.svc.cluster.local"), "\(s.clusters.map(\.name))")
        XCTAssertEqual(v2.resolution, .staticEndpoints([Endpoint(address: "10.0.0.2", port: 18080, labels: ["version": "v2"]),
                                                        Endpoint(address: "10.0.0.3", port: 8080, labels: ["version": "v2"])]))
        XCTAssertEqual(v2.connectTimeoutMs, 1000, "subset policy overrides")
        XCTAssertEqual(v2.serviceProtocol, "HTTP")
        let v1 = try XCTUnwrap(cluster("outbound|9080|v1|reviews.bookinfo.svc.cluster.local"))
        XCTAssertEqual(v1.resolution, .staticEndpoints([Endpoint(address: "10.0.0.1", port: 8080, labels: ["version": "v1"])]))
        XCTAssertEqual(v1.connectTimeoutMs, 250)
        let grpc = try XCTUnwrap(cluster("outbound|9443||reviews.bookinfo.svc.cluster.local"))
        if case .staticEndpoints(let eps) = grpc.resolution { XCTAssertEqual(eps.map(\.port), [9443, 9443, 9443]) } else { XCTFail() }
        XCTAssertEqual(grpc.serviceProtocol, "GRPC")
        let ext = try XCTUnwrap(cluster("outbound|443||api.external.com"))
        XCTAssertEqual(ext.resolution, .dns(host: "api.external.com", port: 443), "the only port of the ServiceEntry")
        XCTAssertFalse(ext.portIsDefault)

        XCTAssertEqual(s.destinationHost(15001, FakeRequest("reviews:9080", headers: ["end-user": "jason"])), "reviews.bookinfo.svc.cluster.local")
        guard case .route(let e) = s.route(listener: 0, FakeRequest("reviews.bookinfo")) else { return XCTFail() }
        XCTAssertEqual(e.destinations.map { s.clusters[$0.cluster].name },
                       ["outbound|9080|v1|reviews.bookinfo.svc.cluster.local", "outbound|9443||reviews.bookinfo.svc.cluster.local"])
    }

    /// A `resolution: DNS` ServiceEntry resolves every endpoint's name (a subset keeps its
    /// own), one name keeps the DNS form, none falls back to the host.
    func testDNSServiceEntryEndpointsAreAllNamesToResolve() throws {
        let s = try compile("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db, namespace: default}
        spec:
          hosts: [db.example.com]
          ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
          resolution: DNS
          endpoints:
          - {address: db-a.example.com, labels: {zone: a}}
          - {address: db-b.example.com, labels: {zone: b}, weight: 3}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: db, namespace: default}
        spec:
          host: db.example.com
          subsets: [{name: a, labels: {zone: a}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: db, namespace: default}
        spec:
          hosts: [db.example.com]
          http:
          - match: [{headers: {zone: {exact: a}}}]
            route: [{destination: {host: db.example.com, subset: a}}]
          - route: [{destination: {host: db.example.com}}]
        """)
        let all = try XCTUnwrap(s.clusters.first { $0.name == "outbound|80||db.example.com" })
        XCTAssertEqual(all.resolution, .staticEndpoints([Endpoint(address: "db-a.example.com", port: 8080, labels: ["zone": "a"]),
                                                         Endpoint(address: "db-b.example.com", port: 8080, labels: ["zone": "b"], weight: 3)]))
        let a = try XCTUnwrap(s.clusters.first { $0.name == "outbound|80|a|db.example.com" })
        XCTAssertEqual(a.resolution, .dns(host: "db-a.example.com", port: 8080))
    }

    func testCompileErrors() throws {
        // A destination port that the ServiceEntry does not have, and a port used twice.
        let text = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db}
        spec:
          hosts: [db]
          ports: [{number: 5432, name: pg, protocol: TCP}, {number: 5433, name: pg2, protocol: TCP}]
          resolution: DNS
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: db}
        spec:
          hosts: [db]
          http:
          - route: [{destination: {host: db, port: {number: 1}}}]
          - route: [{destination: {host: db}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers: [{port: {number: 15001, name: http, protocol: HTTP}, hosts: ["*"]}]
        """
        let set = try ConfigLoader.parse(text, source: "test.yaml")
        do {
            _ = try Snapshot.compile(set)
            XCTFail("compiled")
        } catch {
            XCTAssertEqual(Set(error.errors.map { "\($0.resource ?? "")|\($0.path)" }), [
                "VirtualService default/db|spec.http[0].route[0].destination.port.number",
                "VirtualService default/db|spec.http[1].route[0].destination.port",
                "Gateway default/gw|spec.servers[0].port.number",
            ], "\(error.errors)")
        }
    }

    func testSourceLabelsUseTheProxyLabels() throws {
        let s = try compile("""
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: p, labels: {app: frontend}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: [svc]
          http:
          - match: [{sourceLabels: {app: checkout}}]
            route: [{destination: {host: from-checkout}}]
          - match: [{sourceLabels: {app: frontend}, sourceNamespace: default}]
            route: [{destination: {host: from-frontend}}]
        """)
        XCTAssertEqual(s.destinationHost(15001, FakeRequest("svc")), "from-frontend")
    }

    func testConcurrentRouting() throws {
        let s = try Snapshot.compile(try ConfigLoader.parse(Fixtures.featureBranch, source: "fb"))
        let idx = try XCTUnwrap(s.listenerIndex(named: "0.0.0.0_15001"))
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            for j in 0..<2000 {
                let user = j % 2 == 0 ? "4f9e715d-fe56-4a1e-964b-b00b607e7695" : "u\(i)"
                guard case .route(let e) = s.route(listener: idx, FakeRequest("adservice", headers: ["userid": user])) else {
                    return XCTFail()
                }
                XCTAssertEqual(e.ruleIndex, j % 2 == 0 ? 0 : 1)
            }
        }
    }

    func testEmptySnapshot() {
        let s = Snapshot.empty()
        XCTAssertEqual(s.listeners.count, 2)
        XCTAssertTrue(s.clusters.isEmpty)
        if case .route = s.route(listener: 0, FakeRequest("x")) { XCTFail() }
        if case .route = s.route(listener: 99, FakeRequest("x")) { XCTFail() }
    }
}
