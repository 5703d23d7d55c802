import XCTest
@testable import RemoraConfig

/// `Proxy.spec.dns` and the IP literals its servers are checked with.
final class ProxyDNSTests: XCTestCase {
    private func load(_ spec: String) -> (ProxySpec?, [ConfigError]) {
        let text = "apiVersion: remora.dev/v1alpha1\nkind: Proxy\nmetadata: {name: p}\nspec:\n" + spec
        do {
            let set = try ConfigLoader.parse(text, source: "p.yaml")
            return (set.proxy, [])
        } catch {
            return (nil, error.errors)
        }
    }

    func testServersAndRefreshRateDecode() throws {
        let (spec, errors) = load("""
          dns:
            servers: ["127.0.0.1:5353", 10.0.0.10, "[fd00::10]:53", "::1", "[::1]"]
            refreshRate: 90s
        """)
        XCTAssertEqual(errors.map(\.description), [])
        let dns = try XCTUnwrap(spec?.dns)
        XCTAssertEqual(dns.servers, [.init(address: "127.0.0.1", port: 5353), .init(address: "10.0.0.10", port: nil),
                                     .init(address: "fd00::10", port: 53), .init(address: "::1", port: nil),
                                     .init(address: "::1", port: nil)])
        XCTAssertEqual(dns.refreshRate?.milliseconds, 90_000)
    }

    func testBothFieldsAreOptional() throws {
        let (spec, errors) = load("  dns: {}\n")
        XCTAssertEqual(errors.count, 0)
        XCTAssertNil(try XCTUnwrap(spec?.dns).servers)
        XCTAssertNil(try XCTUnwrap(spec?.dns).refreshRate)
        let (none, _) = load("  workers: 1\n")
        XCTAssertNil(none?.dns)
    }

    func testErrorsNameTheField() {
        let (_, errors) = load("""
          dns:
            servers: [dns.example.com, "10.0.0.1:99999", "10.0.0.1:53:1", "[fd00::1"]
            refreshRate: 500ms
            timeout: 5s
        """)
        XCTAssertEqual(Set(errors.map(\.path)), ["spec.dns.servers[0]", "spec.dns.servers[1]", "spec.dns.servers[2]",
                                                 "spec.dns.servers[3]", "spec.dns.refreshRate", "spec.dns.timeout"])
        XCTAssertTrue(errors.allSatisfy { $0.resource == "Proxy default/p" })
        XCTAssertEqual(errors.first { $0.path == "spec.dns.timeout" }?.message, "unknown field \"timeout\"")
        XCTAssertEqual(errors.first { $0.path == "spec.dns.refreshRate" }?.message, "must be at least 1s")
        let (_, typed) = load("  dns: {servers: 10.0.0.1, refreshRate: often}\n")
        XCTAssertEqual(Set(typed.map(\.path)), ["spec.dns.servers", "spec.dns.refreshRate"])
    }

    func testIPLiterals() {
        for ok in ["0.0.0.0", "127.0.0.1", "255.255.255.255"] { XCTAssertTrue(IPLiteral.isIPv4(ok), ok) }
        for bad in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", "a.b.c.d", "", "1.2.3.4 ", "+1.2.3.4"] {
            XCTAssertFalse(IPLiteral.isIPv4(bad), bad)
        }
        for ok in ["::", "::1", "fd00::10", "2001:db8:0:0:0:0:2:1", "2001:DB8::8:800:200C:417A", "::ffff:10.0.0.1", "1::"] {
            XCTAssertTrue(IPLiteral.isIPv6(ok), ok)
        }
        for bad in [":", ":::", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":1::", "1:", "::1.2.3",
                    "fe80::1%eth0", "10.0.0.1", "1:2:3:4:5:6:7::8:9"] {
            XCTAssertFalse(IPLiteral.isIPv6(bad), bad)
        }
        XCTAssertEqual(IPLiteral.parseHostPort("10.0.0.1:53")?.port, 53)
        XCTAssertNil(IPLiteral.parseHostPort("10.0.0.1:0"))
        XCTAssertNil(IPLiteral.parseHostPort("[10.0.0.1]:53"))
        XCTAssertNil(IPLiteral.parseHostPort("[::1]53"))
        XCTAssertNil(IPLiteral.parseHostPort("localhost:53"))
    }
}
