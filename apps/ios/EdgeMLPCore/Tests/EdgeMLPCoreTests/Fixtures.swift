import Foundation
import XCTest
@testable import EdgeMLPCore

/// The real manifests in `Resources/` (copied verbatim from `edge-mlp convert` output; edge-mlp's
/// tests/test_app_contract.py checks they are of the current schema) and edits of them.
enum Fixtures {
    static func resources() throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Resources", withExtension: nil), "Resources not bundled")
    }

    /// Every `*.manifest.json` in Resources, sorted by name.
    static func manifestURLs() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: resources(), includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasSuffix(".manifest.json") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// The first real manifest whose target is `target` ("coreml" or "executorch").
    static func manifestURL(target: String) throws -> URL {
        for url in try manifestURLs() {
            if try Manifest.load(from: url).target.name == target { return url }
        }
        throw XCTSkip("no \(target) manifest in Resources")
    }

    /// A real manifest's JSON with `edit` applied to its top-level object.
    static func edited(target: String, _ edit: (inout [String: Any]) -> Void) throws -> Data {
        let data = try Data(contentsOf: manifestURL(target: target))
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        edit(&root)
        return try JSONSerialization.data(withJSONObject: root)
    }

    /// `value` set at a nested key path, e.g. ["model", "macs"]; nil removes the key, NSNull()
    /// writes a JSON null.
    static func set(_ value: Any?, at path: [String], in object: inout [String: Any]) {
        guard let key = path.first else { return }
        if path.count == 1 {
            object[key] = value
            return
        }
        var child = object[key] as? [String: Any] ?? [:]
        set(value, at: Array(path.dropFirst()), in: &child)
        object[key] = child
    }
}
