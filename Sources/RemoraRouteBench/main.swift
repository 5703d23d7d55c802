// Route-resolution benchmark (not a test): ns per Snapshot.resolve call, median of several runs.
//   swift run -c release RemoraRouteBench [--quick]
//   swift run -c release RemoraRouteBench --only "host index"   (one case, e.g. under perf)
// (a) the feature-branch example (shared/examples/feature-branch.yaml) plus ServiceEntries for its four
//     services; (b) 10 000 rules: 10 000 VirtualServices with distinct hosts (host-indexed), and one
//     VirtualService with 10 000 header rules where the request matches the last one.
import RemoraConfig
import RemoraPolicy

#if canImport(Glibc)
import Glibc
#endif

/// A request shaped like the proxy's ParsedRequest: raw header bytes, each `header(_:)` call scans
/// them case-insensitively and builds a String — the cost routing pays per lookup.
struct BenchRequest: RouteRequest {
    let authorityBytes: [UInt8]
    let pathBytes: [UInt8]
    let methodBytes: [UInt8]
    let scheme: String
    let port: Int
    let headers: [(name: [UInt8], value: [UInt8])]

    init(authority: String, path: String = "/", method: String = "GET", scheme: String = "http", port: Int,
         headers: [(String, String)]) {
        authorityBytes = Array(authority.utf8)
        pathBytes = Array(path.utf8)
        methodBytes = Array(method.utf8)
        self.scheme = scheme
        self.port = port
        // What a browser or gRPC client typically sends besides the headers under test.
        let common = [("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"), ("Accept", "text/html,application/xhtml+xml"),
                      ("Accept-Encoding", "gzip, deflate, br"), ("Accept-Language", "en-US,en;q=0.9"),
                      ("X-Request-Id", "7d3f2c1e-9b8a-4c6d-8e5f-1a2b3c4d5e6f"), ("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
        self.headers = (common + headers).map { (Array($0.0.utf8), Array($0.1.utf8)) }
    }

    var authority: String { String(decoding: authorityBytes, as: UTF8.self) }
    var path: String { String(decoding: pathBytes, as: UTF8.self) }
    var method: String { String(decoding: methodBytes, as: UTF8.self) }

    func header(_ lowercasedName: String) -> String? {
        var result: String?
        var name = lowercasedName
        name.withUTF8 { n in
            for h in headers where h.name.count == n.count && BenchRequest.equalsLowercased(h.name, n) {
                let v = String(decoding: h.value, as: UTF8.self)
                if result == nil { result = v } else { result! += (lowercasedName == "cookie" ? "; " : ",") + v }
            }
        }
        return result
    }

    private static func equalsLowercased(_ raw: [UInt8], _ lower: UnsafeBufferPointer<UInt8>) -> Bool {
        for i in 0..<raw.count {
            var c = raw[i]
            if c >= 65 && c <= 90 { c |= 0x20 }
            if c != lower[i] { return false }
        }
        return true
    }
}

/// Keeps results alive so the optimizer cannot drop the calls.
nonisolated(unsafe) var sink = 0

func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Median over `runs` of the mean ns per call of `iterations` calls.
func measure(_ label: String, runs: Int, iterations: Int, expect: String?, _ body: () -> RouteMatchResult?) {
    if let only, !label.contains(only) { return }
    let got = body()?.entry.name
    if got != expect {
        print("!! \(label): expected \(expect ?? "no match"), got \(got ?? "no match")")
        exit(1)
    }
    for _ in 0..<min(iterations, 1000) { sink &+= body()?.entry.ruleIndex ?? -1 }  // warm-up
    var samples: [Double] = []
    let iterations = only != nil ? iterations * 10 : iterations  // one case alone: run longer, for profiles
    for _ in 0..<runs {
        let start = nowNs()
        for _ in 0..<iterations { sink &+= body()?.entry.ruleIndex ?? -1 }
        samples.append(Double(nowNs() - start) / Double(iterations))
    }
    samples.sort()
    let median = samples[samples.count / 2]
    let pad = String(repeating: " ", count: max(0, 58 - label.count))
    print("\(label)\(pad)\(String(format: "%10.1f", median)) ns/call   (min \(String(format: "%.1f", samples[0])), max \(String(format: "%.1f", samples[samples.count - 1])), \(runs)×\(iterations))")
}

func compile(_ text: String, _ what: String) -> Snapshot {
    let start = nowNs()
    do {
        let s = try Snapshot.compile(try ConfigLoader.parse(text, source: what))
        print("  compiled \(what) in \(String(format: "%.0f", Double(nowNs() - start) / 1e6)) ms")
        return s
    } catch {
        print("cannot compile \(what): \(error)")
        exit(1)
    }
}

func listener(_ s: Snapshot, port: Int) -> Int {
    guard let i = s.listeners.firstIndex(where: { $0.address.port == port }) else { print("no listener on \(port)"); exit(1) }
    return i
}

func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

let quick = CommandLine.arguments.contains("--quick")
/// `--only TEXT`: run only the cases whose label contains TEXT (for profiling one case).
let only: String? = CommandLine.arguments.firstIndex(of: "--only").flatMap {
    $0 + 1 < CommandLine.arguments.count ? CommandLine.arguments[$0 + 1] : nil
}
/// Whether any case of a section is selected (its snapshot is only compiled then).
func wants(_ labels: String...) -> Bool { only.map { o in labels.contains { $0.contains(o) } } ?? true }
let runs = quick ? 3 : 9
let n = quick ? 20_000 : 200_000
let session = "4f9e715d-fe56-4a1e-964b-b00b607e7695"

// MARK: (a) the feature-branch seed tables

let featureBranchExample = """
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: octopus.tech}
    hosts: ["*"]
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: frontend}
spec:
  gateways: [istio-system/ingressgateway]
  hosts: ['*']
  http:
  - match:
    - headers:
        Cookie: {exact: shop_session-id=4f9e715d-fe56-4a1e-964b-b00b607e7695}
    route: [{destination: {host: frontend-myfeature}}]
  - route: [{destination: {host: frontend}}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: adservice}
spec:
  hosts: [adservice]
  http:
  - match: [{headers: {userid: {exact: 4f9e715d-fe56-4a1e-964b-b00b607e7695}}}]
    route: [{destination: {host: adservice-myfeature}}]
  - route: [{destination: {host: adservice}}]
"""

func serviceEntry(_ name: String, port: Int, protocol proto: String, address: String) -> String {
    """
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: \(name)}
    spec:
      hosts: [\(name)]
      ports: [{number: \(port), name: \(proto.lowercased()), protocol: \(proto)}]
      resolution: STATIC
      endpoints: [{address: \(address)}]

    """
}

// MARK: (a) the feature-branch seed tables, with ServiceEntries for its services

func benchFeatureBranch() {
    print("(a) feature-branch example + ServiceEntries")
    let example = readFile("/work/shared/examples/feature-branch.yaml") ?? featureBranchExample
    let fbText = example + "\n" + serviceEntry("frontend", port: 80, protocol: "HTTP", address: "10.0.1.10")
        + serviceEntry("frontend-myfeature", port: 80, protocol: "HTTP", address: "10.0.1.11")
        + serviceEntry("adservice", port: 9555, protocol: "GRPC", address: "10.0.2.10")
        + serviceEntry("adservice-myfeature", port: 9555, protocol: "GRPC", address: "10.0.2.11")
    let fb = compile(fbText, "feature-branch")
    let gw80 = listener(fb, port: 80)
    let mesh = listener(fb, port: 15001)
    let cookieReq = BenchRequest(authority: "shop.example.com", path: "/product/OLJCESPC7Z", port: 80,
                                 headers: [("Cookie", "shop_session-id=\(session)")])
    let otherReq = BenchRequest(authority: "shop.example.com", path: "/product/OLJCESPC7Z", port: 80,
                                headers: [("Cookie", "shop_session-id=0c2b7b2e-0000-4000-8000-000000000000")])
    let useridReq = BenchRequest(authority: "adservice:9555", path: "/hipstershop.AdService/GetAds", method: "POST", port: 15001,
                                 headers: [("Content-Type", "application/grpc"), ("TE", "trailers"), ("userid", session)])
    measure("  gateway, matching session cookie", runs: runs, iterations: n, expect: "default/frontend#0") {
        fb.resolve(listener: gw80, cookieReq)
    }
    measure("  gateway, another session (falls through)", runs: runs, iterations: n, expect: "default/frontend#1") {
        fb.resolve(listener: gw80, otherReq)
    }
    measure("  mesh, adservice with userid", runs: runs, iterations: n, expect: "default/adservice#0") {
        fb.resolve(listener: mesh, useridReq)
    }
}

// MARK: (b) 10 000 rules

let count = 10_000

/// 10 000 mesh VirtualServices with distinct hosts: the host index decides, whatever the count.
func benchManyHosts() {
    var hostsText = ""
    hostsText.reserveCapacity(count * 200)
    for i in 0..<count {
        hostsText += """
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: svc-\(i)}
        spec:
          hosts: [svc-\(i).example.com]
          http: [{route: [{destination: {host: backend-\(i % 100)}}]}]

        """
    }
    let hostsSnap = compile(hostsText, "10 000 VirtualServices")
    let hostsMesh = listener(hostsSnap, port: 15001)
    let lastHostReq = BenchRequest(authority: "svc-9999.example.com:8080", path: "/api/items", port: 15001, headers: [])
    measure("  10 000 VirtualServices, host svc-9999 (host index)", runs: runs, iterations: n, expect: "default/svc-9999#0") {
        hostsSnap.resolve(listener: hostsMesh, lastHostReq)
    }
    let missHostReq = BenchRequest(authority: "unknown.example.com", path: "/", port: 15001, headers: [])
    measure("  10 000 VirtualServices, unknown host", runs: runs, iterations: n, expect: nil) {
        hostsSnap.resolve(listener: hostsMesh, missHostReq)
    }
}

/// One VirtualService with `count` rules, each `headers: {userid: MATCH}`, and a last catch-all.
func headerRulesText(_ match: (Int) -> String) -> String {
    var t = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: adservice}
    spec:
      hosts: [adservice]
      http:

    """
    t.reserveCapacity(count * 120)
    for i in 0..<count {
        t += "  - match: [{headers: {userid: \(match(i))}}]\n    route: [{destination: {host: adservice-branch-\(i % 50)}}]\n"
    }
    t += "  - route: [{destination: {host: adservice}}]\n"
    return t
}

/// The runbook's shape at scale: exact userid rules are one dictionary lookup (RuleList).
func benchExactHeaderRules() {
    let exactSnap = compile(headerRulesText { "{exact: user-\($0)}" }, "10 000 exact header rules")
    let lastUser = BenchRequest(authority: "adservice:9555", path: "/hipstershop.AdService/GetAds", method: "POST", port: 15001,
                                headers: [("Content-Type", "application/grpc"), ("userid", "user-\(count - 1)")])
    measure("  10 000 exact userid rules, request matches the last", runs: runs, iterations: n,
            expect: "default/adservice#\(count - 1)") {
        exactSnap.resolve(listener: 0, lastUser)
    }
    let noUser = BenchRequest(authority: "adservice:9555", path: "/hipstershop.AdService/GetAds", method: "POST", port: 15001,
                              headers: [("Content-Type", "application/grpc")])
    measure("  10 000 exact userid rules, no userid (catch-all)", runs: runs, iterations: n, expect: "default/adservice#\(count)") {
        exactSnap.resolve(listener: 0, noUser)
    }
}

/// Prefix conditions cannot be indexed: every rule is tried, reading the (cached) header each time.
func benchPrefixHeaderRules() {
    let prefixSnap = compile(headerRulesText { "{prefix: user-\($0)-}" }, "10 000 prefix header rules")
    let lastPrefixUser = BenchRequest(authority: "adservice:9555", path: "/hipstershop.AdService/GetAds", method: "POST", port: 15001,
                                      headers: [("Content-Type", "application/grpc"), ("userid", "user-\(count - 1)-x")])
    measure("  10 000 prefix userid rules (linear scan), matches the last", runs: runs, iterations: quick ? 200 : 2_000,
            expect: "default/adservice#\(count - 1)") {
        prefixSnap.resolve(listener: 0, lastPrefixUser)
    }
}

print("Snapshot.resolve, release build, median of \(runs) runs\n")
if wants("gateway, matching session cookie", "gateway, another session (falls through)", "mesh, adservice with userid") {
    benchFeatureBranch()
}
print("\n(b) 10 000 rules")
if wants("10 000 VirtualServices, host svc-9999 (host index)", "10 000 VirtualServices, unknown host") {
    benchManyHosts()
}
if wants("10 000 exact userid rules, request matches the last", "10 000 exact userid rules, no userid (catch-all)") {
    benchExactHeaderRules()
}
if wants("10 000 prefix userid rules (linear scan), matches the last") {
    benchPrefixHeaderRules()
}
print("\n(sink \(sink & 1))")
