import EdgeMLPCore
import ExecuTorch
import Foundation

/// A bundled .pte run by the ExecuTorch runtime (Swift API of the `executorch` package product;
/// XNNPACK and the CPU kernels register themselves at launch because the app links with -all_load).
final class ExecuTorchClassifier: Classifier, @unchecked Sendable {
    let backendName = Backend.executorchXNNPACK
    let manifest: Manifest
    private let module: Module

    /// Opens the program and loads `forward` now, so a bad artifact or a missing kernel or backend
    /// fails here with ExecuTorch's error instead of at the first image. The .pte is used from the
    /// app bundle in place: ExecuTorch needs a file path, and bundle resources are files. It is
    /// memory-mapped (`ModuleLoadMode.mmap`), not read into the heap (the default `.file`): the
    /// Android app maps its .pte too (`Module.LOAD_MODE_MMAP`), so their `load_rss_mb` compare.
    init(_ bundled: BundledModel) throws {
        for spec in [bundled.manifest.input, bundled.manifest.output.tensor] where spec.elementType == nil {
            throw ClassifierError.unsupportedDType(tensor: spec.name, dtype: spec.dtype)
        }
        guard FileManager.default.fileExists(atPath: bundled.artifactURL.path) else {
            throw ClassifierError.missingArtifact(bundled.artifactURL.lastPathComponent)
        }
        manifest = bundled.manifest
        module = Module(filePath: bundled.artifactURL.path, loadMode: .mmap)
        try module.load("forward")
    }

    func classify(_ input: [Float]) throws -> [Float] {
        let inputs: [ValueConvertible] = try [tensor(for: input)]
        let outputs: [Value] = try module.forward(inputs)
        guard let output = outputs.first?.anyTensor else {
            throw ClassifierError.missingOutput(manifest.output.tensor.name)
        }
        return try logits(output)
    }

    /// The input tensor in the manifest's dtype and shape; the data is copied into the tensor.
    private func tensor(for input: [Float]) throws -> AnyTensor {
        let shape = manifest.input.shape
        switch try ModelInput(input, spec: manifest.input) {
        case let .float32(values):
            return Tensor<Float>(values, shape: shape).anyTensor
        case let .float16(values):
            return Tensor<Float>(values, shape: shape).anyTensor.copy(to: .half)
        case let .int8(values):
            return Tensor<Int8>(values, shape: shape).anyTensor
        }
    }

    /// Output elements as float logits; copied out, since the output tensor's memory belongs to the
    /// method and the next forward overwrites it.
    private func logits(_ output: AnyTensor) throws -> [Float] {
        switch output.dataType {
        case .float:
            return Tensor<Float>(output).scalars()
        case .half:
            return Tensor<Float>(output.copy(to: .float)).scalars()
        case .char:
            return ModelOutput.logits(int8: Tensor<Int8>(output).scalars(), spec: manifest.output.tensor)
        default:
            throw ClassifierError.dtypeNotSupportedByRuntime(tensor: manifest.output.tensor.name,
                                                             dtype: "ExecuTorch data type \(output.dataType.rawValue)",
                                                             runtime: "ExecuTorch")
        }
    }
}
