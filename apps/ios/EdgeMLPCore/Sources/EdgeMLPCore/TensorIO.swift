import Foundation

/// Element types a manifest names for I/O tensors.
public enum TensorDType: String {
    case float32
    case float16
    case int8
}

public extension TensorSpec {
    /// The element type, or nil for a dtype this app does not know.
    var elementType: TensorDType? { TensorDType(rawValue: dtype) }

    /// Number of elements: the product of the shape.
    var elementCount: Int { shape.reduce(1, *) }
}

public extension QuantParams {
    /// int8 model output -> real values: (q - zero_point) * scale, in Float as the runtimes do.
    func dequantize(_ values: [Int8]) -> [Float] {
        let scale = Float(self.scale)
        let zeroPoint = Float(self.zeroPoint)
        return values.map { (Float($0) - zeroPoint) * scale }
    }

    /// Float model input -> int8, exactly as edge-mlp quantizes it (`Preprocessing.quantize`).
    func quantize(_ values: [Float]) -> [Int8] {
        Preprocessing.quantize(values, scale: scale, zeroPoint: zeroPoint)
    }
}
