import XCTest
import RemoraConfig

final class DecodingTests: XCTestCase {
    func testFeatureBranchExampleDecodes() throws {
        let set = try ConfigLoader.parse(Fixtures.featureBranch, source: "feature-branch.yaml")
        XCTAssertEqual(set.resources.map(\.key.description),
                       ["Gateway istio-system/ingressgateway", "VirtualService default/frontend", "VirtualService default/adservice"])
        let gw = try XCTUnwrap(set.gateways.first)
        XCTAssertEqual(gw.spec.selector, ["istio": "ingressgateway"])
        XCTAssertEqual(gw.spec.servers.map(\.port.number), [443, 80])
        XCTAssertEqual(gw.spec.servers[0].tls?.mode, "SIMPLE")
        XCTAssertEqual(gw.spec.servers[0].tls?.credentialName, "octopus.tech")
        XCTAssertTrue(gw.spec.servers[0].terminatesTLS)
        XCTAssertFalse(gw.spec.servers[1].terminatesTLS)

        let frontend = set.virtualServices[0]
        XCTAssertEqual(frontend.spec.gateways, ["istio-system/ingressgateway"])
        XCTAssertEqual(frontend.spec.hosts, ["*"])
        XCTAssertEqual(frontend.spec.http.count, 2)
        XCTAssertEqual(frontend.spec.http[0].match[0].headers,
                       [NamedStringMatch(name: "Cookie", match: .exact("shop_session-id=4f9e715d-fe56-4a1e-964b-b00b607e7695"))])
        XCTAssertEqual(frontend.spec.http[0].route[0].destination.host, "frontend-myfeature")
        XCTAssertEqual(frontend.spec.http[1].match, [])

        let ad = set.virtualServices[1]
        XCTAssertNil(ad.spec.gateways)
        XCTAssertEqual(ad.metadata.namespace, "default")
        XCTAssertEqual(ad.spec.http[0].match[0].headers[0].match, .exact("4f9e715d-fe56-4a1e-964b-b00b607e7695"))
        XCTAssertNil(set.proxy)
    }

    func testKubectlJSONWithServerFieldsLoads() throws {
        let json = """
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\\"x\\":1}"},
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "generation": 3,
                "labels": {"app": "adservice", "version": "2"},
                "managedFields": [{"apiVersion": "networking.istio.io/v1", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:spec": {".": {}, "f:hosts": {}}}, "manager": "kubectl", "operation": "Update"}],
                "name": "adservice",
                "namespace": "shop",
                "resourceVersion": "123456",
                "selfLink": "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/adservice",
                "uid": "0b0e4d6c-1111-2222-3333-444455556666"
            },
            "spec": {
                "hosts": ["adservice"],
                "http": [{"match": [{"headers": {"userid": {"regex": "4f9e.*"}}, "uri": {"prefix": "/hipstershop"}}],
                          "route": [{"destination": {"host": "adservice", "port": {"number": 9555}}, "weight": 100}],
                          "timeout": "1.5s",
                          "retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "5xx,reset"}}]
            },
            "status": {"observedGeneration": 3, "conditions": [{"type": "Reconciled", "status": "True"}]}
        }
        """
        let set = try ConfigLoader.parse(json, source: "vs.json")
        let vs = try XCTUnwrap(set.virtualServices.first)
        XCTAssertEqual(vs.metadata.name, "adservice")
        XCTAssertEqual(vs.metadata.namespace, "shop")
        XCTAssertEqual(vs.metadata.labels, ["app": "adservice", "version": "2"])
        XCTAssertEqual(vs.spec.http[0].timeout?.milliseconds, 1500)
        XCTAssertEqual(vs.spec.http[0].retries?.attempts, 3)
        XCTAssertEqual(vs.spec.http[0].retries?.perTryTimeout?.milliseconds, 500)
        XCTAssertEqual(vs.spec.http[0].route[0].destination.port?.number, 9555)
        XCTAssertEqual(vs.spec.http[0].match[0].uri, .prefix("/hipstershop"))
        // The raw document is kept, without status.
        XCTAssertNil(set.resources[0].raw["status"])
        XCTAssertEqual(set.resources[0].raw["kind"], .string("VirtualService"))
    }

    func testTabIndentedJSON() throws {
        let json = "{\n\t\"apiVersion\": \"networking.istio.io/v1\",\n\t\"kind\": \"VirtualService\",\n\t\"metadata\": {\n\t\t\"name\": \"a\"\n\t},\n\t\"spec\": {\"hosts\": [\"a\"], \"http\": [{\"route\": [{\"destination\": {\"host\": \"a\"}}]}]}\n}\n"
        let set = try ConfigLoader.parse(json, source: "tabs.json")
        XCTAssertEqual(set.virtualServices.first?.metadata.name, "a")
    }

