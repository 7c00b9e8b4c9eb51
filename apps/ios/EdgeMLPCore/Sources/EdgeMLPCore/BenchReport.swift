import Foundation

// The bench JSON the app writes: the layout of `BenchReport.to_dict()` in edge_mlp/bench/schema.py,
// so `edge_mlp.bench.validate`, the README table and the plot read the app's results like the
// host's. tests/test_app_contract.py parses this file: every field of the Python dataclasses must
// be declared here with the same JSON type (one `public let` per line, `CodingKeys` with one
// `case` per line). Python reads optional keys directly (lat["p5_ms"]), so each `encode(to:)`
// below writes nil as null instead of leaving the key out.

/// Fixed-input latency statistics over `runs` timed forwards, in milliseconds.
public struct Latency: Codable, Equatable, Sendable {
    public let medianMs: Double
    public let p10Ms: Double?
    public let p90Ms: Double?
    public let meanMs: Double
    public let minMs: Double
    public let runs: Int
    /// LiteRT's benchmark tool reports p5/p95; the app reports p10/p90 and writes these as null.
    public let p5Ms: Double?
    public let p95Ms: Double?

    enum CodingKeys: String, CodingKey {
        case medianMs = "median_ms"
        case p10Ms = "p10_ms"
        case p90Ms = "p90_ms"
        case meanMs = "mean_ms"
        case minMs = "min_ms"
        case runs
        case p5Ms = "p5_ms"
        case p95Ms = "p95_ms"
    }

    public init(medianMs: Double, p10Ms: Double?, p90Ms: Double?, meanMs: Double, minMs: Double, runs: Int,
                p5Ms: Double? = nil, p95Ms: Double? = nil) {
        self.medianMs = medianMs
        self.p10Ms = p10Ms
        self.p90Ms = p90Ms
        self.meanMs = meanMs
        self.minMs = minMs
        self.runs = runs
        self.p5Ms = p5Ms
        self.p95Ms = p95Ms
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(medianMs, forKey: .medianMs)
        try c.encode(p10Ms, forKey: .p10Ms)
        try c.encode(p90Ms, forKey: .p90Ms)
        try c.encode(meanMs, forKey: .meanMs)
        try c.encode(minMs, forKey: .minMs)
        try c.encode(runs, forKey: .runs)
        try c.encode(p5Ms, forKey: .p5Ms)
        try c.encode(p95Ms, forKey: .p95Ms)
    }
}

/// One artifact's measurement: a row of the README's latency table.
public struct BenchResult: Codable, Equatable, Sendable {
    public let model: String
    /// A value of BACKENDS in schema.py: "coreml" or "executorch-xnnpack" here (`Backend`).
    public let backend: String
    public let precision: String
    public let shiftLowering: String
    public let latency: Latency
    public let throughputIps: Double
    public let macs: Int
    public let gflops: Double
    /// Needs a GEMM peak measured in the same process; the app measures none.
    public let pctOfGemmPeak: Double?
    public let artifact: String?
    public let sizeBytes: Int?
    public let loadRssMb: Double?
    public let speedupVsEagerFp32: Double?
    public let eagerBaselineLowering: String?
    public let speedupVsFp32: Double?
    public let fp32BaselineLowering: String?
    public let delegation: [String: String]?
    /// Per-op profile: only the host's `edge-mlp bench --profile` records one; the app writes null.
    public let profile: [String: String]?
    /// "ios:<device model identifier>".
    public let source: String

    enum CodingKeys: String, CodingKey {
        case model
        case backend
        case precision
        case shiftLowering = "shift_lowering"
        case latency
        case throughputIps = "throughput_ips"
        case macs
        case gflops
        case pctOfGemmPeak = "pct_of_gemm_peak"
        case artifact
        case sizeBytes = "size_bytes"
        case loadRssMb = "load_rss_mb"
        case speedupVsEagerFp32 = "speedup_vs_eager_fp32"
        case eagerBaselineLowering = "eager_baseline_lowering"
        case speedupVsFp32 = "speedup_vs_fp32"
        case fp32BaselineLowering = "fp32_baseline_lowering"
        case delegation
        case profile
        case source
    }

