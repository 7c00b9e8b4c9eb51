import EdgeMLPCore
import Foundation
import UIKit

/// The screen's state and actions. Model work runs off the main actor; `isBusy` keeps a second
/// action from starting while one runs, so a classifier is never used by two tasks at once.
@MainActor
final class DemoViewModel: ObservableObject {
    struct Timing: Sendable {
        let preprocessMs: Double
        let forwardMs: Double
    }

    let content: BundledContent

    @Published var selectedModelID: BundledModel.ID? {
        didSet { if oldValue != selectedModelID { forgetResults() } }
    }
    @Published var computeUnits: ComputeUnits = .all {
        didSet { if oldValue != computeUnits { forgetResults() } }
    }
    @Published private(set) var preview: UIImage?
    @Published private(set) var imageName: String?
    @Published private(set) var predictions: [ScoredClass] = []
    @Published private(set) var timing: Timing?
    @Published private(set) var benchmarkSummary: String?
    @Published private(set) var message: String?
    @Published private(set) var isBusy = false

    private var classifier: Classifier?
    private var classifierKey: String?
    private var lastImage: RGBAImage?

    init(content: BundledContent = .scan()) {
        self.content = content
        selectedModelID = content.models.first?.id
    }

    var selectedModel: BundledModel? { content.models.first { $0.id == selectedModelID } }

    var usesCoreML: Bool { selectedModel?.manifest.target.name == "coreml" }

    func classify(sample: BundledSample) async {
        await classify(name: sample.name, preview: UIImage(contentsOfFile: sample.url.path)) {
            try ImageDecoding.decode(contentsOf: sample.url)
        }
    }

    func classify(photo data: Data) async {
        await classify(name: "photo", preview: UIImage(data: data)) { try ImageDecoding.decode(data: data) }
    }

    /// Warm-up + timed runs of the selected model on the current image (or the first sample);
    /// the JSON goes to Documents.
    func runBenchmark() async {
        guard let model = selectedModel, !isBusy else { return }
        isBusy = true
        defer { isBusy = false }
        message = nil
        let (image, samples, units) = (lastImage, content.samples, computeUnits)
        do {
            let settings = BenchmarkSettings()
            let (outcome, url) = try await Task.detached(priority: .userInitiated) {
                let session = try await BenchmarkSession.load([model], samples: samples, image: image,
                                                              settings: settings, computeUnits: units)
                let outcome = try session.run()
                return (outcome, try BenchmarkSession.write(outcome, to: BenchmarkSession.documentsDirectory()))
            }.value
            benchmarkSummary = "warm-up \(settings.warmup), \(settings.runs) runs\n\(outcome.summary)\n"
                + "saved to Documents/\(url.lastPathComponent)"
        } catch {
            message = Self.describe(error)
        }
    }

    private func classify(name: String, preview: UIImage?, decode: @escaping @Sendable () throws -> RGBAImage) async {
        guard let model = selectedModel, !isBusy else { return }
        isBusy = true
        defer { isBusy = false }
        message = nil
        self.preview = preview
        imageName = name
        do {
            let classifier = try await loadedClassifier(for: model)
            let manifest = model.manifest
            let (image, logits, timing) = try await Task.detached(priority: .userInitiated) {
                let image = try decode()
                let start = Stopwatch.now()
                let input = try Preprocessing(manifest.preprocessing)
                    .apply(rgba: image.pixels, width: image.width, height: image.height)
                let preprocessMs = Stopwatch.milliseconds(since: start)
                let forwardStart = Stopwatch.now()
                let logits = try classifier.classify(input)
                let forwardMs = Stopwatch.milliseconds(since: forwardStart)
                return (image, logits, Timing(preprocessMs: preprocessMs, forwardMs: forwardMs))
            }.value
            lastImage = image
            predictions = TopK.top(5, logits: logits, labels: model.labels)
            self.timing = timing
        } catch {
            predictions = []
            self.timing = nil
            message = Self.describe(error)
        }
    }

    /// The selected model, loaded once per model and compute-unit choice.
    private func loadedClassifier(for model: BundledModel) async throws -> Classifier {
        let key = "\(model.id)|\(computeUnits.rawValue)"
        if let classifier, classifierKey == key { return classifier }
        classifier = nil
        let units = computeUnits
        let loaded = try await Task.detached(priority: .userInitiated) {
            try await ClassifierFactory.make(model, computeUnits: units)
        }.value
        classifier = loaded
        classifierKey = key
        return loaded
    }

    /// Our errors read best through their description; Preprocessing's is CustomStringConvertible
    /// only, and ExecuTorch's and Core ML's are NSErrors with a localized description.
    private static func describe(_ error: Error) -> String {
        if let localized = error as? LocalizedError, let text = localized.errorDescription { return text }
        let nsError = error as NSError
        if nsError.userInfo[NSLocalizedDescriptionKey] != nil { return nsError.localizedDescription }
        if let described = error as? CustomStringConvertible { return described.description }
        return error.localizedDescription
    }

    private func forgetResults() {
        predictions = []
        timing = nil
        benchmarkSummary = nil
        message = nil
    }
}
