@testable import RemoraTLS
import XCTest

final class HostSelectorTests: XCTestCase {
    func testOrder() {
        let s = HostSelector([["default.test"], ["*.example.com"], ["api.example.com"], ["*.deep.example.com"], ["*"]])
        XCTAssertEqual(s.select(nil), 0)
        XCTAssertEqual(s.select(""), 0)
        XCTAssertEqual(s.select("DEFAULT.test."), 0)
        XCTAssertEqual(s.select("api.example.com"), 2)
        XCTAssertEqual(s.select("www.example.com"), 1)
        XCTAssertEqual(s.select("a.b.example.com"), 1)
        XCTAssertEqual(s.select("x.deep.example.com"), 3)
        XCTAssertEqual(s.select("example.com"), 4)
        XCTAssertEqual(s.select("other.org"), 4)
        XCTAssertEqual(HostSelector([["a.test"], ["b.test"]]).select("c.test"), 0)
    }
}
