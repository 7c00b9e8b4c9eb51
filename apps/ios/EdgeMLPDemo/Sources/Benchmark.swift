import Darwin
import EdgeMLPCore
import Foundation

/// Monotonic time for latencies (mach absolute time; wall-clock changes do not affect it).
enum Stopwatch {
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func milliseconds(since start: UInt64) -> Double { Double(now() - start) / 1e6 }
}

/// Warm-up and timed run counts. Defaults match `edge-mlp bench` (--warmup 5 --runs 30) so phone
/// and host rows are comparable.
struct BenchmarkSettings: Sendable {
    var warmup = 5
    var runs = 30

    /// Overrides from the environment, for `xcodebuild test` (which passes `TEST_RUNNER_X=...` to
    /// the test process as `X`): EDGE_MLP_WARMUP, EDGE_MLP_RUNS.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> BenchmarkSettings {
        var settings = BenchmarkSettings()
        if let warmup = environment["EDGE_MLP_WARMUP"].flatMap(Int.init), warmup >= 0 { settings.warmup = warmup }
        if let runs = environment["EDGE_MLP_RUNS"].flatMap(Int.init), runs >= 1 { settings.runs = runs }
        return settings
    }
}

extension ComputeUnits {
    /// EDGE_MLP_COMPUTE_UNITS=all|cpuOnly|cpuAndGPU|cpuAndNeuralEngine, for `xcodebuild test`.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> ComputeUnits? {
        environment["EDGE_MLP_COMPUTE_UNITS"].flatMap(ComputeUnits.init(rawValue:))
    }
}

/// A finished benchmark: the report, its JSON (the bench schema) and a line for people.
struct BenchmarkOutcome: Sendable {
    let report: BenchReport
    let json: Data
    let summary: String
}

/// Loaded models, each with the fixed preprocessed input it is timed on. Loading and warm-up
/// happen in `load`, so `load_rss_mb` covers both, as the host benchmark's does; `run` then only
/// times forwards.
final class BenchmarkSession: @unchecked Sendable {
    struct Entry {
        let model: BundledModel
        let classifier: Classifier
        let input: [Float]
        let loadRssMb: Double?
    }

    let settings: BenchmarkSettings
    let computeUnits: ComputeUnits
    let entries: [Entry]

    private init(settings: BenchmarkSettings, computeUnits: ComputeUnits, entries: [Entry]) {
        self.settings = settings
        self.computeUnits = computeUnits
        self.entries = entries
    }

    /// Loads every model and warms it up on `image` (default: the first bundled sample, else a
    /// synthetic gradient), preprocessed with that model's own manifest.
    static func load(_ models: [BundledModel], samples: [BundledSample], image: RGBAImage? = nil,
                     settings: BenchmarkSettings, computeUnits: ComputeUnits) async throws -> BenchmarkSession {
        let picture = try image ?? samples.first.map { try ImageDecoding.decode(contentsOf: $0.url) } ?? gradient()
        var entries: [Entry] = []
        for model in models {
            let input = try Preprocessing(model.manifest.preprocessing)
                .apply(rgba: picture.pixels, width: picture.width, height: picture.height)
            let before = DeviceInfo.residentMegabytes()
            let classifier = try await ClassifierFactory.make(model, computeUnits: computeUnits)
            for _ in 0..<settings.warmup { _ = try classifier.classify(input) }
            let after = DeviceInfo.residentMegabytes()
            let delta = before.flatMap { b in after.map { $0 - b } }
            entries.append(Entry(model: model, classifier: classifier, input: input, loadRssMb: delta))
        }
        return BenchmarkSession(settings: settings, computeUnits: computeUnits, entries: entries)
    }