    func testListKindAndMultiDocument() throws {
        let text = """
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: networking.istio.io/v1beta1
          kind: DestinationRule
          metadata: {name: reviews, namespace: bookinfo}
          spec:
            host: reviews
            trafficPolicy:
              connectionPool:
                tcp: {maxConnections: 100, connectTimeout: 250ms}
                http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1}
              outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
              loadBalancer: {simple: LEAST_REQUEST}
              retryBudget: {percent: 12.5, minRetryConcurrency: 4}
            subsets:
            - name: v1
              labels: {version: v1}
            - name: v2
              labels: {version: v2}
              trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, retryBudget: {}}
        ---
        apiVersion: networking.istio.io/v1alpha3
        kind: ServiceEntry
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews.bookinfo.svc.cluster.local]
          location: MESH_INTERNAL
          resolution: STATIC
          ports: [{number: 9080, name: http, protocol: http, targetPort: 8080}]
          endpoints:
          - {address: 10.0.0.1, labels: {version: v1}}
          - {address: 10.0.0.2, ports: {http: 9999}, labels: {version: v2}}
        ---
        apiVersion: remora.dev/v1alpha1
        kind: Proxy
        metadata: {name: sidecar, labels: {app: reviews}}
        spec:
          workers: 2
          meshListeners:
            outbound: {port: 16001}
          drainTimeout: 1m30s
        """
        let set = try ConfigLoader.parse(text, source: "t.yaml")
        XCTAssertEqual(set.resources.map(\.kind), [.destinationRule, .serviceEntry, .proxy])
        let dr = set.destinationRules[0]
        XCTAssertEqual(dr.spec.trafficPolicy?.connectionPool?.tcp?.connectTimeout?.milliseconds, 250)
        XCTAssertEqual(dr.spec.trafficPolicy?.loadBalancer?.simple, "LEAST_REQUEST")
        XCTAssertEqual(dr.spec.subsets.map(\.name), ["v1", "v2"])
        XCTAssertEqual(dr.spec.trafficPolicy?.retryBudget?.percent, 12.5)
        XCTAssertEqual(dr.spec.trafficPolicy?.retryBudget?.minRetryConcurrency, 4)
        let emptyBudget = try XCTUnwrap(dr.spec.subsets[1].trafficPolicy?.retryBudget)
        XCTAssertNil(emptyBudget.percent, "absent: the compiler applies Istio's defaults")
        XCTAssertNil(emptyBudget.minRetryConcurrency)
        let se = set.serviceEntries[0]
        XCTAssertEqual(se.spec.ports[0].protocol, "HTTP")
        XCTAssertEqual(se.spec.endpoints[1].ports, ["http": 9999])
        let proxy = try XCTUnwrap(set.proxy)
        XCTAssertEqual(proxy.workers, 2)
        XCTAssertEqual(proxy.labels, ["app": "reviews"])
        XCTAssertEqual(proxy.drainTimeout?.milliseconds, 90_000)
        XCTAssertEqual(proxy.meshListeners?.outbound?.port, 16001)
        XCTAssertNil(proxy.meshListeners?.inbound)
    }

