@testable import RemoraResilience
import XCTest

/// Ring hash and Maglev: stickiness, balance, minimal remapping; request hash keys.
final class ConsistentHashTests: XCTestCase {
    func testXXHash64KnownVectors() {
        XCTAssertEqual(XXHash64.hash(""), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXHash64.hash("a"), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXHash64.hash("abc"), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXHash64.hash("Nobody inspects the spammish repetition"), 0xFBCE_A83C_8A37_8BF1)
        XCTAssertEqual(XXHash64.hash(String(repeating: "x", count: 100)), XXHash64.hash(Array(repeating: UInt8(ascii: "x"), count: 100)))
        XCTAssertNotEqual(XXHash64.hash("abc", seed: 1), XXHash64.hash("abc"))
    }

    private func keyOwners(_ table: ConsistentHashTable, _ hostKeys: [String], keys: Int) -> [String] {
        (0..<keys).map { k in hostKeys[table.lookup(XXHash64.hash("user-\(k)")) { _ in true }!] }
    }

    /// Adds one endpoint to ten and counts the keys that moved: ≈ 1/11 is ideal.
    private func stability(_ build: ([(key: String, weight: Int)]) -> ConsistentHashTable?, name: String) -> (moved: Double, toOldEndpoints: Int) {
        let ten = endpoints(10).map(\.key)
        let eleven = ten + endpoints(1, from: 10).map(\.key)
        let before = keyOwners(build(ten.map { ($0, 1) })!, ten, keys: 10_000)
        let after = keyOwners(build(eleven.map { ($0, 1) })!, eleven, keys: 10_000)
        var moved = 0
        var movedElsewhere = 0
        for (a, b) in zip(before, after) where a != b {
            moved += 1
            if b != eleven.last! { movedElsewhere += 1 }
        }
        let fraction = Double(moved) / 10_000
        var perHost: [String: Int] = [:]
        for o in after { perHost[o, default: 0] += 1 }
        let spread = perHost.values.sorted()
        print(String(format: "%@: adding an 11th endpoint moved %d of 10000 keys (%.2f%%; ideal 1/11 = 9.09%%), %d to an old endpoint; keys per endpoint after: min %d max %d",
                     name, moved, fraction * 100, movedElsewhere, spread.first!, spread.last!))
        return (fraction, movedElsewhere)
    }

