import Foundation
import XCTest
@testable import EdgeMLPCore

/// The bench JSON must be what edge_mlp/bench/schema.py writes: every key present (Python indexes
/// optional keys directly, so nil must be written as null) and the numbers `validate` recomputes.
final class BenchReportTests: XCTestCase {
    // MARK: statistics

    func testStatisticsAreEdgeMLPs() throws {
        let samples: [Double] = [7, 3, 10, 1, 9, 2, 8, 4, 6, 5]
        let latency = try Latency(samplesMs: samples)
        XCTAssertEqual(latency.runs, 10)
        XCTAssertEqual(latency.minMs, 1)
        XCTAssertEqual(latency.meanMs, 5.5)
        XCTAssertEqual(latency.p10Ms, 1.9)  // statistics.quantiles(n=10, method="inclusive")[0]
        XCTAssertEqual(latency.medianMs, 5.5)  // statistics.median: the mean of 5 and 6
        XCTAssertEqual(latency.p90Ms, 9.1)
        XCTAssertNil(latency.p5Ms)
        XCTAssertNil(latency.p95Ms)
    }

    private struct LatencyVectors: Decodable {
        struct Case: Decodable {
            let name: String
            let samplesMs: [Double]
            let medianMs: Double
            let p10Ms: Double
            let p90Ms: Double
            let meanMs: Double
            let minMs: Double
            let runs: Int

            enum CodingKeys: String, CodingKey {
                case name
                case samplesMs = "samples_ms"
                case medianMs = "median_ms"
                case p10Ms = "p10_ms"
                case p90Ms = "p90_ms"
                case meanMs = "mean_ms"
                case minMs = "min_ms"
                case runs
            }
        }

        let cases: [Case]
    }

