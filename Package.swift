// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

// The per-request targets skip the run-time exclusivity checks in release builds: every access
// to a class property or global through `inout` otherwise calls swift_beginAccess/endAccess,
// measured at about 5% of the proxy's user CPU per request. Debug builds (and so the tests)
// keep the checks, and the compile-time checks apply to every build. They are also built with
// cross-module optimization, so small functions of one module (field lookups, appends) are
// inlined into the next: 1 to 1.5% fewer instructions per request (callgrind, BENCHMARKS.md).
// Allowed for a root or path dependency (the Benchmarks package depends on this one by path).
let hot: [SwiftSetting] = strict + [
    .unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "idemproxy",
    products: [
        .executable(name: "idemproxy", targets: ["idemproxy"]),
        // For the micro-benchmarks in Benchmarks/ (a separate package).
        .library(name: "IdemproxyCore", targets: ["HTTP1", "Idempotency"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
    ],
    targets: [
        // C: Linux headers Glibc does not export to Swift (epoll, eventfd, signals).
        .target(name: "CSystemShims", cSettings: [.define("_GNU_SOURCE")]),
        // C: system libhiredis 0.14 (async API).
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        // C: system OpenSSL (libssl) for TLS to Redis, with wrappers for its macros.
        .target(name: "CTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // C: system libcrypto, used only for SHA-256 through EVP.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(name: "EventLoop", dependencies: ["CSystemShims"], swiftSettings: hot),
        .target(name: "HTTP1", swiftSettings: hot),
        .target(name: "Config", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: strict),
        .target(name: "RedisClient", dependencies: ["CHiredis", "CTLS", "EventLoop"], swiftSettings: hot),
        .target(name: "Idempotency", dependencies: ["CLibCrypto", "HTTP1"], swiftSettings: hot),
        .target(name: "RedisStore", dependencies: ["Idempotency", "RedisClient", "EventLoop"], swiftSettings: hot),
        .target(name: "Observability", swiftSettings: hot),
        .target(name: "Upstream", dependencies: ["EventLoop", "HTTP1"], swiftSettings: hot),
        .target(name: "Proxy", dependencies: ["EventLoop", "HTTP1", "Upstream", "Config", "Idempotency", "RedisClient", "RedisStore", "Observability"], swiftSettings: hot),
        .executableTarget(
            name: "idemproxy",
            dependencies: ["Proxy", "Config", "RedisStore", "RedisClient", "Idempotency", "EventLoop", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),

        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop"], swiftSettings: strict),
        // The seeded generator the randomised suites share.
        .target(name: "TestRandom", path: "Tests/TestRandom", swiftSettings: strict),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1", "TestRandom"], swiftSettings: strict),
        .testTarget(name: "ConfigTests", dependencies: ["Config"], swiftSettings: strict),
        .testTarget(name: "IdempotencyTests", dependencies: ["Idempotency", "TestRandom"], swiftSettings: strict),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability"], swiftSettings: strict),
        .testTarget(name: "UpstreamTests", dependencies: ["Upstream"], swiftSettings: strict),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient"], swiftSettings: strict),
        // Real-socket test doubles (origin, client, proxy harness, redis-server process).
        .target(name: "TestSupport", dependencies: ["Proxy", "Config", "Idempotency"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "TestSupport", "EventLoop", "Config", "Idempotency"], swiftSettings: strict),
        // The deployment files (deploy/, Dockerfile) checked against the code: manifests parsed,
        // embedded configs through `idemproxy check-config`, dashboard queries against /metrics.
        .testTarget(
            name: "DeployTests",
            dependencies: ["TestSupport", "Config", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // Needs a live redis-server: REDIS_URL (set by scripts/test) and redis-server in PATH.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Proxy", "TestSupport", "Idempotency", "RedisClient", "RedisStore", "EventLoop"],
            swiftSettings: strict),
    ]
)
