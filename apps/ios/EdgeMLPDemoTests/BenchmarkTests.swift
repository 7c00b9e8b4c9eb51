import XCTest
@testable import EdgeMLPDemo

/// On-device latency of every bundled model, in edge-mlp's bench JSON (what `edge-mlp bench
/// --device ios` points to). Runs inside the app (hosted tests), on the device or simulator that
/// `xcodebuild test -destination ...` names:
///
///     TEST_RUNNER_EDGE_MLP_RUNS=50 TEST_RUNNER_EDGE_MLP_COMPUTE_UNITS=cpuAndNeuralEngine \
///     xcodebuild test -project EdgeMLPDemo.xcodeproj -scheme EdgeMLPDemo \
///       -destination 'platform=iOS,name=<iPhone>' -only-testing:EdgeMLPDemoTests/BenchmarkTests
///
/// The document is printed between EDGE_MLP_BENCH_JSON_BEGIN / EDGE_MLP_BENCH_JSON_END (scrape the
/// xcodebuild log), attached to the result bundle, and written to the test's temporary directory.
/// Xcode's own XCTClockMetric then measures one forward of every model per iteration.
final class BenchmarkTests: XCTestCase {
    static let beginMarker = "EDGE_MLP_BENCH_JSON_BEGIN"
    static let endMarker = "EDGE_MLP_BENCH_JSON_END"

    func testBundledModelsLatency() throws {
        let content = BundledContent.scan()
        for problem in content.problems { print("edge-mlp: not benchmarked: \(problem)") }
        guard !content.models.isEmpty else {
            throw XCTSkip("nothing bundled: run `edge-mlp bundle <dir> --app ios` and build again (apps/ios/README.md)")
        }
        let session = try load(content)

        // Our own timing loop: warm-up already ran in `load`; `runs` timed forwards per model.
        let outcome = try session.run()
        let url = try BenchmarkSession.write(outcome, to: FileManager.default.temporaryDirectory)
        let attachment = XCTAttachment(contentsOfFile: url)
        attachment.name = url.lastPathComponent
        attachment.lifetime = .keepAlways
        add(attachment)
        print(Self.beginMarker)
        print(String(decoding: outcome.json, as: UTF8.self))
        print(Self.endMarker)
        print(outcome.summary)

        // Xcode's view of the same forwards (baselines, the Report navigator).
        let options = XCTMeasureOptions()
        options.iterationCount = 5
        measure(metrics: [XCTClockMetric()], options: options) {
            do {
                try session.forwardEach()
            } catch {
                XCTFail("forward failed: \(error)")
            }
        }
    }

    /// Loads and warms up every model. Core ML compiles asynchronously, and XCTest's `measure`
    /// cannot run in an async test, so the test stays synchronous and waits here.
    private func load(_ content: BundledContent) throws -> BenchmarkSession {
        let settings = BenchmarkSettings.fromEnvironment()
        let units = ComputeUnits.fromEnvironment() ?? .all
        let done = expectation(description: "models loaded")
        let box = ResultBox()
        Task.detached {
            do {
                box.result = .success(try await BenchmarkSession.load(content.models, samples: content.samples,
                                                                      settings: settings, computeUnits: units))
            } catch {
                box.result = .failure(error)
            }
            done.fulfill()
        }
        wait(for: [done], timeout: 600)
        return try XCTUnwrap(box.result).get()
    }
}

/// Carries the load result out of the task; the expectation orders the write before the read.
private final class ResultBox: @unchecked Sendable {
    var result: Result<BenchmarkSession, Error>?
}
