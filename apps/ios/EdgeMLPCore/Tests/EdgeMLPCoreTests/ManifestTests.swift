import Foundation
import XCTest
@testable import EdgeMLPCore

/// Manifest.swift against real `edge-mlp convert` manifests: what the app reads decodes, and a
/// manifest it cannot use is refused with an error that says what to do.
final class ManifestTests: XCTestCase {
    func testEveryBundledTestManifestDecodes() throws {
        let urls = try Fixtures.manifestURLs()
        XCTAssertGreaterThanOrEqual(urls.count, 2)
        for url in urls {
            let manifest = try Manifest.load(from: url)
            XCTAssertEqual(manifest.schemaVersion, Manifest.supportedSchemaVersion)
            // `edge-mlp bundle` puts each manifest beside its artifact as "<artifact>.manifest.json".
            XCTAssertEqual(manifest.artifact.file.map { $0 + ".manifest.json" }, url.lastPathComponent)
            XCTAssertEqual(manifest.preprocessing.crop.count, 2)
            XCTAssertEqual(manifest.preprocessing.mean.count, 3)
            XCTAssertEqual(manifest.preprocessing.std.count, 3)
            XCTAssertNoThrow(try Preprocessing(manifest.preprocessing))
            XCTAssertEqual(manifest.input.layout, "NCHW")
            XCTAssertEqual(manifest.input.shape, [1, 3, manifest.preprocessing.crop[0], manifest.preprocessing.crop[1]])
            XCTAssertEqual(manifest.output.tensor.shape.last, manifest.output.numClasses)
            XCTAssertNotNil(manifest.input.elementType, manifest.input.dtype)
            XCTAssertNotNil(manifest.output.tensor.elementType, manifest.output.tensor.dtype)
            XCTAssertFalse(manifest.model.name.isEmpty)
            XCTAssertFalse(manifest.edgeMlpVersion.isEmpty)
            XCTAssertNotNil(manifest.artifact.sha256)
            XCTAssertGreaterThan(manifest.model.macs ?? 0, 0, "the bench JSON's GFLOP/s needs model.macs")
        }
    }

    func testCoreMLManifest() throws {
        let manifest = try Manifest.load(from: Fixtures.manifestURL(target: "coreml"))
        XCTAssertEqual(manifest.target.name, "coreml")
        XCTAssertTrue(manifest.artifact.file?.hasSuffix(".mlpackage") == true)
        XCTAssertNotNil(manifest.target.runtime["coremltools"])
        // Core ML artifacts take and return float tensors; the app feeds them MLMultiArrays.
        XCTAssertNil(manifest.input.quantization)
        XCTAssertNil(manifest.output.tensor.quantization)
    }

    func testExecuTorchManifest() throws {
        let manifest = try Manifest.load(from: Fixtures.manifestURL(target: "executorch"))
        XCTAssertEqual(manifest.target.name, "executorch")
        XCTAssertTrue(manifest.artifact.file?.hasSuffix(".pte") == true)
        XCTAssertNotNil(manifest.target.runtime["executorch"])
        XCTAssertNotNil(manifest.output.labelsFile)
    }

    func testInt8IOParamsDecode() throws {
        let data = try Fixtures.edited(target: "executorch") { root in
            Fixtures.set(["scale": 0.0215, "zero_point": -3], at: ["input", "quantization"], in: &root)
            Fixtures.set("int8", at: ["input", "dtype"], in: &root)
        }
        let manifest = try Manifest.decode(data)
        XCTAssertEqual(manifest.input.quantization, QuantParams(scale: 0.0215, zeroPoint: -3))
        XCTAssertEqual(manifest.input.elementType, .int8)
    }

    func testMacsIsReadWhenPresent() throws {
        let data = try Fixtures.edited(target: "coreml") { Fixtures.set(1_234_567, at: ["model", "macs"], in: &$0) }
        XCTAssertEqual(try Manifest.decode(data).model.macs, 1_234_567)
    }

    func testOtherSchemaVersionIsRefusedBeforeAnythingElse() throws {
        // Version 2 may have renamed anything: the error must be about the version, not a key.
        let data = try Fixtures.edited(target: "coreml") { root in
            root["schema_version"] = 2
            root["preprocessing"] = nil
        }
        XCTAssertThrowsError(try Manifest.decode(data, file: "x.manifest.json")) { error in
            XCTAssertEqual(error as? ManifestError,
                           .unsupportedSchemaVersion(file: "x.manifest.json", found: 2, supported: 1))
            XCTAssertTrue("\(error)".contains("re-convert"), "\(error)")
        }
    }

    func testMissingSchemaVersionIsRefused() throws {
        let data = try Fixtures.edited(target: "executorch") { $0["schema_version"] = nil }
        XCTAssertThrowsError(try Manifest.decode(data, file: "m")) { error in
            XCTAssertEqual(error as? ManifestError, .unsupportedSchemaVersion(file: "m", found: nil, supported: 1))
        }
    }

    func testMissingFieldNamesItsKeyPath() throws {
        let data = try Fixtures.edited(target: "coreml") { Fixtures.set(nil, at: ["preprocessing", "mean"], in: &$0) }
        XCTAssertThrowsError(try Manifest.decode(data, file: "m")) { error in
            XCTAssertEqual(error as? ManifestError, .malformed(file: "m", reason: "missing preprocessing.mean"))
        }
    }

    func testNotJSONIsMalformed() {
        XCTAssertThrowsError(try Manifest.decode(Data("[1, 2]".utf8), file: "m")) { error in
            XCTAssertEqual(error as? ManifestError, .malformed(file: "m", reason: "not a JSON object"))
        }
    }

    func testUnreadableFileSaysSo() {
        let missing = URL(fileURLWithPath: "/nonexistent/none.manifest.json")
        XCTAssertThrowsError(try Manifest.load(from: missing)) { error in
            guard case .unreadable(let file, _)? = error as? ManifestError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(file, "none.manifest.json")
        }
    }

    func testDequantizeAndQuantize() {
        let params = QuantParams(scale: 0.5, zeroPoint: -2)
        XCTAssertEqual(params.dequantize([-128, -2, 0, 127]), [-63, 0, 1, 64.5])
        XCTAssertEqual(params.quantize([0, 1.0, -100, 100]), [-2, 0, -128, 127])
    }
}
