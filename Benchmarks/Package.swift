// swift-tools-version:6.1
import PackageDescription

// Micro-benchmarks (ordo-one/benchmark, formerly package-benchmark), kept out of the main package
// so that its build and `swift test` never depend on the benchmark tooling and its malloc
// interposer. Run with scripts/microbench.
let package = Package(
    name: "Benchmarks",
    dependencies: [
        // Named, because a path dependency is otherwise known by its folder's name.
        .package(name: "idemproxy", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "IdemproxyBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "IdemproxyCore", package: "idemproxy"),
            ],
            path: "Benchmarks/IdemproxyBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