    /// `settings.runs` timed forwards per model -> the bench document.
    func run() throws -> BenchmarkOutcome {
        let source = "ios:\(DeviceInfo.modelIdentifier)"
        var results: [BenchResult] = []
        for entry in entries {
            var samples: [Double] = []
            samples.reserveCapacity(settings.runs)
            for _ in 0..<settings.runs {
                let start = Stopwatch.now()
                _ = try entry.classifier.classify(entry.input)
                samples.append(Stopwatch.milliseconds(since: start))
            }
            results.append(try BenchResult(manifest: entry.model.manifest, backend: entry.classifier.backendName,
                                           latency: Latency(samplesMs: samples), source: source,
                                           loadRssMb: entry.loadRssMb))
        }
        let usesCoreML = entries.contains { $0.classifier.backendName == Backend.coreML }
        let threads = DeviceInfo.runtimeThreads
        let report = BenchReport(
            edgeMlpVersion: entries.first?.model.manifest.edgeMlpVersion ?? "",
            machine: DeviceInfo.machine(threads: threads),
            settings: BenchSettings(warmup: settings.warmup, runs: settings.runs, threads: threads,
                                    computeUnits: usesCoreML ? computeUnits.rawValue : nil),
            results: results)
        let summary = results.map { r in
            String(format: "%@ %@ %@: median %.3f ms (p10 %.3f, p90 %.3f), %.1f GFLOP/s", r.model, r.backend, r.precision,
                   r.latency.medianMs, r.latency.p10Ms ?? .nan, r.latency.p90Ms ?? .nan, r.gflops)
        }.joined(separator: "\n")
        return BenchmarkOutcome(report: report, json: try report.jsonData(), summary: summary)
    }

    /// One forward of every model: the block Xcode's XCTClockMetric measures.
    func forwardEach() throws {
        for entry in entries { _ = try entry.classifier.classify(entry.input) }
    }

    /// Writes the JSON as `edge-mlp-bench-ios-<device>-<time>.json` in `directory`.
    static func write(_ outcome: BenchmarkOutcome, to directory: URL) throws -> URL {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let device = DeviceInfo.modelIdentifier.replacingOccurrences(of: ",", with: "_")
        let url = directory.appendingPathComponent("edge-mlp-bench-ios-\(device)-\(formatter.string(from: Date())).json")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try outcome.json.write(to: url, options: .atomic)
        return url
    }

    /// The app's Documents folder (visible in Files and Finder: UIFileSharingEnabled is set).
    static func documentsDirectory() throws -> URL {
        try FileManager.default.url(for: .documentDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
    }

    /// A deterministic stand-in image when nothing is bundled to time on (latency does not depend
    /// on the pixel values).
    private static func gradient(width: Int = 256, height: Int = 256) -> RGBAImage {
        var pixels = [UInt8](repeating: 255, count: width * height * 4)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 4
                pixels[i] = UInt8(x * 255 / (width - 1))
                pixels[i + 1] = UInt8(y * 255 / (height - 1))
                pixels[i + 2] = 128
            }
        }
        return RGBAImage(pixels: pixels, width: width, height: height)
    }
}

/// The device, for the bench document's `machine`.
enum DeviceInfo {
    /// "iPhone16,1"; in the simulator, the simulated model's identifier.
    static var modelIdentifier: String {
        if let simulated = ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] { return simulated }
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    static var isSimulator: Bool {
        ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"] != nil
    }

    /// Performance cores (Apple's perflevel0), nil where the kernel does not report levels.
    static var performanceCores: Int? { sysctlInt("hw.perflevel0.physicalcpu") }

    /// Threads the CPU runtime uses: ExecuTorch's threadpool defaults to the performance cores
    /// (extension/threadpool/threadpool.cpp), and neither runtime's Swift API sets a count. Core ML
    /// schedules its own work; the same number is recorded for it.
    static var runtimeThreads: Int { performanceCores ?? ProcessInfo.processInfo.activeProcessorCount }

    static func machine(threads: Int) -> Machine {
        let cores = ProcessInfo.processInfo.processorCount
        let performance = performanceCores.map { " (\($0) performance)" } ?? ""
        let simulator = isSimulator ? " simulator" : ""
        let version = ProcessInfo.processInfo.operatingSystemVersion
        return Machine(description: "\(modelIdentifier)\(simulator), \(cores) CPU cores\(performance)",
                       platform: "ios \(version.majorVersion).\(version.minorVersion).\(version.patchVersion)",
                       threads: threads)
    }

    /// Resident memory of this process in MB (task_vm_info), nil if the kernel call fails.
    static func residentMegabytes() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let status = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        guard status == KERN_SUCCESS else { return nil }
        return Double(info.resident_size) / 1_048_576
    }

    private static func sysctlInt(_ name: String) -> Int? {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard sysctlbyname(name, &value, &size, nil, 0) == 0 else { return nil }
        return Int(value)
    }
}