    func testEveryHTTPRouteFieldDecodes() throws {
        let text = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: all, namespace: ns}
        spec:
          hosts: [a.example.com]
          exportTo: ["."]
          http:
          - name: everything
            match:
            - name: m
              uri: {regex: "/v[0-9]+/.*"}
              scheme: {exact: https}
              method: {exact: POST}
              authority: {prefix: a.example}
              headers: {x-a: {}, x-b: {prefix: b}}
              withoutHeaders: {x-c: {}}
              queryParams: {q: {exact: "1"}}
              cookies: {session: {regex: "abc.*"}}
              port: 8080
              ignoreUriCase: true
              sourceLabels: {app: x}
              sourceNamespace: ns
              statPrefix: stats
            rewrite: {authority: b.example.com, uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/v2/\\\\1"}}
            route:
            - destination: {host: a, subset: v1, port: {number: 80}}
              weight: 70
              headers: {request: {set: {x-route: a}}, response: {remove: [server]}}
            - destination: {host: b}
              weight: 30
            timeout: 10s
            retries: {attempts: 2, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure", retryRemoteLocalities: true,
                      retryIgnorePreviousHosts: false, backoff: 100ms}
            fault:
              delay: {fixedDelay: 5s, percentage: {value: 0.1}}
              abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
            mirror: {host: shadow}
            mirrorPercentage: {value: 5.5}
            corsPolicy:
              allowOrigins: [{exact: "https://x.example.com"}, {regex: ".*\\\\.example\\\\.com"}]
              allowMethods: [GET, POST]
              allowHeaders: [x-a]
              exposeHeaders: [x-b]
              maxAge: 24h
              allowCredentials: true
              unmatchedPreflights: IGNORE
            headers: {request: {add: {x-a: "1"}, remove: [x-b]}, response: {set: {x-c: "3"}}}
          - match: [{uri: {exact: /old}}]
            redirect: {uri: /new, authority: c.example.com, port: 8443, scheme: https, redirectCode: 308}
          - match: [{uri: {prefix: /teapot}}]
            directResponse: {status: 418, body: {string: "short and stout"}}
          - mirrors:
            - destination: {host: m1}
              percentage: {value: 50}
            route: [{destination: {host: a}}]
          tcp:
          - match: [{port: 3306}]
            route: [{destination: {host: db, port: {number: 3306}}}]
          tls:
          - match: [{sniHosts: [a.example.com], port: 443}]
            route: [{destination: {host: a}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a, namespace: ns}
        spec:
          host: a
          subsets: [{name: v1, labels: {version: v1}}]
        """
        let set = try ConfigLoader.parse(text, source: "all.yaml")
        let r = set.virtualServices[0].spec.http[0]
        XCTAssertEqual(r.name, "everything")
        let m = r.match[0]
        XCTAssertEqual(m.uri, .regex("/v[0-9]+/.*"))
        XCTAssertEqual(m.headers.map(\.name), ["x-a", "x-b"])
        XCTAssertEqual(m.headers[0].match, .present)
        XCTAssertEqual(m.withoutHeaders[0].match, .present)
        XCTAssertEqual(m.cookies[0], NamedStringMatch(name: "session", match: .regex("abc.*")))
        XCTAssertEqual(m.port, 8080)
        XCTAssertTrue(m.ignoreUriCase)
        XCTAssertEqual(r.route.map(\.weight), [70, 30])
        XCTAssertEqual(r.route[0].headers?.request?.set, ["x-route": "a"])
        XCTAssertEqual(r.timeout?.milliseconds, 10_000)
        XCTAssertEqual(r.retries?.retryOn, "gateway-error,connect-failure")
        XCTAssertEqual(r.retries?.retryIgnorePreviousHosts, false)
        XCTAssertEqual(r.retries?.backoff?.milliseconds, 100)
        XCTAssertEqual(r.fault?.delay?.percentage?.value, 0.1)
        XCTAssertEqual(r.fault?.abort?.grpcStatus, "UNAVAILABLE")
        XCTAssertEqual(r.mirror?.host, "shadow")
        XCTAssertEqual(r.mirrorPercentage?.value, 5.5)
        XCTAssertEqual(r.corsPolicy?.maxAge?.milliseconds, 86_400_000)
        XCTAssertEqual(r.corsPolicy?.allowOrigins.count, 2)
        XCTAssertEqual(r.rewrite?.uriRegexRewrite?.rewrite, "/v2/\\1")
        let redirect = set.virtualServices[0].spec.http[1].redirect
        XCTAssertEqual(redirect?.redirectCode, 308)
        XCTAssertEqual(redirect?.port, 8443)
        XCTAssertEqual(set.virtualServices[0].spec.http[2].directResponse?.status, 418)
        XCTAssertEqual(set.virtualServices[0].spec.http[2].directResponse?.body?.string, "short and stout")
        XCTAssertEqual(set.virtualServices[0].spec.http[3].mirrors.first?.percentage?.value, 50)
        XCTAssertEqual(set.virtualServices[0].spec.tcp.first?.match.first?.port, 3306)
        XCTAssertEqual(set.virtualServices[0].spec.tls.first?.match.first?.sniHosts, ["a.example.com"])
    }

    func testGatewayAndServiceEntryFields() throws {
        let text = """
        apiVersion: networking.istio.io/v1beta1
        kind: Gateway
        metadata: {name: edge, namespace: ns}
        spec:
          selector: {app: edge}
          servers:
          - name: https
            port: {number: 8443, name: https, protocol: HTTPS, targetPort: 8443}
            bind: 127.0.0.1
            hosts: [ns/shop.example.com, "*/api.example.com"]
            tls:
              mode: MUTUAL
              serverCertificate: /certs/tls.crt
              privateKey: /certs/tls.key
              caCertificates: /certs/ca.crt
              subjectAltNames: [spiffe://x]
              minProtocolVersion: TLSV1_2
              maxProtocolVersion: TLSV1_3
              cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]
          - port: {number: 80, name: http, protocol: http}
            hosts: ["*"]
            tls: {httpsRedirect: true}
        ---
        apiVersion: networking.istio.io/v1beta1
        kind: ServiceEntry
        metadata: {name: ext, namespace: ns}
        spec:
          hosts: [api.external.com]
          addresses: [192.0.2.0/24]
          ports: [{number: 443, name: tls, protocol: TLS}]
          location: MESH_EXTERNAL
          resolution: DNS
          endpoints: [{address: api.external.com, network: n1, locality: us-east1/a, weight: 3}]
          exportTo: ["*"]
        """
        let set = try ConfigLoader.parse(text, source: "gw.yaml")
        let s = set.gateways[0].spec.servers
        XCTAssertEqual(s[0].bind, "127.0.0.1")
        XCTAssertEqual(s[0].port.targetPort, 8443)
        XCTAssertEqual(s[0].tls?.minProtocolVersion, "TLSV1_2")
        XCTAssertEqual(s[1].port.protocol, "HTTP")
        XCTAssertFalse(s[1].terminatesTLS, "httpsRedirect alone does not make a TLS listener")
        let se = set.serviceEntries[0].spec
        XCTAssertEqual(se.resolution, "DNS")
        XCTAssertEqual(se.endpoints[0].weight, 3)
        XCTAssertEqual(se.addresses, ["192.0.2.0/24"])
    }

    func testRetryOnTokens() {
        XCTAssertEqual(RetryOn.tokens(" 5xx , 409,,unavailable "), [.condition("5xx"), .statusCode(409), .condition("unavailable")])
        XCTAssertEqual(RetryOn.tokens("\t503"), [.statusCode(503)])
        XCTAssertEqual(RetryOn.errors("5xx,bogus,599"), [
            "\"bogus\" is not a valid retryOn policy (expected an HTTP status code or one of " + RetryOn.conditionNames.joined(separator: ", ") + ")",
            "\"599\" is not a valid retryOn status code",
        ])
        XCTAssertEqual(RetryOn.errors(""), [])
        XCTAssertEqual(Set(RetryOn.conditionNames).count, RetryOn.conditionNames.count)
    }

    func testDurations() {
        XCTAssertEqual(ConfigDuration.parse("10s")?.milliseconds, 10_000)
        XCTAssertEqual(ConfigDuration.parse("0.5s")?.milliseconds, 500)
        XCTAssertEqual(ConfigDuration.parse("100ms")?.milliseconds, 100)
        XCTAssertEqual(ConfigDuration.parse("1m30s")?.milliseconds, 90_000)
        XCTAssertEqual(ConfigDuration.parse("1h")?.milliseconds, 3_600_000)
        XCTAssertEqual(ConfigDuration.parse("1h2m3.5s")?.milliseconds, 3_723_500)
        XCTAssertEqual(ConfigDuration.parse("250us")?.nanoseconds, 250_000)
        XCTAssertEqual(ConfigDuration.parse("0")?.nanoseconds, 0)
        for bad in ["", "10", "s", "1x", "-1s", "1.s.", "ten seconds", "1 s", "5d"] {
            XCTAssertNil(ConfigDuration.parse(bad), bad)
        }
        XCTAssertEqual(ConfigDuration(milliseconds: 1500).description, "1500ms")
    }

    func testRegexFullMatch() throws {
        let re = try RE2Regex.compile("4f9e.*").get()
        XCTAssertTrue(re.fullMatch("4f9e715d"))
        XCTAssertFalse(re.fullMatch("x4f9e715d"), "RE2 full match, not a search")
        let anchored = try RE2Regex.compile("abc").get()
        XCTAssertFalse(anchored.fullMatch("abcd"))
        XCTAssertTrue(anchored.fullMatch("abc"))
        if case .success = RE2Regex.compile("a(b") { XCTFail("bad pattern compiled") }
        if case .failure(let e) = RE2Regex.compile("(?P<name>x)") { XCTFail("RE2 named group rejected: \(e.message)") }
        // Lookaround is not RE2.
        if case .success = RE2Regex.compile("a(?=b)") { XCTFail("lookahead accepted") }
    }

    func testRegexIsUsableFromManyThreads() throws {
        let re = try RE2Regex.compile("user-[0-9]+").get()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for j in 0..<2000 {
                XCTAssertTrue(re.fullMatch("user-\(i)\(j)"))
                XCTAssertFalse(re.fullMatch("user-\(i)x"))
            }
        }
    }
}
