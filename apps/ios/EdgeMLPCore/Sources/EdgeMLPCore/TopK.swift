import Foundation

/// One class of a prediction: its index into the logits, its label and its softmax probability.
public struct ScoredClass: Equatable, Sendable {
    public let index: Int
    public let label: String
    public let probability: Float

    public init(index: Int, label: String, probability: Float) {
        self.index = index
        self.label = label
        self.probability = probability
    }
}

/// Logits -> the classes the UI shows.
public enum TopK {
    /// Probabilities of the logits. Subtracts the max first so large logits (dequantized int8
    /// outputs can be large) do not overflow `exp`.
    public static func softmax(_ logits: [Float]) -> [Float] {
        guard let maximum = logits.max() else { return [] }
        let exps = logits.map { expf($0 - maximum) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }

    /// The `k` most probable classes, best first; ties keep the lower index first, so the order is
    /// stable across runs. Labels come from `labels` (one per class) or read "class N".
    public static func top(_ k: Int, logits: [Float], labels: [String] = []) -> [ScoredClass] {
        let probabilities = softmax(logits)
        let order = probabilities.indices.sorted { a, b in
            probabilities[a] != probabilities[b] ? probabilities[a] > probabilities[b] : a < b
        }
        return order.prefix(max(0, k)).map { index in
            ScoredClass(index: index, label: label(index, in: labels), probability: probabilities[index])
        }
    }

    /// The label of class `index`, or "class N" where the labels file is missing or short.
    public static func label(_ index: Int, in labels: [String]) -> String {
        labels.indices.contains(index) ? labels[index] : "class \(index)"
    }

    /// The lines of a labels file (`manifest.output.labels_file`): one label per line; surrounding
    /// whitespace and a trailing empty line are dropped, blank lines in the middle keep their slot.
    public static func parseLabels(_ text: String) -> [String] {
        // Split on Characters: "\r\n" is one Character, so Windows line ends make no empty labels.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }
}
