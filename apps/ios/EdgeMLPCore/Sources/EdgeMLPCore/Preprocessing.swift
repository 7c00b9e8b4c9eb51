import Foundation

/// Decoded pixels -> model input, matching edge-mlp's Python reference (`edge_mlp/preprocess.py`,
/// which resizes with Pillow).
///
/// The resize is a port of Pillow's two-pass fixed-point convolution resampler (the same port as the
/// Android app's `Preprocessing.kt`), because Core Graphics and vImage filter differently, and then
/// the phone would not see the inputs that `edge-mlp parity` measured accuracy on. Scaling and
/// normalization run in Float in numpy's order. `Tests/EdgeMLPCoreTests/Resources/preprocess_vectors.json`
/// pins it.
public struct Preprocessing {
    /// The `preprocessing.color` values the app produces (Pillow mode names); the Android app accepts the same.
    public static let supportedColors = ["RGB"]
    /// The `preprocessing.layout` values the app produces; the Android app accepts the same.
    public static let supportedLayouts = ["NCHW"]

    /// Why a manifest's preprocessing cannot be followed. The descriptions are the Android app's
    /// messages word for word (Preprocessing.kt `forManifest`; edge-mlp's tests compare them).
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case badCrop([Int])
        case unsupportedColor(String)
        case unsupportedLayout(String)
        case unsupportedInterpolation(String)
        case badStatistics
        case pixelsDoNotMatch(width: Int, height: Int, count: Int)
        case cropLargerThanImage(width: Int, height: Int)