    public init(model: String, backend: String, precision: String, shiftLowering: String, latency: Latency,
                throughputIps: Double, macs: Int, gflops: Double, pctOfGemmPeak: Double? = nil,
                artifact: String? = nil, sizeBytes: Int? = nil, loadRssMb: Double? = nil,
                speedupVsEagerFp32: Double? = nil, speedupVsFp32: Double? = nil,
                delegation: [String: String]? = nil, source: String) {
        self.model = model
        self.backend = backend
        self.precision = precision
        self.shiftLowering = shiftLowering
        self.latency = latency
        self.throughputIps = throughputIps
        self.macs = macs
        self.gflops = gflops
        self.pctOfGemmPeak = pctOfGemmPeak
        self.artifact = artifact
        self.sizeBytes = sizeBytes
        self.loadRssMb = loadRssMb
        self.speedupVsEagerFp32 = speedupVsEagerFp32
        self.eagerBaselineLowering = nil
        self.speedupVsFp32 = speedupVsFp32
        self.fp32BaselineLowering = nil
        self.delegation = delegation
        self.profile = nil
        self.source = source
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(backend, forKey: .backend)
        try c.encode(precision, forKey: .precision)
        try c.encode(shiftLowering, forKey: .shiftLowering)
        try c.encode(latency, forKey: .latency)
        try c.encode(throughputIps, forKey: .throughputIps)
        try c.encode(macs, forKey: .macs)
        try c.encode(gflops, forKey: .gflops)
        try c.encode(pctOfGemmPeak, forKey: .pctOfGemmPeak)
        try c.encode(artifact, forKey: .artifact)
        try c.encode(sizeBytes, forKey: .sizeBytes)
        try c.encode(loadRssMb, forKey: .loadRssMb)
        try c.encode(speedupVsEagerFp32, forKey: .speedupVsEagerFp32)
        try c.encode(eagerBaselineLowering, forKey: .eagerBaselineLowering)
        try c.encode(speedupVsFp32, forKey: .speedupVsFp32)
        try c.encode(fp32BaselineLowering, forKey: .fp32BaselineLowering)
        try c.encode(delegation, forKey: .delegation)
        try c.encode(profile, forKey: .profile)
        try c.encode(source, forKey: .source)
    }
}

/// The share of latency a shift lowering costs; only the host benchmark measures it (the app
/// writes an empty list), declared so the document has the schema's shape.
public struct ShiftCost: Codable, Equatable, Sendable {
    public let model: String
    public let backend: String
    public let precision: String
    public let lowering: String
    public let medianMs: Double
    public let identityMedianMs: Double

    enum CodingKeys: String, CodingKey {
        case model
        case backend
        case precision
        case lowering
        case medianMs = "median_ms"
        case identityMedianMs = "identity_median_ms"
    }
}

/// What the numbers were measured on.
public struct Machine: Codable, Equatable, Sendable {
    /// Device model and CPU cores, e.g. "iPhone16,1, 6 CPU cores (2 performance)".
    public let description: String
    /// "ios <version>".
    public let platform: String
    public let threads: Int
    /// Null: no GEMM peak is measured on the phone.
    public let gemmPeakGflops: Double?
    /// "not measured on device".
    public let gemm: String
    /// Null: the host benchmark reports its own process; device runs do not.
    public let processPeakRssMb: Double?

    enum CodingKeys: String, CodingKey {
        case description
        case platform
        case threads
        case gemmPeakGflops = "gemm_peak_gflops"
        case gemm
        case processPeakRssMb = "process_peak_rss_mb"
    }

    public init(description: String, platform: String, threads: Int, gemmPeakGflops: Double? = nil,
                gemm: String = "not measured on device", processPeakRssMb: Double? = nil) {
        self.description = description
        self.platform = platform
        self.threads = threads
        self.gemmPeakGflops = gemmPeakGflops
        self.gemm = gemm
        self.processPeakRssMb = processPeakRssMb
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(description, forKey: .description)
        try c.encode(platform, forKey: .platform)
        try c.encode(threads, forKey: .threads)
        try c.encode(gemmPeakGflops, forKey: .gemmPeakGflops)
        try c.encode(gemm, forKey: .gemm)
        try c.encode(processPeakRssMb, forKey: .processPeakRssMb)
    }
}

/// How the run was made. A free-form dict in Python; these are the keys the app writes.
public struct BenchSettings: Codable, Equatable, Sendable {
    public let warmup: Int
    public let runs: Int
    public let threads: Int
    /// Core ML compute units ("all", "cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine"); null when no
    /// Core ML model was measured.
    public let computeUnits: String?

    enum CodingKeys: String, CodingKey {
        case warmup
        case runs
        case threads
        case computeUnits = "compute_units"
    }

    public init(warmup: Int, runs: Int, threads: Int, computeUnits: String?) {
        self.warmup = warmup
        self.runs = runs
        self.threads = threads
        self.computeUnits = computeUnits
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(warmup, forKey: .warmup)
        try c.encode(runs, forKey: .runs)
        try c.encode(threads, forKey: .threads)
        try c.encode(computeUnits, forKey: .computeUnits)
    }
}

