import RemoraConfig
import RemoraPolicy
import XCTest

/// SplitMix64: a fixed seed gives the same sequence on every run, so percentage tests are deterministic.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next() >> 32) }
}

enum TestConfig {
    static func compile(_ text: String) throws -> Snapshot {
        try Snapshot.compile(try ConfigLoader.parse(text, source: "test.yaml"))
    }

    /// A mesh VirtualService `default/vs` for host `svc` with these http rules (YAML, indented by two).
    static func mesh(_ http: String, hosts: String = "[svc]") throws -> Snapshot {
        try compile("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs}
        spec:
          hosts: \(hosts)
          http:
        \(http)
        """)
    }

    /// The compile errors of a configuration that must be rejected, as "path: message".
    static func errors(_ text: String) -> [String] {
        do {
            _ = try Snapshot.compile(try ConfigLoader.parse(text, source: "test.yaml"))
            return []
        } catch {
            return error.errors.map { "\($0.path): \($0.message)" }  // typed throws: ConfigErrors
        }
    }
}

extension Snapshot {
    /// resolve on the mesh outbound listener (index 0 when there is no Proxy resource).
    func resolveMesh(_ req: FakeRequest) -> RouteMatchResult? { resolve(listener: 0, req) }

    /// The matched rule's index, or nil.
    func ruleIndex(_ req: FakeRequest) -> Int? { resolveMesh(req)?.entry.ruleIndex }
}

/// The fraction of `n` seeded draws for which `hit` is true.
func fraction(_ n: Int, seed: UInt64, _ hit: (inout SeededRandom) -> Bool) -> Double {
    var rng = SeededRandom(seed: seed)
    var hits = 0
    for _ in 0..<n where hit(&rng) { hits += 1 }
    return Double(hits) / Double(n)
}