        public var description: String {
            switch self {
            case .badCrop(let crop):
                return "preprocessing.crop must be [height, width] with positive sizes, got \(crop)"
            case .unsupportedColor(let name):
                return "preprocessing.color '\(name)' is not supported by the app "
                    + "(supported: \(Preprocessing.supportedColors.joined(separator: ", ")))"
            case .unsupportedLayout(let name):
                return "preprocessing.layout '\(name)' is not supported by the app "
                    + "(supported: \(Preprocessing.supportedLayouts.joined(separator: ", ")))"
            case .unsupportedInterpolation(let name):
                return "interpolation '\(name)' is not supported by the app (supported: bilinear, bicubic)"
            case .badStatistics:
                return "mean and std need 3 values (RGB)"
            case let .pixelsDoNotMatch(width, height, count):
                return "\(count) RGBA bytes do not match \(width)x\(height)"
            case let .cropLargerThanImage(width, height):
                return "resized image \(width)x\(height) is smaller than the crop"
            }
        }
    }

    public let resize: Int
    public let cropHeight: Int
    public let cropWidth: Int
    private let filter: Filter
    private let mean: [Float]
    private let std: [Float]
    private let scale: Float

    public init(resize: Int, cropHeight: Int, cropWidth: Int, interpolation: String,
                mean: [Double], std: [Double], scale: Double) throws {
        guard let filter = Filter.named(interpolation) else { throw Error.unsupportedInterpolation(interpolation) }
        guard mean.count == 3, std.count == 3 else { throw Error.badStatistics }
        self.resize = resize
        self.cropHeight = cropHeight
        self.cropWidth = cropWidth
        self.filter = filter
        self.mean = mean.map { Float($0) }
        self.std = std.map { Float($0) }
        self.scale = Float(scale)
    }

    /// The preprocessing a manifest describes, refused with a message naming the field when the app
    /// cannot follow it. Checked in this order, with the same accepted values and wording as the
    /// Android app (Preprocessing.kt `forManifest`): crop, color, layout, interpolation, mean / std.
    public init(_ spec: PreprocessingSpec) throws {
        guard spec.crop.count == 2, spec.crop.allSatisfy({ $0 > 0 }) else { throw Error.badCrop(spec.crop) }
        guard Self.supportedColors.contains(spec.color) else { throw Error.unsupportedColor(spec.color) }
        guard Self.supportedLayouts.contains(spec.layout) else { throw Error.unsupportedLayout(spec.layout) }
        try self.init(resize: spec.resize, cropHeight: spec.crop[0], cropWidth: spec.crop[1],
                      interpolation: spec.interpolation, mean: spec.mean, std: spec.std, scale: spec.scale)
    }

    /// RGBA8, row-major -> (1, 3, cropHeight, cropWidth) floats, NCHW.
    public func apply(rgba: [UInt8], width: Int, height: Int) throws -> [Float] {
        normalize(try resizeAndCrop(rgba: rgba, width: width, height: height))
    }

    /// The resized, center-cropped image as RGB values 0...255, row-major HWC. Alpha is dropped,
    /// as Pillow's RGBA -> RGB does.
    public func resizeAndCrop(rgba: [UInt8], width: Int, height: Int) throws -> [Int] {
        guard width > 0, height > 0, rgba.count == width * height * 4 else {
            throw Error.pixelsDoNotMatch(width: width, height: height, count: rgba.count)
        }
        var rgb = [Int](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            rgb[3 * i] = Int(rgba[4 * i])
            rgb[3 * i + 1] = Int(rgba[4 * i + 1])
            rgb[3 * i + 2] = Int(rgba[4 * i + 2])
        }
        // Python: ratio = resize / min(w, h); size = round(w * ratio) (round half to even).
        let ratio = Double(resize) / Double(min(width, height))
        let outWidth = max(1, Int((Double(width) * ratio).rounded(.toNearestOrEven)))
        let outHeight = max(1, Int((Double(height) * ratio).rounded(.toNearestOrEven)))
        var (w, h) = (width, height)
        // Pillow resamples horizontally first, and skips a pass whose size does not change.
        if outWidth != w {
            rgb = resampleRows(rgb, width: w, height: h, outWidth: outWidth)
            w = outWidth
        }
        if outHeight != h {
            rgb = resampleColumns(rgb, width: w, height: h, outHeight: outHeight)
            h = outHeight
        }
        guard w >= cropWidth, h >= cropHeight else { throw Error.cropLargerThanImage(width: w, height: h) }
        return centerCrop(rgb, width: w, height: h)
    }

    /// RGB 0...255 (HWC) -> Float NCHW: (v * scale - mean) / std, each step rounded to Float as numpy does.
    public func normalize(_ rgb: [Int]) -> [Float] {
        let plane = cropHeight * cropWidth
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for c in 0..<3 {
                let scaled: Float = Float(rgb[3 * i + c]) * scale
                let centered: Float = scaled - mean[c]
                out[c * plane + i] = centered / std[c]
            }
        }
        return out
    }

    /// Float input -> int8 with the input tensor's params, as edge-mlp does:
    /// clip(round_half_even(x / scale) + zero_point).
    public static func quantize(_ x: [Float], scale: Double, zeroPoint: Int) -> [Int8] {
        let scale32 = Float(scale)
        return x.map { value in
            let q = (value / scale32).rounded(.toNearestOrEven) + Float(zeroPoint)
            return Int8(min(max(q, -128), 127))
        }
    }

    private func centerCrop(_ rgb: [Int], width w: Int, height h: Int) -> [Int] {
        let left = (w - cropWidth) / 2
        let top = (h - cropHeight) / 2
        var out = [Int]()
        out.reserveCapacity(cropHeight * cropWidth * 3)
        for y in 0..<cropHeight {
            let start = ((top + y) * w + left) * 3
            out.append(contentsOf: rgb[start..<(start + cropWidth * 3)])
        }
        return out
    }

    private func resampleRows(_ rgb: [Int], width w: Int, height h: Int, outWidth: Int) -> [Int] {
        let k = coefficients(inSize: w, outSize: outWidth)
        var out = [Int](repeating: 0, count: outWidth * h * 3)
        for y in 0..<h {
            for x in 0..<outWidth {
                let start = k.bounds[2 * x], count = k.bounds[2 * x + 1]
                for c in 0..<3 {
                    var acc = Self.rounding
                    for i in 0..<count { acc += rgb[(y * w + start + i) * 3 + c] * k.weights[x * k.size + i] }
                    out[(y * outWidth + x) * 3 + c] = Self.clip8(acc)
                }
            }
        }
        return out
    }

    private func resampleColumns(_ rgb: [Int], width w: Int, height h: Int, outHeight: Int) -> [Int] {
        let k = coefficients(inSize: h, outSize: outHeight)
        var out = [Int](repeating: 0, count: w * outHeight * 3)
        for y in 0..<outHeight {
            let start = k.bounds[2 * y], count = k.bounds[2 * y + 1]
            for x in 0..<w {
                for c in 0..<3 {
                    var acc = Self.rounding
                    for i in 0..<count { acc += rgb[((start + i) * w + x) * 3 + c] * k.weights[y * k.size + i] }
                    out[(y * w + x) * 3 + c] = Self.clip8(acc)
                }
            }
        }
        return out
    }

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output pixel, first input index,
    /// tap count and fixed-point taps.
    private func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let size = Int(support.rounded(.up)) * 2 + 1
        var bounds = [Int](repeating: 0, count: outSize * 2)
        var weights = [Int](repeating: 0, count: outSize * size)
        var taps = [Double](repeating: 0, count: size)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let inverse = 1.0 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let count = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for x in 0..<count {
                taps[x] = filter.weight((Double(x + xmin) - center + 0.5) * inverse)
                total += taps[x]
            }
            for x in 0..<count {
                let tap = total != 0.0 ? taps[x] / total : taps[x]
                weights[xx * size + x] = tap < 0 ? Int(-0.5 + tap * Self.one) : Int(0.5 + tap * Self.one)
            }
            bounds[2 * xx] = xmin
            bounds[2 * xx + 1] = count
        }
        return Coefficients(bounds: bounds, weights: weights, size: size)
    }

    private struct Coefficients {
        let bounds: [Int]
        let weights: [Int]
        let size: Int
    }

    private struct Filter {
        let support: Double
        let weight: (Double) -> Double

        static func named(_ name: String) -> Filter? {
            switch name {
            case "bilinear": return Filter(support: 1.0, weight: bilinear)
            case "bicubic": return Filter(support: 2.0, weight: bicubic)
            default: return nil
            }
        }

        static func bilinear(_ t: Double) -> Double {
            let x = abs(t)
            return x < 1.0 ? 1.0 - x : 0.0
        }

        /// Keys' cubic with a = -0.5, in Pillow's operation order (the taps must round alike).
        static func bicubic(_ t: Double) -> Double {
            let a = -0.5
            let x = abs(t)
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        }
    }

    private static let precisionBits = 32 - 8 - 2
    private static let one = Double(1 << precisionBits)
    private static let rounding = 1 << (precisionBits - 1)

    private static func clip8(_ acc: Int) -> Int { min(max(acc >> precisionBits, 0), 255) }
}
