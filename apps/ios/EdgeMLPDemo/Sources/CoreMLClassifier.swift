import CoreML
import EdgeMLPCore
import Foundation

/// Where Core ML may run the model; the raw values are what the bench JSON records.
enum ComputeUnits: String, CaseIterable, Identifiable, Sendable {
    case all
    case cpuOnly
    case cpuAndGPU
    case cpuAndNeuralEngine

    var id: String { rawValue }

    var title: String {
        switch self {
        case .all: return "All"
        case .cpuOnly: return "CPU"
        case .cpuAndGPU: return "CPU + GPU"
        case .cpuAndNeuralEngine: return "CPU + ANE"
        }
    }

    var mlComputeUnits: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        }
    }
}

/// A bundled .mlpackage, compiled on the device and run with `MLModel`.
final class CoreMLClassifier: Classifier, @unchecked Sendable {
    let backendName = Backend.coreML
    let manifest: Manifest
    let computeUnits: ComputeUnits
    private let model: MLModel
    private let inputType: MLMultiArrayDataType

    /// Compiles (or reuses the cached compile of) the bundled package and loads it for `computeUnits`.
    static func load(_ bundled: BundledModel, computeUnits: ComputeUnits) async throws -> CoreMLClassifier {
        let compiled = try await CompiledModelCache.shared.compiledModel(for: bundled)
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits.mlComputeUnits
        let model = try MLModel(contentsOf: compiled, configuration: configuration)
        return try CoreMLClassifier(manifest: bundled.manifest, model: model, computeUnits: computeUnits)
    }

    init(manifest: Manifest, model: MLModel, computeUnits: ComputeUnits) throws {
        // edge-mlp's Core ML converter writes float I/O (int8 models quantize inside the graph);
        // int8 MLMultiArrays need iOS 26, so an int8 Core ML tensor is refused up front.
        switch manifest.input.elementType {
        case .float32: inputType = .float32
        case .float16: inputType = .float16
        case .int8, nil:
            throw ClassifierError.dtypeNotSupportedByRuntime(tensor: manifest.input.name, dtype: manifest.input.dtype,
                                                             runtime: "Core ML")
        }
        let inputs = model.modelDescription.inputDescriptionsByName
        let outputs = model.modelDescription.outputDescriptionsByName
        guard inputs[manifest.input.name] != nil else {
            throw ClassifierError.missingTensor(name: manifest.input.name, available: Array(inputs.keys))
        }
        guard outputs[manifest.output.tensor.name] != nil else {
            throw ClassifierError.missingTensor(name: manifest.output.tensor.name, available: Array(outputs.keys))
        }
        self.manifest = manifest
        self.model = model
        self.computeUnits = computeUnits
    }

    func classify(_ input: [Float]) throws -> [Float] {
        let values: [Float]
        switch try ModelInput(input, spec: manifest.input) {
        case let .float32(floats), let .float16(floats):
            values = floats
        case .int8:
            throw ClassifierError.dtypeNotSupportedByRuntime(tensor: manifest.input.name, dtype: manifest.input.dtype,
                                                             runtime: "Core ML")
        }
        let array = makeInput(values)
        let features = try MLDictionaryFeatureProvider(dictionary: [manifest.input.name: MLFeatureValue(multiArray: array)])
        let prediction = try model.prediction(from: features)
        guard let output = prediction.featureValue(for: manifest.output.tensor.name)?.multiArrayValue else {
            throw ClassifierError.missingOutput(manifest.output.tensor.name)
        }
        return Self.floats(output)
    }

    /// The input in the model's shape and element type (Float16 conforms to MLShapedArrayScalar,
    /// so half-precision inputs need no manual bit conversion).
    private func makeInput(_ values: [Float]) -> MLMultiArray {
        let shape = manifest.input.shape
        if inputType == .float16 {
            return MLMultiArray(MLShapedArray<Float16>(scalars: values.map { Float16($0) }, shape: shape))
        }
        return MLMultiArray(MLShapedArray<Float>(scalars: values, shape: shape))
    }

    /// All elements in row-major order as Float, whatever the output's element type. Indexes with
    /// multi-dimensional subscripts, which honor the array's strides (Core ML may pad them).
    static func floats(_ array: MLMultiArray) -> [Float] {
        let shape = array.shape.map(\.intValue)
        var index = [Int](repeating: 0, count: shape.count)
        var values = [Float]()
        values.reserveCapacity(array.count)
        for _ in 0..<array.count {
            values.append(array[index.map { NSNumber(value: $0) }].floatValue)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < shape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        return values
    }
}

/// Compiled models (.mlmodelc) in Application Support, keyed by the artifact's sha256, so each
/// package is compiled once per install and a re-bundled artifact (new hash) is compiled again.
actor CompiledModelCache {
    static let shared = CompiledModelCache()

    func compiledModel(for model: BundledModel) async throws -> URL {
        let directory = try cacheDirectory()
        let key = model.manifest.artifact.sha256 ?? model.artifactURL.deletingPathExtension().lastPathComponent
        let destination = directory.appendingPathComponent("\(key).mlmodelc", isDirectory: true)
        let files = FileManager.default
        if files.fileExists(atPath: destination.path) {
            return destination
        }
        let compiled = try await MLModel.compileModel(at: model.artifactURL)
        // Another call may have finished the same compile while this one awaited.
        if files.fileExists(atPath: destination.path) {
            try? files.removeItem(at: compiled)
        } else {
            try files.moveItem(at: compiled, to: destination)
        }
        return destination
    }

    private func cacheDirectory() throws -> URL {
        let support = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                                  appropriateFor: nil, create: true)
        var directory = support.appendingPathComponent("CompiledModels", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Rebuilt from the bundle on demand: no reason to put it in the user's backups.
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try directory.setResourceValues(values)
        return directory
    }
}