    func testRingHashAddingAnEndpointMovesAboutOneNth() {
        let (f, elsewhere) = stability({ ConsistentHashTable.ring($0) }, name: "ring hash (min ring 1024)")
        XCTAssert((0.5 / 11...2.0 / 11).contains(f), "\(f)")
        XCTAssertEqual(elsewhere, 0, "keys only move to the new endpoint")
        // Removing an endpoint moves only its keys, whenever the points per host stay the same.
        func pointsPerHost(_ n: Int) -> Int { var k = 1; while k < (1024 + n - 1) / n { k <<= 1 }; return k }
        var checked = 0
        for n in 2...64 where pointsPerHost(n) == pointsPerHost(n - 1) {
            let keys = endpoints(n).map(\.key)
            let full = keyOwners(ConsistentHashTable.ring(keys.map { ($0, 1) })!, keys, keys: 2000)
            let less = Array(keys.dropLast())
            let fewer = keyOwners(ConsistentHashTable.ring(less.map { ($0, 1) })!, less, keys: 2000)
            XCTAssertEqual(zip(full, fewer).filter { $0 != $1 && $0 != keys.last! }.count, 0, "\(n) → \(n - 1)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 50)
    }

    func testMaglevAddingAnEndpointMovesAboutOneNth() {
        let (f, elsewhere) = stability({ ConsistentHashTable.maglev($0) }, name: "maglev (table 65537)")
        XCTAssert((0.5 / 11...2.0 / 11).contains(f), "\(f)")
        // Maglev is near-minimal by design: a few keys shift between old endpoints.
        XCTAssertLessThan(elsewhere, 100, "under 1 % of keys move between old endpoints")
    }

    func testRingSizesAndWeightsFollowEnvoy() {
        let ten = endpoints(10).map { ($0.key, 1) }
        let ring = ConsistentHashTable.ring(ten)!
        XCTAssertEqual(ring.size, 1280, "ceil(1024/10) = 103 points per host, rounded up to 128")
        XCTAssertEqual(Set(ring.share(hostCount: 10)), [128])
        XCTAssertEqual(ConsistentHashTable.ring(endpoints(11).map { ($0.key, 1) })!.size, 11 * 128)
        XCTAssertEqual(ConsistentHashTable.ring(endpoints(2000).map { ($0.key, 1) })!.size, 2000, "one point each past the minimum")
        let weighted = ConsistentHashTable.ring([("a:1", 3), ("b:1", 1)], minimumRingSize: 1000)!
        XCTAssertEqual(weighted.share(hostCount: 2), [768, 256])
        // Weights too large for whole points per unit: Envoy's fractional scaling, capped.
        let huge = ConsistentHashTable.ring([("a:1", 3_000_000), ("b:1", 9_000_000)], minimumRingSize: 1024)!
        XCTAssertEqual(huge.share(hostCount: 2), [256, 768])
        let maglev = ConsistentHashTable.maglev(ten)!
        XCTAssertEqual(maglev.size, 65537)
        let share = maglev.share(hostCount: 10)
        XCTAssertEqual(share.reduce(0, +), 65537)
        XCTAssertLessThanOrEqual(share.max()! - share.min()!, 1, "Maglev fills evenly")
        let wm = ConsistentHashTable.maglev([("a:1", 3), ("b:1", 1)], tableSize: 1009)!
        XCTAssertEqual(wm.size, 1009)
        XCTAssert((740...775).contains(wm.share(hostCount: 2)[0]), "\(wm.share(hostCount: 2))")
        XCTAssertEqual(ConsistentHashTable.maglev(ten, tableSize: 1000)!.size, 1009, "raised to a prime")
        // Order of endpoints does not matter.
        let shuffled = Array(ten.reversed())
        let a = keyOwners(ConsistentHashTable.ring(ten)!, ten.map(\.0), keys: 1000)
        let b = keyOwners(ConsistentHashTable.ring(shuffled)!, shuffled.map(\.0), keys: 1000)
        XCTAssertEqual(a, b)
        let c = keyOwners(ConsistentHashTable.maglev(ten)!, ten.map(\.0), keys: 1000)
        let d = keyOwners(ConsistentHashTable.maglev(shuffled)!, shuffled.map(\.0), keys: 1000)
        XCTAssertEqual(c, d)
    }

    /// The acceptance: hashing on the `userid` header keeps each user on one
    /// endpoint across 1 000 requests, through the whole pick path.
    func testSameUserSameEndpointAcross1000Requests() throws {
        for lbYaml in ["{consistentHash: {httpHeaderName: userid}}", "{consistentHash: {httpHeaderName: userid, maglev: {tableSize: 65537}}}"] {
            let policy = try Decode.trafficPolicy("host: svc\ntrafficPolicy: {loadBalancer: \(lbYaml)}")
            let cluster = ClusterResilience(name: "outbound|80||svc", policy: policy, endpoints: endpoints(10))
            var workers = (0..<4).map { cluster.makeLoadBalancer(seed: UInt64($0)) }
            var rng = TestRandom(seed: 1)
            var usersPerHost = [Int](repeating: 0, count: 10)
            for user in 0..<200 {
                let headers = ["userid": "user-\(user)"]
                var seen = Set<Int>()
                for i in 0..<1000 {
                    let h = cluster.settings.loadBalancer.requestHash(header: { headers[$0] }, cookieHeader: { nil }, sourceIP: { "10.1.1.1" },
                                                                       path: { "/" }, connectionIdentity: { "" })
                    seen.insert(workers[i % 4].pick(hash: h?.hash, random: rng.next())!)
                }
                XCTAssertEqual(seen.count, 1, "user-\(user) under \(lbYaml)")
                usersPerHost[seen.first!] += 1
            }
            print("\(lbYaml): 200 users × 1000 requests, each user on one endpoint; users per endpoint \(usersPerHost)")
            XCTAssertEqual(usersPerHost.filter { $0 > 0 }.count, 10)
            // No header: no hash, a random pick.
            let none = cluster.settings.loadBalancer.requestHash(header: { _ in nil }, cookieHeader: { nil }, sourceIP: { nil },
                                                                  path: { "/" }, connectionIdentity: { "" })
            XCTAssertNil(none)
        }
    }

    func testEjectedHostOnlyMovesItsOwnKeys() {
        for algorithm: LoadBalancerAlgorithm in [.ringHash(minimumRingSize: 1024), .maglev(tableSize: 65537)] {
            let hosts = HostSet(endpoints(10))
            var lb = LoadBalancer(policy: LoadBalancerPolicy(algorithm: algorithm), hosts: hosts)
            let keys = (0..<5000).map { XXHash64.hash("k\($0)") }
            let before = keys.map { lb.pick(hash: $0, random: 0)! }
            hosts.hosts[3].ejectedFlag.store(true, ordering: .relaxed)
            let after = keys.map { lb.pick(hash: $0, random: 0)! }
            var movedOthers = 0
            var spread = [Int](repeating: 0, count: 10)
            for (a, b) in zip(before, after) {
                if a != 3 && a != b { movedOthers += 1 }
                if a == 3 { spread[b] += 1 }
                XCTAssertNotEqual(b, 3)
            }
            XCTAssertEqual(movedOthers, 0, "\(algorithm)")
            print("\(algorithm): ejecting host 3 moved its \(before.filter { $0 == 3 }.count) keys to \(spread)")
            hosts.hosts[3].ejectedFlag.store(false, ordering: .relaxed)
            XCTAssertEqual(keys.map { lb.pick(hash: $0, random: 0)! }, before, "back when unejected")
        }
    }

    func testHeaderSourceIPAndQueryParameterKeys() {
        XCTAssertEqual(RequestHash.header("alice"), XXHash64.hash("alice"))
        XCTAssertNil(RequestHash.header(nil))
        XCTAssertEqual(RequestHash.sourceIP("10.0.0.7"), XXHash64.hash("10.0.0.7"))
        XCTAssertEqual(RequestHash.queryValue("u", in: "/p?a=1&u=bob&u=eve#frag"), "bob")
        XCTAssertEqual(RequestHash.queryValue("u", in: "/p?a=1&flag&u=%41"), "%41")
        XCTAssertEqual(RequestHash.queryValue("flag", in: "/p?flag&x=1"), "")
        XCTAssertNil(RequestHash.queryValue("u", in: "/p?user=1"))
        XCTAssertNil(RequestHash.queryValue("u", in: "/p#u=1"))
        XCTAssertEqual(RequestHash.queryParameter("u", path: "/x?u=bob"), XXHash64.hash("bob"))
        let p = LoadBalancerPolicy(algorithm: .maglev(tableSize: 101), hashPolicy: .queryParameter("u"))
        XCTAssertEqual(p.requestHash(header: { _ in nil }, cookieHeader: { nil }, sourceIP: { nil }, path: { "/x?u=bob" },
                                     connectionIdentity: { "" })?.hash, XXHash64.hash("bob"))
        let ip = LoadBalancerPolicy(algorithm: .ringHash(minimumRingSize: 16), hashPolicy: .sourceIP)
        XCTAssertEqual(ip.requestHash(header: { _ in nil }, cookieHeader: { nil }, sourceIP: { "1.2.3.4" }, path: { "/" },
                                      connectionIdentity: { "" })?.hash, XXHash64.hash("1.2.3.4"))
        // A non-hash algorithm never computes a hash.
        XCTAssertNil(LoadBalancerPolicy(algorithm: .random, hashPolicy: .sourceIP).requestHash(
            header: { _ in nil }, cookieHeader: { nil }, sourceIP: { "1.2.3.4" }, path: { "/" }, connectionIdentity: { "" }))
    }

    func testCookieKeyAndGeneratedCookie() throws {
        let withTTL = CookieHashPolicy(name: "session", path: "/", ttlSeconds: 3600,
                                       attributes: [CookieAttribute(name: "SameSite", value: "Lax"), CookieAttribute(name: "Secure", value: "")])
        // Present: its value is the key, nothing to set.
        let present = try XCTUnwrap(RequestHash.cookie(withTTL, cookieHeader: "a=1; session=\"abc\"; b=2", connectionIdentity: "x"))
        XCTAssertEqual(present.hash, XXHash64.hash("abc"))
        XCTAssertNil(present.setCookie)
        // Absent with a ttl: generated from the connection, to be set on the response.
        let generated = try XCTUnwrap(RequestHash.cookie(withTTL, cookieHeader: "a=1", connectionIdentity: "10.0.0.1:5555|10.0.0.2:80"))
        let cookie = try XCTUnwrap(generated.setCookie)
        XCTAssertEqual(cookie.value, RequestHash.hex16(XXHash64.hash("10.0.0.1:5555|10.0.0.2:80")))
        XCTAssertEqual(cookie.value.count, 16)
        XCTAssertEqual(generated.hash, XXHash64.hash(cookie.value), "the next request, carrying it, hashes the same")
        XCTAssertEqual(cookie.headerValue, "session=\"\(cookie.value)\"; Max-Age=3600; Path=/; SameSite=Lax; Secure; HttpOnly")
        let again = try XCTUnwrap(RequestHash.cookie(withTTL, cookieHeader: "session=\(cookie.value)", connectionIdentity: "other"))
        XCTAssertEqual(again.hash, generated.hash)
        // ttl 0: a session cookie; no ttl: nothing generated, no hash (random pick).
        let session = CookieHashPolicy(name: "s", ttlSeconds: 0)
        XCTAssertEqual(RequestHash.cookie(session, cookieHeader: nil, connectionIdentity: "c")?.setCookie?.headerValue.hasPrefix("s=\""), true)
        XCTAssertEqual(RequestHash.cookie(session, cookieHeader: nil, connectionIdentity: "c")?.setCookie?.headerValue.contains("Max-Age"), false)
        XCTAssertNil(RequestHash.cookie(CookieHashPolicy(name: "s"), cookieHeader: "t=1", connectionIdentity: "c"))
        XCTAssertEqual(RequestHash.cookieValue("s", in: "ss=1; s=2"), "2")

        // Through the policy compiled from YAML.
        let policy = LoadBalancerPolicy(try Decode.trafficPolicy(
            "host: svc\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}}")?.loadBalancer)
        var asked = 0
        let r = policy.requestHash(header: { _ in nil }, cookieHeader: { nil }, sourceIP: { nil }, path: { "/" },
                                   connectionIdentity: { asked += 1; return "conn" })
        XCTAssertEqual(r?.setCookie?.name, "user")
        XCTAssertEqual(r?.setCookie?.maxAgeSeconds, 0)
        XCTAssertEqual(asked, 1)
    }
}
