import EdgeMLPCore
import Foundation

/// An artifact that `edge-mlp bundle` put into the app, with its manifest and labels.
struct BundledModel: Identifiable, Hashable, Sendable {
    let manifestURL: URL
    let manifest: Manifest
    /// The .pte file or the .mlpackage folder next to the manifest.
    let artifactURL: URL
    /// One per class, from `manifest.output.labels_file`; empty when there is none.
    let labels: [String]

    /// The manifest's file name: unique in the folder, stable across launches.
    var id: String { manifestURL.lastPathComponent }

    var title: String { "\(manifest.model.name) · \(manifest.target.name) \(manifest.precision)" }

    static func == (lhs: BundledModel, rhs: BundledModel) -> Bool { lhs.id == rhs.id }
    func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// A sample image from `Bundle/samples/`, named "<n>_<label>.png" by `edge-mlp bundle`.
struct BundledSample: Identifiable, Hashable, Sendable {
    let url: URL

    var id: String { url.lastPathComponent }

    /// "3_dress.png" -> "dress": the true class, shown next to the prediction.
    var name: String {
        let stem = url.deletingPathExtension().lastPathComponent
        guard let underscore = stem.firstIndex(of: "_"), stem[..<underscore].allSatisfy(\.isNumber) else { return stem }
        return String(stem[stem.index(after: underscore)...])
    }
}

/// What is in the app's `Bundle/` folder (a folder reference, copied verbatim into the .app):
/// every `*.manifest.json` whose artifact this app can run, and the sample images. Manifests that
/// cannot be used are listed in `problems` with the reason, so the UI can say why a model is missing.
struct BundledContent: Sendable {
    static let folderName = "Bundle"
    static let runnableTargets: Set<String> = ["coreml", "executorch"]
    static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "heic"]

    var models: [BundledModel] = []
    var samples: [BundledSample] = []
    var problems: [String] = []

    static func scan(_ bundle: Bundle = .main) -> BundledContent {
        var content = BundledContent()
        guard let folder = bundle.resourceURL?.appendingPathComponent(folderName, isDirectory: true) else {
            return content
        }
        let files = FileManager.default
        let names = ((try? files.contentsOfDirectory(atPath: folder.path)) ?? []).sorted(by: standardOrder)
        for name in names where name.hasSuffix(".manifest.json") {
            do {
                content.models.append(try model(at: folder.appendingPathComponent(name)))
            } catch {
                content.problems.append("\(name): \(error.localizedDescription)")
            }
        }
        let samplesFolder = folder.appendingPathComponent("samples", isDirectory: true)
        let sampleNames = ((try? files.contentsOfDirectory(atPath: samplesFolder.path)) ?? []).sorted(by: standardOrder)
        content.samples = sampleNames
            .filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
            .map { BundledSample(url: samplesFolder.appendingPathComponent($0)) }
        return content
    }

    private static func model(at manifestURL: URL) throws -> BundledModel {
        let manifest = try Manifest.load(from: manifestURL)
        guard runnableTargets.contains(manifest.target.name) else {
            throw ClassifierError.unsupportedTarget(manifest.target.name)
        }
        let folder = manifestURL.deletingLastPathComponent()
        guard let file = manifest.artifact.file,
              FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path) else {
            throw ClassifierError.missingArtifact(manifest.artifact.file ?? manifestURL.lastPathComponent)
        }
        var labels: [String] = []
        if let labelsFile = manifest.output.labelsFile,
           let text = try? String(contentsOf: folder.appendingPathComponent(labelsFile), encoding: .utf8) {
            labels = TopK.parseLabels(text)
        }
        return BundledModel(manifestURL: manifestURL, manifest: manifest,
                            artifactURL: folder.appendingPathComponent(file), labels: labels)
    }

    /// Finder order: "2_x" before "10_x".
    private static func standardOrder(_ a: String, _ b: String) -> Bool {
        a.localizedStandardCompare(b) == .orderedAscending
    }
}
