import XCTest
@testable import EdgeMLPCore

/// The app's preprocessing against edge-mlp's Python reference (Pillow + numpy), on the vectors in
/// `Resources/preprocess_vectors.json` (written by `make app-vectors`; the Android tests read the
/// same file).
final class PreprocessingTests: XCTestCase {
    private struct Vectors: Decodable { let cases: [Case] }

    private struct Case: Decodable {
        let name: String
        let width: Int
        let height: Int
        let rgba: [UInt8]
        let preprocessing: PreprocessingSpec
        let resizedRGB: [Int]
        let expected: [Float]
        let quantization: Quantization?

        enum CodingKeys: String, CodingKey {
            case name, width, height, rgba, preprocessing, expected, quantization
            case resizedRGB = "resized_rgb"
        }
    }

    private struct Quantization: Decodable {
        let scale: Double
        let zeroPoint: Int
        let expected: [Int8]

        enum CodingKeys: String, CodingKey {
            case scale, expected
            case zeroPoint = "zero_point"
        }
    }

    private func vectors() throws -> Vectors {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "preprocess_vectors", withExtension: "json",
                                                  subdirectory: "Resources"))
        return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }

    func testResizeAndCropMatchPillowExactly() throws {
        for c in try vectors().cases {
            let rgb = try Preprocessing(c.preprocessing).resizeAndCrop(rgba: c.rgba, width: c.width, height: c.height)
            XCTAssertEqual(rgb, c.resizedRGB, c.name)
        }
    }

    func testNormalizedInputMatchesPython() throws {
        for c in try vectors().cases {
            let x = try Preprocessing(c.preprocessing).apply(rgba: c.rgba, width: c.width, height: c.height)
            XCTAssertEqual(x.count, c.expected.count, c.name)
            let worst = zip(x, c.expected).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-6, c.name)
        }
    }

    func testInt8InputMatchesPython() throws {
        let quantized = try vectors().cases.filter { $0.quantization != nil }
        XCTAssertFalse(quantized.isEmpty)
        for c in quantized {
            let q = try XCTUnwrap(c.quantization)
            let x = try Preprocessing(c.preprocessing).apply(rgba: c.rgba, width: c.width, height: c.height)
            XCTAssertEqual(Preprocessing.quantize(x, scale: q.scale, zeroPoint: q.zeroPoint), q.expected, c.name)
        }
    }

    func testUnsupportedInterpolationIsRefused() {
        XCTAssertThrowsError(try Preprocessing(resize: 2, cropHeight: 2, cropWidth: 2, interpolation: "nearest",
                                               mean: [0, 0, 0], std: [1, 1, 1], scale: 1))
    }

    private func refusal(crop: [Int] = [2, 2], color: String = "RGB", layout: String = "NCHW") -> String? {
        let spec = PreprocessingSpec(resize: 2, crop: crop, interpolation: "bilinear", mean: [0, 0, 0], std: [1, 1, 1],
                                     scale: 1, color: color, layout: layout)
        do {
            _ = try Preprocessing(spec)
            return nil
        } catch {
            return String(describing: error)
        }
    }

    /// The Android app refuses the same specs in the same words (edge-mlp's tests compare the two).
    func testAManifestPreprocessingTheAppCannotFollowIsRefused() {
        XCTAssertNil(refusal())
        XCTAssertEqual(refusal(crop: [2]), "preprocessing.crop must be [height, width] with positive sizes, got [2]")
        XCTAssertEqual(refusal(crop: [0, 2]), "preprocessing.crop must be [height, width] with positive sizes, got [0, 2]")
        XCTAssertEqual(refusal(color: "BGR"), "preprocessing.color 'BGR' is not supported by the app (supported: RGB)")
        XCTAssertEqual(refusal(layout: "NHWC"),
                       "preprocessing.layout 'NHWC' is not supported by the app (supported: NCHW)")
        XCTAssertEqual(refusal(crop: [2], color: "BGR", layout: "NHWC"), refusal(crop: [2]))
    }

    func testACropLargerThanTheResizedImageIsAnErrorNotACrash() throws {
        let pre = try Preprocessing(resize: 2, cropHeight: 3, cropWidth: 2, interpolation: "bilinear",
                                    mean: [0, 0, 0], std: [1, 1, 1], scale: 1)
        XCTAssertThrowsError(try pre.resizeAndCrop(rgba: [UInt8](repeating: 0, count: 16), width: 2, height: 2)) {
            XCTAssertEqual($0 as? Preprocessing.Error, .cropLargerThanImage(width: 2, height: 2))
        }
    }
}
