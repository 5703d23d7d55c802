// swift-tools-version:6.0
// Remora: a service-mesh data plane. The target graph enforces the layering
// (docs/architecture.md): codecs, config and policy never import the event loop.
import PackageDescription

// Swift 5 language mode: the event loop owns its objects per thread and crosses
// threads only through EventLoop.post, which strict Sendable checking cannot see.
// Release builds drop the dynamic exclusivity checks (6 % of a proxied request's CPU in
// a profile); debug builds, which the tests run, keep them.
let settings: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
    .unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Remora",
    products: [
        .executable(name: "remora", targets: ["remora"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C boundary
        .target(name: "CShims", path: "Sources/CShims"),
        .systemLibrary(name: "CNGHTTP2", path: "Sources/CNGHTTP2", pkgConfig: "libnghttp2",
                       providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCAres", path: "Sources/CCAres", pkgConfig: "libcares",
                       providers: [.apt(["libc-ares-dev"])]),
        .target(name: "CRE2", path: "Sources/CRE2",
                linkerSettings: [.linkedLibrary("re2")]),

        // Swift modules
        .target(name: "RemoraCore", swiftSettings: settings),
        .target(name: "RemoraIO", dependencies: ["CShims", "RemoraCore"], swiftSettings: settings),
        .target(name: "RemoraHTTP1", swiftSettings: settings),
        .target(name: "RemoraH2", dependencies: ["CNGHTTP2", "RemoraCore"], swiftSettings: settings),
        .target(name: "RemoraDNS", dependencies: ["CCAres", "RemoraCore", "RemoraIO"], swiftSettings: settings),
        .target(name: "RemoraTLS", dependencies: ["COpenSSL", "RemoraCore", "RemoraIO"], swiftSettings: settings),
        .target(name: "RemoraConfig", dependencies: ["Yams", "CRE2"], swiftSettings: settings),
        .target(name: "RemoraPolicy", dependencies: ["RemoraConfig", "CRE2"], swiftSettings: settings),
        .target(name: "RemoraResilience", dependencies: ["RemoraCore", "RemoraConfig"], swiftSettings: settings),
        .target(name: "RemoraTelemetry", dependencies: ["RemoraCore"], swiftSettings: settings),
        .target(name: "RemoraAdmin", dependencies: ["RemoraCore", "RemoraIO", "RemoraHTTP1", "RemoraConfig", "RemoraPolicy", "Yams"], swiftSettings: settings),
        .target(name: "RemoraProxy",
                dependencies: ["RemoraCore", "RemoraIO", "RemoraDNS", "RemoraHTTP1", "RemoraH2", "RemoraTLS", "RemoraAdmin", "RemoraTelemetry", "RemoraResilience", "RemoraConfig", "RemoraPolicy"],
                swiftSettings: settings),
        .target(name: "RemoraEcho", dependencies: ["RemoraCore", "RemoraIO", "RemoraHTTP1", "RemoraH2", "RemoraTLS"],
                swiftSettings: settings),
        .executableTarget(name: "remora",
                          dependencies: ["RemoraProxy", "RemoraEcho", "RemoraConfig", "RemoraPolicy",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: settings),
        .executableTarget(name: "RemoraRouteBench", dependencies: ["RemoraPolicy", "RemoraConfig"], swiftSettings: settings),

        // The users' example, shared by several modules' unit tests
        .target(name: "RemoraTestFixtures", path: "Tests/SharedFixtures", swiftSettings: settings),

        // Unit tests beside each module (end-to-end tests live in Tests/e2e, pytest)
        .testTarget(name: "RemoraCoreTests", dependencies: ["RemoraCore"], swiftSettings: settings),
        .testTarget(name: "RemoraIOTests", dependencies: ["RemoraIO"], swiftSettings: settings),
        .testTarget(name: "RemoraHTTP1Tests", dependencies: ["RemoraHTTP1"], swiftSettings: settings),
        .testTarget(name: "RemoraH2Tests", dependencies: ["RemoraH2", "RemoraCore"], swiftSettings: settings),
        .testTarget(name: "RemoraDNSTests", dependencies: ["RemoraDNS", "RemoraCore", "RemoraIO"], swiftSettings: settings),
        .testTarget(name: "RemoraTLSTests", dependencies: ["RemoraTLS", "RemoraCore", "RemoraIO"], swiftSettings: settings),
        .testTarget(name: "RemoraConfigTests", dependencies: ["RemoraConfig", "RemoraTestFixtures"], swiftSettings: settings),
        .testTarget(name: "RemoraPolicyTests", dependencies: ["RemoraPolicy", "RemoraConfig", "RemoraTestFixtures"], swiftSettings: settings),
        .testTarget(name: "RemoraResilienceTests", dependencies: ["RemoraResilience", "RemoraConfig", "RemoraCore"], swiftSettings: settings),
        .testTarget(name: "RemoraTelemetryTests", dependencies: ["RemoraTelemetry", "RemoraCore"], swiftSettings: settings),
        .testTarget(name: "RemoraAdminTests", dependencies: ["RemoraAdmin", "RemoraConfig", "RemoraPolicy", "RemoraCore", "RemoraIO", "RemoraTestFixtures"], swiftSettings: settings),
        .testTarget(name: "RemoraProxyTests", dependencies: ["RemoraProxy", "RemoraCore", "RemoraHTTP1", "RemoraH2", "RemoraConfig", "RemoraPolicy"], swiftSettings: settings),
    ],
    cxxLanguageStandard: .cxx17
)