/// The root of the bench JSON document.
public struct BenchReport: Codable, Equatable, Sendable {
    public let schemaVersion: Int
    public let tool: String
    public let edgeMlpVersion: String
    public let machine: Machine
    public let settings: BenchSettings
    public let results: [BenchResult]
    public let shiftCosts: [ShiftCost]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case tool
        case edgeMlpVersion = "edge_mlp_version"
        case machine
        case settings
        case results
        case shiftCosts = "shift_costs"
    }

    /// edge_mlp/bench/schema.py BENCH_SCHEMA_VERSION.
    public static let currentSchemaVersion = 2
    /// The `tool` value the Python side expects from this app.
    public static let iosAppTool = "edge-mlp ios app"

    public init(edgeMlpVersion: String, machine: Machine, settings: BenchSettings, results: [BenchResult],
                tool: String = BenchReport.iosAppTool, shiftCosts: [ShiftCost] = [],
                schemaVersion: Int = BenchReport.currentSchemaVersion) {
        self.schemaVersion = schemaVersion
        self.tool = tool
        self.edgeMlpVersion = edgeMlpVersion
        self.machine = machine
        self.settings = settings
        self.results = results
        self.shiftCosts = shiftCosts
    }

    /// The document as UTF-8 JSON; keys sorted so two runs diff cleanly.
    public func jsonData(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Backend names: the values of BACKENDS in edge_mlp/bench/schema.py that this app produces.
public enum Backend {
    public static let coreML = "coreml"
    public static let executorchXNNPACK = "executorch-xnnpack"
}

public enum BenchError: Error, Equatable, LocalizedError, CustomStringConvertible {
    case noSamples
    case missingMacs(model: String)

    public var description: String {
        switch self {
        case .noSamples:
            return "no latency samples: runs must be at least 1"
        case let .missingMacs(model):
            return "the manifest of \(model) has no model.macs (written by newer edge-mlp); re-convert and "
                + "bundle it again to benchmark it (GFLOP/s needs the MAC count)"
        }
    }

    public var errorDescription: String? { description }
}

public extension Latency {
    /// Statistics of timed runs, in ms, as edge-mlp's benchmark computes them (edge_mlp/timing.py
    /// `Latency.from_samples`, ported operation for operation; the Android app's LatencyStats.kt is
    /// the same port): the median is `statistics.median` (the mean of the two middle runs for an even
    /// count), p10 / p90 are `statistics.quantiles(n=10, method="inclusive")` (linear interpolation
    /// between the two nearest runs; one run is every decile).
    init(samplesMs: [Double]) throws {
        guard !samplesMs.isEmpty else { throw BenchError.noSamples }
        let sorted = samplesMs.sorted()
        let deciles = Self.deciles(sorted)
        self.init(medianMs: Self.median(sorted), p10Ms: deciles[0], p90Ms: deciles[8],
                  meanMs: sorted.reduce(0, +) / Double(sorted.count), minMs: sorted[0], runs: sorted.count)
    }

    /// `statistics.median` of ascending, non-empty values.
    static func median(_ sorted: [Double]) -> Double {
        let n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /// `statistics.quantiles(sorted, n=10, method="inclusive")` of ascending, non-empty values: the
    /// 9 deciles, p10 first.
    static func deciles(_ sorted: [Double]) -> [Double] {
        guard sorted.count > 1 else { return Array(repeating: sorted[0], count: 9) }
        let m = sorted.count - 1
        return (1..<10).map { i in
            // Python: j, delta = divmod(i * m, n); (data[j] * (n - delta) + data[j + 1] * delta) / n
            let j = i * m / 10, delta = i * m % 10
            return (sorted[j] * Double(10 - delta) + sorted[j + 1] * Double(delta)) / 10
        }
    }
}

public extension BenchResult {
    /// A result row for a bundled artifact: names, precision, size and MACs from its manifest;
    /// throughput and GFLOP/s from the median, as schema.py's `validate` recomputes them.
    init(manifest: Manifest, backend: String, latency: Latency, source: String, loadRssMb: Double? = nil) throws {
        guard let macs = manifest.model.macs, macs > 0 else {
            throw BenchError.missingMacs(model: manifest.model.name)
        }
        self.init(model: manifest.model.name, backend: backend, precision: manifest.precision,
                  shiftLowering: manifest.shiftLowering.used, latency: latency,
                  throughputIps: 1000.0 / latency.medianMs, macs: macs,
                  gflops: 2.0 * Double(macs) / (latency.medianMs * 1e6),
                  artifact: manifest.artifact.file, sizeBytes: manifest.artifact.sizeBytes,
                  loadRssMb: loadRssMb, source: source)
    }
}
