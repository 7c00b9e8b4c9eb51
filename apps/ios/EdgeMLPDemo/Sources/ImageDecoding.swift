import CoreGraphics
import Foundation
import ImageIO
import UIKit

/// Decoded pixels in the layout `Preprocessing.apply` takes: RGBA8, row-major, top row first.
struct RGBAImage: Sendable {
    let pixels: [UInt8]
    let width: Int
    let height: Int
}

enum ImageDecodingError: LocalizedError {
    case unreadable
    case noBitmap

    var errorDescription: String? {
        switch self {
        case .unreadable: return "the image could not be decoded"
        case .noBitmap: return "the image has no bitmap to read"
        }
    }
}

/// Image file or photo -> RGBA8 with the pixel values Pillow would see, as far as Core Graphics
/// allows: edge-mlp's preprocessing (and the accuracy `edge-mlp parity` measured) starts from
/// Pillow's decode, which applies no color management. So grayscale images are widened to RGB by
/// copying the gray value (Pillow's "L" -> "RGB"), and RGB images are drawn into a context of
/// their own color space, where Core Graphics converts nothing.
enum ImageDecoding {
    /// Photos larger than this (long side, pixels) are downscaled by ImageIO while decoding: a
    /// 48 MP photo would need ~1 GB in the exact resampler, and the model input is a few hundred
    /// pixels at most. Bundled samples are far smaller and decode exactly.
    static let maxDecodedSide = 2048

    static func decode(contentsOf url: URL) throws -> RGBAImage {
        guard let source = CGImageSourceCreateWithURL(url as CFURL, nil) else { throw ImageDecodingError.unreadable }
        return try decode(source)
    }

    static func decode(data: Data) throws -> RGBAImage {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil) else { throw ImageDecodingError.unreadable }
        return try decode(source)
    }

    /// A UIImage (e.g. from the camera or a drawing), upright.
    static func decode(_ image: UIImage) throws -> RGBAImage {
        guard let cgImage = image.cgImage else { throw ImageDecodingError.noBitmap }
        return oriented(try rgba(cgImage), exifOrientation: exifOrientation(image.imageOrientation))
    }

    /// A CGImage as stored (no orientation applied).
    static func rgba(_ image: CGImage) throws -> RGBAImage {
        if let gray = grayscale(image) { return gray }
        let width = image.width, height = image.height
        let space: CGColorSpace
        if let own = image.colorSpace, own.model == .rgb, own.supportsOutput {
            space = own
        } else {
            space = CGColorSpace(name: CGColorSpace.sRGB) ?? CGColorSpaceCreateDeviceRGB()
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        let drawn = pixels.withUnsafeMutableBytes { buffer -> Bool in
            // Alpha is skipped, not stored: transparent pixels come out composited over black
            // (Pillow's RGBA -> RGB would keep their color; only transparent images differ).
            guard let context = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                          bytesPerRow: width * 4, space: space,
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue
                                              | CGBitmapInfo.byteOrder32Big.rawValue) else { return false }
            context.interpolationQuality = .none
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn else { throw ImageDecodingError.noBitmap }
        for i in stride(from: 3, to: pixels.count, by: 4) { pixels[i] = 255 }
        return RGBAImage(pixels: pixels, width: width, height: height)
    }

    private static func decode(_ source: CGImageSource) throws -> RGBAImage {
        let properties = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [String: Any] ?? [:]
        let width = properties[kCGImagePropertyPixelWidth as String] as? Int ?? 0
        let height = properties[kCGImagePropertyPixelHeight as String] as? Int ?? 0
        if max(width, height) > maxDecodedSide {
            // ImageIO applies the EXIF orientation itself when it makes the thumbnail.
            let options: [CFString: Any] = [
                kCGImageSourceCreateThumbnailFromImageAlways: true,
                kCGImageSourceCreateThumbnailWithTransform: true,
                kCGImageSourceThumbnailMaxPixelSize: maxDecodedSide,
            ]
            guard let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else {
                throw ImageDecodingError.unreadable
            }
            return try rgba(image)
        }
        guard let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else { throw ImageDecodingError.unreadable }
        let orientation = properties[kCGImagePropertyOrientation as String] as? Int ?? 1
        return oriented(try rgba(image), exifOrientation: orientation)
    }

    /// 8-bit grayscale (with or without alpha) read straight from the decoded bytes and copied to
    /// R, G and B: drawing it into an RGB context would apply a gray -> RGB color conversion.
    private static func grayscale(_ image: CGImage) -> RGBAImage? {
        guard image.colorSpace?.model == .monochrome, image.bitsPerComponent == 8,
              [8, 16].contains(image.bitsPerPixel),
              let data = image.dataProvider?.data, let bytes = CFDataGetBytePtr(data) else { return nil }
        let stride = image.bitsPerPixel / 8
        let alphaFirst: [CGImageAlphaInfo] = [.first, .premultipliedFirst, .noneSkipFirst]
        let offset = stride == 2 && alphaFirst.contains(image.alphaInfo) ? 1 : 0
        let width = image.width, height = image.height, rowBytes = image.bytesPerRow
        guard CFDataGetLength(data) >= rowBytes * (height - 1) + width * stride else { return nil }
        var pixels = [UInt8](repeating: 255, count: width * height * 4)
        for y in 0..<height {
            for x in 0..<width {
                let gray = bytes[y * rowBytes + x * stride + offset]
                let i = (y * width + x) * 4
                pixels[i] = gray
                pixels[i + 1] = gray
                pixels[i + 2] = gray
            }
        }
        return RGBAImage(pixels: pixels, width: width, height: height)
    }

    /// The stored pixels turned upright for an EXIF orientation (1...8), by index mapping only:
    /// no resampling, so values are unchanged.
    static func oriented(_ image: RGBAImage, exifOrientation: Int) -> RGBAImage {
        guard (2...8).contains(exifOrientation) else { return image }
        let w = image.width, h = image.height
        let swaps = exifOrientation >= 5
        let outWidth = swaps ? h : w, outHeight = swaps ? w : h
        var pixels = [UInt8](repeating: 0, count: image.pixels.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let (sx, sy) = sourcePixel(x, y, width: w, height: h, exifOrientation: exifOrientation)
                let from = (sy * w + sx) * 4, to = (y * outWidth + x) * 4
                pixels[to..<(to + 4)] = image.pixels[from..<(from + 4)]
            }
        }
        return RGBAImage(pixels: pixels, width: outWidth, height: outHeight)
    }

    /// Which stored pixel lands at upright position (x, y).
    private static func sourcePixel(_ x: Int, _ y: Int, width w: Int, height h: Int,
                                    exifOrientation: Int) -> (Int, Int) {
        switch exifOrientation {
        case 2: return (w - 1 - x, y)  // mirrored
        case 3: return (w - 1 - x, h - 1 - y)  // rotated 180
        case 4: return (x, h - 1 - y)  // mirrored vertically
        case 5: return (y, x)  // transposed
        case 6: return (y, h - 1 - x)  // shown rotated 90 clockwise
        case 7: return (w - 1 - y, h - 1 - x)  // transversed
        case 8: return (w - 1 - y, x)  // shown rotated 90 counter-clockwise
        default: return (x, y)
        }
    }

    static func exifOrientation(_ orientation: UIImage.Orientation) -> Int {
        switch orientation {
        case .up: return 1
        case .upMirrored: return 2
        case .down: return 3
        case .downMirrored: return 4
        case .leftMirrored: return 5
        case .right: return 6
        case .rightMirrored: return 7
        case .left: return 8
        @unknown default: return 1
        }
    }
}
