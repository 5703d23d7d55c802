import RemoraConfig
import XCTest

final class ConfigValueTests: XCTestCase {
    func testJSONAndYAMLRoundTrip() throws {
        let v = try ConfigValue.parse(#"{"b": 1, "a": [true, null, "80", 2.5, "x\"y"], "c": {}}"#)
        XCTAssertEqual(v.jsonString(), #"{"b":1,"a":[true,null,"80",2.5,"x\"y"],"c":{}}"#)
        let yaml = v.yamlString()
        XCTAssertEqual(try ConfigValue.parse(yaml), v, yaml)
        XCTAssertEqual(try ConfigValue.parse(""), .null)
        XCTAssertThrowsError(try ConfigValue.parse("{unclosed"))
    }

    func testResourceRawReencodesAndReloads() throws {
        let set = try ConfigLoader.parse(Fixtures.featureBranch, source: "fb")
        let json = set.resources.map { $0.raw.jsonString() }.joined(separator: "\n---\n")
        let again = try ConfigLoader.parse(json, source: "json")
        XCTAssertEqual(again.virtualServices, set.virtualServices)
        XCTAssertEqual(again.gateways, set.gateways)
        let yaml = ConfigValue.yamlDocuments(set.resources.map(\.raw))
        XCTAssertEqual(try ConfigLoader.parse(yaml, source: "yaml").virtualServices, set.virtualServices)
    }
}
