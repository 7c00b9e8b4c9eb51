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
}
