import Foundation
import XCTest
@testable import EdgeMLPCore

final class TopKTests: XCTestCase {
    func testSoftmaxIsAProbabilityDistributionInLogitOrder() {
        let p = TopK.softmax([1, 2, 3, 0.5])
        XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(p[2] / p[1], expf(1), accuracy: 1e-5)
        XCTAssertTrue(p[2] > p[1] && p[1] > p[0] && p[0] > p[3])
    }

    func testSoftmaxOfLargeLogitsDoesNotOverflow() {
        let p = TopK.softmax([1000, 1001, -1000])
        XCTAssertFalse(p.contains { $0.isNaN || $0.isInfinite })
        XCTAssertEqual(p[1] / p[0], expf(1), accuracy: 1e-4)
        XCTAssertEqual(p[2], 0)
    }

    func testSoftmaxOfNothingIsNothing() {
        XCTAssertEqual(TopK.softmax([]), [])
        XCTAssertEqual(TopK.top(5, logits: []), [])
    }

    func testTopKIsBestFirstWithLabels() {
        let top = TopK.top(3, logits: [0.1, 3, -1, 2, 2.5], labels: ["a", "b", "c", "d", "e"])
        XCTAssertEqual(top.map(\.index), [1, 4, 3])
        XCTAssertEqual(top.map(\.label), ["b", "e", "d"])
        XCTAssertTrue(top[0].probability > top[1].probability && top[1].probability > top[2].probability)
    }

    func testTiesKeepTheLowerIndexFirst() {
        XCTAssertEqual(TopK.top(4, logits: [1, 5, 5, 1]).map(\.index), [1, 2, 0, 3])
    }

    func testKLargerThanTheClassesReturnsAll() {
        XCTAssertEqual(TopK.top(5, logits: [0, 1]).map(\.index), [1, 0])
        XCTAssertEqual(TopK.top(0, logits: [0, 1]), [])
    }

    func testMissingLabelsReadClassN() {
        let top = TopK.top(2, logits: [0, 1, 2], labels: ["zero"])
        XCTAssertEqual(top.map(\.label), ["class 2", "class 1"])
        XCTAssertEqual(TopK.label(0, in: ["zero"]), "zero")
        XCTAssertEqual(TopK.label(7, in: []), "class 7")
    }

    func testLabelsFileParsing() {
        XCTAssertEqual(TopK.parseLabels("T-shirt/top\nTrouser\n"), ["T-shirt/top", "Trouser"])
        XCTAssertEqual(TopK.parseLabels("a\r\nb\r\n\r\n"), ["a", "b"])
        XCTAssertEqual(TopK.parseLabels(" a \n\nc"), ["a", "", "c"])
        XCTAssertEqual(TopK.parseLabels(""), [])
    }

    func testRealLabelsFileHasOneLabelPerClass() throws {
        let manifest = try Manifest.load(from: Fixtures.manifestURL(target: "executorch"))
        let file = try XCTUnwrap(manifest.output.labelsFile)
        let text = try String(contentsOf: Fixtures.resources().appendingPathComponent(file), encoding: .utf8)
        let labels = TopK.parseLabels(text)
        XCTAssertEqual(labels.count, manifest.output.numClasses)
        XCTAssertFalse(labels.contains(""))
    }
}