    /// `Resources/latency_vectors.json`: what edge_mlp/timing.py `Latency.from_samples` reports
    /// for the same runs (edge-mlp's tests check the file against Python; the Android app reads it too).
    func testLatencyVectorsAreWhatPythonReports() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "latency_vectors", withExtension: "json",
                                                  subdirectory: "Resources"))
        let vectors = try JSONDecoder().decode(LatencyVectors.self, from: Data(contentsOf: url))
        XCTAssertFalse(vectors.cases.isEmpty)
        for c in vectors.cases {
            let latency = try Latency(samplesMs: c.samplesMs)
            // Exact in Python; the tolerance only absorbs a JSON decoder that does not round-trip.
            let tolerance = 1e-12 * max(1, abs(c.medianMs))
            XCTAssertEqual(latency.medianMs, c.medianMs, accuracy: tolerance, c.name)
            XCTAssertEqual(try XCTUnwrap(latency.p10Ms), c.p10Ms, accuracy: tolerance, c.name)
            XCTAssertEqual(try XCTUnwrap(latency.p90Ms), c.p90Ms, accuracy: tolerance, c.name)
            XCTAssertEqual(latency.minMs, c.minMs, c.name)
            XCTAssertEqual(latency.runs, c.runs, c.name)
            // Python's fmean sums exactly; the app sums in order: equal to rounding.
            XCTAssertEqual(latency.meanMs, c.meanMs, accuracy: 1e-12 * c.meanMs, c.name)
        }
    }

    func testOneSampleIsEveryStatistic() throws {
        let latency = try Latency(samplesMs: [2.5])
        XCTAssertEqual([latency.minMs, latency.p10Ms, latency.medianMs, latency.p90Ms, latency.meanMs], [2.5, 2.5, 2.5, 2.5, 2.5])
    }

    func testStatisticsAreOrderedForAnyInput() throws {
        var generator = SystemRandomNumberGenerator()
        for n in 1...40 {
            let samples = (0..<n).map { _ in Double.random(in: 0.1...50, using: &generator) }
            let l = try Latency(samplesMs: samples)
            let order = try [l.minMs, XCTUnwrap(l.p10Ms), l.medianMs, XCTUnwrap(l.p90Ms)]
            XCTAssertEqual(order, order.sorted())
        }
    }

    func testNoSamplesIsAnError() {
        XCTAssertThrowsError(try Latency(samplesMs: [])) { XCTAssertEqual($0 as? BenchError, .noSamples) }
    }

    // MARK: result rows

    func testResultFromManifestFollowsTheSchemaFormulas() throws {
        let manifest = try manifestWithMacs(12_500_000)
        let latency = try Latency(samplesMs: [4, 5, 6])
        let result = try BenchResult(manifest: manifest, backend: Backend.executorchXNNPACK, latency: latency,
                                     source: "ios:iPhone16,1", loadRssMb: 3.5)
        XCTAssertEqual(result.model, manifest.model.name)
        XCTAssertEqual(result.precision, manifest.precision)
        XCTAssertEqual(result.shiftLowering, manifest.shiftLowering.used)
        XCTAssertEqual(result.artifact, manifest.artifact.file)
        XCTAssertEqual(result.sizeBytes, manifest.artifact.sizeBytes)
        XCTAssertEqual(result.macs, 12_500_000)
        XCTAssertEqual(result.throughputIps, 1000.0 / 5.0)
        XCTAssertEqual(result.gflops, 2.0 * 12_500_000 / (5.0 * 1e6))
        XCTAssertEqual(result.loadRssMb, 3.5)
        XCTAssertNil(result.pctOfGemmPeak)
        XCTAssertEqual(result.source, "ios:iPhone16,1")
    }

    func testResultNeedsTheManifestMacs() throws {
        let data = try Fixtures.edited(target: "coreml") { Fixtures.set(nil, at: ["model", "macs"], in: &$0) }
        let manifest = try Manifest.decode(data)
        XCTAssertThrowsError(try BenchResult(manifest: manifest, backend: Backend.coreML,
                                             latency: Latency(samplesMs: [1]), source: "ios:x")) {
            XCTAssertEqual($0 as? BenchError, .missingMacs(model: manifest.model.name))
        }
    }

    // MARK: the JSON document

    func testEveryKeyIsWrittenNullsIncluded() throws {
        let json = try object(report().jsonData())
        XCTAssertEqual(Set(json.keys), ["schema_version", "tool", "edge_mlp_version", "machine", "settings",
                                        "results", "shift_costs"])
        XCTAssertEqual(json["schema_version"] as? Int, 2)
        XCTAssertEqual(json["tool"] as? String, "edge-mlp ios app")
        XCTAssertEqual((json["shift_costs"] as? [Any])?.count, 0)

        let machine = try XCTUnwrap(json["machine"] as? [String: Any])
        XCTAssertEqual(Set(machine.keys), ["description", "platform", "threads", "gemm_peak_gflops", "gemm",
                                           "process_peak_rss_mb"])
        XCTAssertTrue(machine["gemm_peak_gflops"] is NSNull)
        XCTAssertTrue(machine["process_peak_rss_mb"] is NSNull)
        XCTAssertEqual(machine["gemm"] as? String, "not measured on device")

        let settings = try XCTUnwrap(json["settings"] as? [String: Any])
        XCTAssertEqual(Set(settings.keys), ["warmup", "runs", "threads", "compute_units"])
        XCTAssertEqual(settings["compute_units"] as? String, "cpuAndNeuralEngine")

        let results = try XCTUnwrap(json["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 1)
        let result = results[0]
        XCTAssertEqual(Set(result.keys), ["model", "backend", "precision", "shift_lowering", "latency",
                                          "throughput_ips", "macs", "gflops", "pct_of_gemm_peak", "artifact",
                                          "size_bytes", "load_rss_mb", "speedup_vs_eager_fp32", "speedup_vs_fp32",
                                          "delegation", "source"])
        for key in ["pct_of_gemm_peak", "load_rss_mb", "speedup_vs_eager_fp32", "speedup_vs_fp32", "delegation"] {
            XCTAssertTrue(result[key] is NSNull, key)
        }
        XCTAssertEqual(result["backend"] as? String, "coreml")

        let latency = try XCTUnwrap(result["latency"] as? [String: Any])
        XCTAssertEqual(Set(latency.keys), ["median_ms", "p10_ms", "p90_ms", "mean_ms", "min_ms", "runs",
                                           "p5_ms", "p95_ms"])
        XCTAssertTrue(latency["p5_ms"] is NSNull)
        XCTAssertTrue(latency["p95_ms"] is NSNull)
        XCTAssertEqual(latency["runs"] as? Int, 5)
    }

    func testComputeUnitsIsNullWithoutCoreML() throws {
        let settings = BenchSettings(warmup: 1, runs: 2, threads: 4, computeUnits: nil)
        let json = try object(JSONEncoder().encode(settings))
        XCTAssertTrue(json["compute_units"] is NSNull)
    }

    func testDocumentRoundTrips() throws {
        let original = try report()
        XCTAssertEqual(try JSONDecoder().decode(BenchReport.self, from: original.jsonData(pretty: false)), original)
    }

    // MARK: helpers

    private func manifestWithMacs(_ macs: Int) throws -> Manifest {
        try Manifest.decode(Fixtures.edited(target: "coreml") { Fixtures.set(macs, at: ["model", "macs"], in: &$0) })
    }

    private func report() throws -> BenchReport {
        let manifest = try manifestWithMacs(40_000_000)
        let result = try BenchResult(manifest: manifest, backend: Backend.coreML,
                                     latency: Latency(samplesMs: [1.2, 1.1, 1.4, 1.3, 1.25]), source: "ios:iPhone16,1")
        return BenchReport(
            edgeMlpVersion: manifest.edgeMlpVersion,
            machine: Machine(description: "iPhone16,1, 6 CPU cores (2 performance)", platform: "ios 17.5", threads: 2),
            settings: BenchSettings(warmup: 3, runs: 5, threads: 2, computeUnits: "cpuAndNeuralEngine"),
            results: [result])
    }

    private func object(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
