// swift-tools-version:5.9
import PackageDescription

// The app's runtime-independent logic: the manifest and bench schemas, preprocessing, top-k.
// Pure Foundation on purpose, so `swift test` runs it on a Mac or on Linux without Xcode or a device.
let package = Package(
    name: "EdgeMLPCore",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "EdgeMLPCore", targets: ["EdgeMLPCore"]),
    ],
    targets: [
        .target(name: "EdgeMLPCore"),
        .testTarget(
            name: "EdgeMLPCoreTests",
            dependencies: ["EdgeMLPCore"],
            // Real manifests and the preprocessing vectors, shared with edge-mlp's Python tests.
            resources: [.copy("Resources")]
        ),
    ]
)
