import EdgeMLPCore
import Foundation

/// A loaded model: one preprocessed image in, logits out. One implementation per runtime, picked
/// from `manifest.target.name` by `ClassifierFactory`.
///
/// Implementations are not thread-safe (neither `MLModel` predictions on shared state nor an
/// ExecuTorch `Module` promise that); callers use one classifier from one task at a time, which
/// is why it is `@unchecked Sendable`: it may move between tasks, never run in two at once.
protocol Classifier: AnyObject, Sendable {
    /// The runtime as the bench schema names it (`Backend.coreML`, `Backend.executorchXNNPACK`).
    var backendName: String { get }
    var manifest: Manifest { get }
    /// NCHW floats as `Preprocessing.apply` returns them -> float logits. Int8 I/O is handled per
    /// the manifest: the input quantized with its params, int8 logits dequantized.
    func classify(_ input: [Float]) throws -> [Float]
}

enum ClassifierFactory {
    /// Loads `model` with the runtime its manifest names. Core ML compiles the .mlpackage the first
    /// time (cached), so this can take seconds; call it off the main thread.
    static func make(_ model: BundledModel, computeUnits: ComputeUnits) async throws -> Classifier {
        switch model.manifest.target.name {
        case "coreml":
            return try await CoreMLClassifier.load(model, computeUnits: computeUnits)
        case "executorch":
            return try ExecuTorchClassifier(model)
        default:
            throw ClassifierError.unsupportedTarget(model.manifest.target.name)
        }
    }
}

/// The model input in the element type the manifest asks for.
enum ModelInput {
    case float32([Float])
    /// Float values; the runtime converts them to half precision.
    case float16([Float])
    case int8([Int8])

    init(_ values: [Float], spec: TensorSpec) throws {
        guard values.count == spec.elementCount else {
            throw ClassifierError.inputSize(expected: spec.elementCount, got: values.count)
        }
        switch spec.elementType {
        case .float32:
            self = .float32(values)
        case .float16:
            self = .float16(values)
        case .int8:
            guard let params = spec.quantization else {
                throw ClassifierError.missingQuantization(tensor: spec.name)
            }
            self = .int8(params.quantize(values))
        case nil:
            throw ClassifierError.unsupportedDType(tensor: spec.name, dtype: spec.dtype)
        }
    }
}

enum ModelOutput {
    /// Int8 logits -> real values with the output tensor's params. Without params the raw values
    /// are still ordered like the logits, so top-k stays right (only the probabilities are off).
    static func logits(int8 values: [Int8], spec: TensorSpec) -> [Float] {
        spec.quantization.map { $0.dequantize(values) } ?? values.map(Float.init)
    }
}

enum ClassifierError: LocalizedError {
    case unsupportedTarget(String)
    case unsupportedDType(tensor: String, dtype: String)
    case dtypeNotSupportedByRuntime(tensor: String, dtype: String, runtime: String)
    case missingQuantization(tensor: String)
    case inputSize(expected: Int, got: Int)
    case missingTensor(name: String, available: [String])
    case missingOutput(String)
    case missingArtifact(String)

    var errorDescription: String? {
        switch self {
        case let .unsupportedTarget(target):
            return "this app runs coreml and executorch artifacts, not \(target)"
        case let .unsupportedDType(tensor, dtype):
            return "tensor \(tensor) has dtype \(dtype); the app knows float32, float16 and int8"
        case let .dtypeNotSupportedByRuntime(tensor, dtype, runtime):
            return "\(runtime) in this app does not take \(dtype) for tensor \(tensor)"
        case let .missingQuantization(tensor):
            return "tensor \(tensor) is int8 but its manifest entry has no quantization params; re-convert"
        case let .inputSize(expected, got):
            return "the model takes \(expected) input values, the preprocessing made \(got)"
        case let .missingTensor(name, available):
            return "the model has no tensor \(name) (it has \(available.sorted().joined(separator: ", "))); "
                + "the manifest does not describe this artifact"
        case let .missingOutput(name):
            return "the model returned no tensor \(name)"
        case let .missingArtifact(file):
            return "\(file) is not in the app bundle; run edge-mlp bundle again"
        }
    }
}
