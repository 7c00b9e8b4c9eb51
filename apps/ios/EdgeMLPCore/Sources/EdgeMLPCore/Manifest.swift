import Foundation

// The fields of `<artifact>.manifest.json` that the app reads, typed. The Python schema lives in
// edge_mlp/manifest.py; tests/test_app_contract.py parses this file and checks every field declared
// here against it, so keep the declaration style: one `public let` per line, and a
// `CodingKeys` enum with one `case` per line wherever a JSON key is snake_case.
// Declare only what the app uses: unknown keys are ignored when decoding.

/// Affine int8 mapping of an I/O tensor: real = (q - zero_point) * scale.
public struct QuantParams: Codable, Equatable, Sendable {
    public let scale: Double
    public let zeroPoint: Int

    enum CodingKeys: String, CodingKey {
        case scale
        case zeroPoint = "zero_point"
    }
}

/// One model input or output: its name in the runtime, shape, element type and int8 mapping.
public struct TensorSpec: Codable, Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    /// "float32", "float16" or "int8".
    public let dtype: String
    /// "NCHW" for images, "NC" for logits.
    public let layout: String
    /// Non-nil when the tensor is int8: the app quantizes the input / dequantizes the output.
    public let quantization: QuantParams?
}

public struct ModelInfo: Codable, Equatable, Sendable {
    public let name: String
    public let family: String
    /// Multiply-accumulates for one image; the benchmark's GFLOP/s. Nil in manifests written
    /// before edge-mlp recorded it.
    public let macs: Int?
}

public struct OutputInfo: Codable, Equatable, Sendable {
    public let tensor: TensorSpec
    public let numClasses: Int
    /// One label per line, next to the manifest; nil means "class N".
    public let labelsFile: String?

    enum CodingKeys: String, CodingKey {
        case tensor
        case numClasses = "num_classes"
        case labelsFile = "labels_file"
    }
}

/// How an image becomes the model input (edge_mlp/preprocess.py `Preprocessing`).
public struct PreprocessingSpec: Codable, Equatable, Sendable {
    /// The shorter side is resized to this, keeping the aspect ratio.
    public let resize: Int
    /// Center crop, [height, width].
    public let crop: [Int]
    /// Pillow filter name: "bilinear" or "bicubic".
    public let interpolation: String
    public let mean: [Double]
    public let std: [Double]
    /// Pixel values 0...255 are multiplied by this before normalization.
    public let scale: Double
    public let color: String
    public let layout: String
}

public struct ShiftLoweringInfo: Codable, Equatable, Sendable {
    /// "slice", "roll" or "none": recorded in the bench results.
    public let used: String
}

public struct TargetInfo: Codable, Equatable, Sendable {
    /// "coreml" or "executorch" for this app (the runtime is chosen from it).
    public let name: String
    /// Package -> version used to convert (e.g. "executorch": "1.5.1").
    public let runtime: [String: String]
}

public struct FileInfo: Codable, Equatable, Sendable {
    /// The artifact's file (or .mlpackage folder) name, next to the manifest.
    public let file: String?
    /// Of the file, or of the folder's contents; the app keys its compiled-model cache on it.
    public let sha256: String?
    public let sizeBytes: Int?

    enum CodingKeys: String, CodingKey {
        case file
        case sha256
        case sizeBytes = "size_bytes"
    }
}

/// The root of `<artifact>.manifest.json`.
public struct Manifest: Codable, Equatable, Sendable {
    public let model: ModelInfo
    public let input: TensorSpec
    public let output: OutputInfo
    public let preprocessing: PreprocessingSpec
    /// "fp32", "fp16", "int8" or "w8".
    public let precision: String
    public let shiftLowering: ShiftLoweringInfo
    public let target: TargetInfo
    public let artifact: FileInfo
    public let edgeMlpVersion: String
    public let schemaVersion: Int

    enum CodingKeys: String, CodingKey {
        case model
        case input
        case output
        case preprocessing
        case precision
        case shiftLowering = "shift_lowering"
        case target
        case artifact
        case edgeMlpVersion = "edge_mlp_version"
        case schemaVersion = "schema_version"
    }

    /// The manifest schema this app reads (edge_mlp/manifest.py SCHEMA_VERSION).
    public static let supportedSchemaVersion = 1

    /// Reads and decodes a manifest, refusing other schema versions before decoding anything else,
    /// so an old or new manifest gets "re-convert" instead of a confusing missing-key error.
    public static func load(from url: URL) throws -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ManifestError.unreadable(file: url.lastPathComponent, reason: error.localizedDescription)
        }
        return try decode(data, file: url.lastPathComponent)
    }

    /// `load(from:)` for bytes already in memory; `file` names the source in errors.
    public static func decode(_ data: Data, file: String = "manifest") throws -> Manifest {
        let object = try? JSONSerialization.jsonObject(with: data)
        guard let root = object as? [String: Any] else {
            throw ManifestError.malformed(file: file, reason: "not a JSON object")
        }
        let version = integer(root["schema_version"])
        guard version == supportedSchemaVersion else {
            throw ManifestError.unsupportedSchemaVersion(file: file, found: version, supported: supportedSchemaVersion)
        }
        do {
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch let error as DecodingError {
            throw ManifestError.malformed(file: file, reason: ManifestError.describe(error))
        }
    }

    /// A JSON integer from JSONSerialization, which hands out NSNumber on Darwin and may hand out
    /// Swift integers elsewhere.
    private static func integer(_ value: Any?) -> Int? {
        if let int = value as? Int { return int }
        if let number = value as? NSNumber { return Int(exactly: number.doubleValue) }
        return nil
    }
}

/// Why a manifest could not be used.
public enum ManifestError: Error, Equatable, LocalizedError, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case unsupportedSchemaVersion(file: String, found: Int?, supported: Int)
    case malformed(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason):
            return "cannot read \(file): \(reason)"
        case let .unsupportedSchemaVersion(file, found, supported):
            let seen = found.map(String.init) ?? "missing"
            return "\(file): manifest schema_version \(seen) is not supported (this app reads version "
                + "\(supported)); re-convert the artifact with a matching edge-mlp and bundle it again"
        case let .malformed(file, reason):
            return "\(file) is malformed: \(reason)"
        }
    }

    public var errorDescription: String? { description }

    /// A DecodingError as "key path: what is wrong", instead of its debug dump.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case let .keyNotFound(key, context):
            return "missing \(path(context.codingPath + [key]))"
        case let .valueNotFound(_, context):
            return "\(path(context.codingPath)) is null"
        case let .typeMismatch(type, context):
            return "\(path(context.codingPath)) is not \(type)"
        case let .dataCorrupted(context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
