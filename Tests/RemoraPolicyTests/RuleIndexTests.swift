import RemoraConfig
import RemoraPolicy
import XCTest

/// Runs of exact header/cookie rules are looked up in a dictionary (RuleList); first-match-wins must
/// hold exactly as with a rule-by-rule scan (which `explain` still does).
final class RuleIndexTests: XCTestCase {
    func testRunbookRulesFirstMatchWins() throws {
        var http = ""
        for i in 0..<50 { http += "  - match: [{headers: {userid: {exact: u\(i % 40)}}}]\n    route: [{destination: {host: b\(i)}}]\n" }
        http += "  - route: [{destination: {host: main}}]\n"
        let s = try TestConfig.mesh(http)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["userid": "u7"])), 7)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["UserID": "u39"])), 39)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["userid": "u2"])), 2, "a repeated value: the earlier rule wins")
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["userid": "u40"])), 50, "no such value: the catch-all")
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc")), 50, "no header: the catch-all")
    }

    func testARuleBetweenRunsKeepsItsPlace() throws {
        // 5 exact rules, a prefix rule that also matches "u7", 5 more exact rules including u7.
        var http = ""
        for i in 0..<5 { http += "  - match: [{headers: {userid: {exact: u\(i)}}}]\n    route: [{destination: {host: a}}]\n" }
        http += "  - match: [{headers: {userid: {prefix: u}}}, {cookies: {s: {exact: x}}}]\n    route: [{destination: {host: p}}]\n"
        for i in 5..<10 { http += "  - match: [{headers: {userid: {exact: u\(i)}}}]\n    route: [{destination: {host: b}}]\n" }
        for i in 10..<15 { http += "  - match: [{cookies: {s: {exact: c\(i)}}}]\n    route: [{destination: {host: c}}]\n" }
        for i in 15..<20 { http += "  - match: [{headers: {other: {exact: u\(i)}}}]\n    route: [{destination: {host: d}}]\n" }
        let s = try TestConfig.mesh(http)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["userid": "u3"])), 3)
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["userid": "u7"])), 5, "the prefix rule comes first")
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["cookie": "a=1; s=c12"])), 13, "cookie run (rules 11...15)")
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["cookie": "s=x"])), 5, "second match entry of the prefix rule")
        XCTAssertEqual(s.ruleIndex(FakeRequest("svc", headers: ["other": "u17", "userid": "zz"])), 18, "a run on another header (rules 16...20)")
        XCTAssertEqual(s.resolveMesh(FakeRequest("svc", headers: ["userid": "u8"]))?.matchedPrefix, "/")
    }

    /// Random rule lists over a small alphabet: resolve (indexed) and explain (linear) always agree.
    func testIndexedAndLinearAgree() throws {
        var rng = SeededRandom(seed: 42)
        let values = ["a", "b", "c", "d"]
        for round in 0..<25 {
            var http = ""
            let n = 6 + Int(rng.next() % 20)
            for _ in 0..<n {
                let v = values[Int(rng.next() % 4)]
                switch rng.next() % 6 {
                case 0: http += "  - match: [{headers: {h: {prefix: \"\(v)\"}}}]\n"
                case 1: http += "  - match: [{cookies: {k: {exact: \(v)}}}]\n"
                case 2: http += "  - match: [{headers: {g: {exact: \(v)}}}]\n"
                default: http += "  - match: [{headers: {h: {exact: \(v)}}}]\n"
                }
                http += "    route: [{destination: {host: x}}]\n"
            }
            let s = try TestConfig.mesh(http)
            for _ in 0..<30 {
                var headers: [String: String] = [:]
                if rng.next() % 4 != 0 { headers["h"] = values[Int(rng.next() % 4)] + (rng.next() % 3 == 0 ? "z" : "") }
                if rng.next() % 2 == 0 { headers["g"] = values[Int(rng.next() % 4)] }
                if rng.next() % 2 == 0 { headers["cookie"] = "k=\(values[Int(rng.next() % 4)])" }
                let req = FakeRequest("svc", headers: headers)
                let steps = s.explain(listener: 0, req)
                let linear = steps.last.flatMap { $0.matched ? $0.entry.ruleIndex : nil }
                XCTAssertEqual(s.ruleIndex(req), linear, "round \(round) \(headers)\n\(http)")
            }
        }
    }
}
