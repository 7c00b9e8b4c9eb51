package dev.edgemlp.demo.core

import kotlin.math.ceil
import kotlin.math.max
import kotlin.math.min

/**
 * Decoded pixels -> model input, bit-exact to edge-mlp's Python reference
 * (`edge_mlp/preprocess.py`, which resizes with Pillow).
 *
 * The resize is a port of Pillow's two-pass fixed-point convolution resampler, because the
 * platform's (`Bitmap.createScaledBitmap`) filters differently, and then the phone would not see
 * the inputs that `edge-mlp parity` measured accuracy on. Scaling and normalization run in float32
 * in numpy's order. The shared vectors in `src/test/resources/preprocess_vectors.json` pin it; the
 * Python suite also compiles this file and checks it against them.
 *
 * Plain Kotlin with no Android imports, so it runs in JVM unit tests.
 */
class Preprocessing(
    val resize: Int,
    val cropHeight: Int,
    val cropWidth: Int,
    val interpolation: String,
    mean: DoubleArray,
    std: DoubleArray,
    scale: Double
) {
    // Checked in the iOS port's order: the interpolation, then the statistics.
    private val filter: Filter = FILTERS[interpolation]
        ?: throw IllegalArgumentException(
            "interpolation '$interpolation' is not supported by the app (supported: ${FILTERS.keys.joinToString()})"
        )

    init {
        require(mean.size == 3 && std.size == 3) { "mean and std need 3 values (RGB)" }
    }
    private val mean32 = FloatArray(3) { mean[it].toFloat() }
    private val std32 = FloatArray(3) { std[it].toFloat() }
    private val scale32 = scale.toFloat()

    /**
     * Pixels as 0xAARRGGBB ints, not premultiplied, row-major (see [argbOfRgbaBytes]) ->
     * (1, 3, cropHeight, cropWidth) floats, NCHW.
     */
    fun apply(argb: IntArray, width: Int, height: Int): FloatArray =
        normalize(resizeAndCrop(argb, width, height))

    /**
     * The resized, center-cropped image as RGB values 0..255, row-major HWC
     * (cropHeight * cropWidth * 3). Alpha is dropped, as Pillow's RGBA -> RGB does.
     */
    fun resizeAndCrop(argb: IntArray, width: Int, height: Int): IntArray {
        require(width > 0 && height > 0 && argb.size == width * height) { "pixels do not match ${width}x$height" }
        var rgb = IntArray(width * height * 3)
        for (i in 0 until width * height) {
            val p = argb[i]
            rgb[3 * i] = (p shr 16) and 0xFF
            rgb[3 * i + 1] = (p shr 8) and 0xFF
            rgb[3 * i + 2] = p and 0xFF
        }
        // Python: ratio = resize / min(w, h); size = round(w * ratio) (round half to even).
        val ratio = resize.toDouble() / min(width, height)
        val outWidth = max(1, Math.rint(width * ratio).toInt())
        val outHeight = max(1, Math.rint(height * ratio).toInt())
        var w = width
        var h = height
        // Pillow resamples horizontally first, and skips a pass whose size does not change.
        if (outWidth != w) {
            rgb = resampleRows(rgb, w, h, outWidth)
            w = outWidth
        }
        if (outHeight != h) {
            rgb = resampleColumns(rgb, w, h, outHeight)
            h = outHeight
        }
        return centerCrop(rgb, w, h)
    }

    /** RGB 0..255 (HWC) -> float32 NCHW: (v * scale - mean) / std, each step rounded to float32 as numpy does. */
    fun normalize(rgb: IntArray): FloatArray {
        val plane = cropHeight * cropWidth
        val out = FloatArray(3 * plane)
        for (i in 0 until plane) {
            for (c in 0 until 3) {
                val scaled = rgb[3 * i + c].toFloat() * scale32
                out[c * plane + i] = (scaled - mean32[c]) / std32[c]
            }
        }
        return out
    }

    private fun centerCrop(rgb: IntArray, w: Int, h: Int): IntArray {
        require(w >= cropWidth && h >= cropHeight) { "resized image ${w}x$h is smaller than the crop" }
        val left = (w - cropWidth) / 2
        val top = (h - cropHeight) / 2
        val out = IntArray(cropHeight * cropWidth * 3)
        for (y in 0 until cropHeight) {
            System.arraycopy(rgb, ((top + y) * w + left) * 3, out, y * cropWidth * 3, cropWidth * 3)
        }
        return out
    }

    private fun resampleRows(rgb: IntArray, w: Int, h: Int, outW: Int): IntArray {
        val k = coefficients(w, outW)
        val out = IntArray(outW * h * 3)
        for (y in 0 until h) {
            for (x in 0 until outW) {
                val start = k.bounds[2 * x]
                val count = k.bounds[2 * x + 1]
                for (c in 0 until 3) {
                    var acc = ROUNDING
                    for (i in 0 until count) acc += rgb[(y * w + start + i) * 3 + c] * k.weights[x * k.size + i]
                    out[(y * outW + x) * 3 + c] = clip8(acc)
                }
            }
        }
        return out
    }

    private fun resampleColumns(rgb: IntArray, w: Int, h: Int, outH: Int): IntArray {
        val k = coefficients(h, outH)
        val out = IntArray(w * outH * 3)
        for (y in 0 until outH) {
            val start = k.bounds[2 * y]
            val count = k.bounds[2 * y + 1]
            for (x in 0 until w) {
                for (c in 0 until 3) {
                    var acc = ROUNDING
                    for (i in 0 until count) acc += rgb[((start + i) * w + x) * 3 + c] * k.weights[y * k.size + i]
                    out[(y * w + x) * 3 + c] = clip8(acc)
                }
            }
        }
        return out
    }

    /** Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output pixel, first input index, tap count, fixed-point taps. */
    private fun coefficients(inSize: Int, outSize: Int): Coefficients {
        val scale = inSize.toDouble() / outSize
        val filterScale = max(scale, 1.0)
        val support = filter.support * filterScale
        val size = ceil(support).toInt() * 2 + 1
        val bounds = IntArray(outSize * 2)
        val weights = IntArray(outSize * size)
        val taps = DoubleArray(size)
        for (xx in 0 until outSize) {
            val center = (xx + 0.5) * scale
            val inverse = 1.0 / filterScale
            val xmin = max((center - support + 0.5).toInt(), 0)
            val count = min((center + support + 0.5).toInt(), inSize) - xmin
            var total = 0.0
            for (x in 0 until count) {
                taps[x] = filter.weight((x + xmin - center + 0.5) * inverse)
                total += taps[x]
            }
            for (x in 0 until count) {
                val tap = if (total != 0.0) taps[x] / total else taps[x]
                weights[xx * size + x] = if (tap < 0) (-0.5 + tap * ONE).toInt() else (0.5 + tap * ONE).toInt()
            }
            bounds[2 * xx] = xmin
            bounds[2 * xx + 1] = count
        }
        return Coefficients(bounds, weights, size)
    }

    private class Coefficients(val bounds: IntArray, val weights: IntArray, val size: Int)

    private class Filter(val support: Double, val weight: (Double) -> Double)

    companion object {
        /** The `preprocessing.color` values the app produces (Pillow mode names); the iOS port accepts the same. */
        val SUPPORTED_COLORS: List<String> = listOf("RGB")

        /** The `preprocessing.layout` values the app produces; the iOS port accepts the same. */
        val SUPPORTED_LAYOUTS: List<String> = listOf("NCHW")

        /**
         * The preprocessing a manifest's `preprocessing` dict describes, refused with a message
         * naming the field when the app cannot follow it. Checked in this order, with the same
         * accepted values and wording as the iOS app's `Preprocessing.init(_ spec:)`: crop, color,
         * layout, interpolation, mean / std.
         */
        fun forManifest(
            resize: Int,
            crop: List<Int>,
            interpolation: String,
            mean: List<Double>,
            std: List<Double>,
            scale: Double,
            color: String,
            layout: String
        ): Preprocessing {
            require(crop.size == 2 && crop.all { it > 0 }) {
                "preprocessing.crop must be [height, width] with positive sizes, got $crop"
            }
            require(color in SUPPORTED_COLORS) {
                "preprocessing.color '$color' is not supported by the app (supported: ${SUPPORTED_COLORS.joinToString()})"
            }
            require(layout in SUPPORTED_LAYOUTS) {
                "preprocessing.layout '$layout' is not supported by the app (supported: ${SUPPORTED_LAYOUTS.joinToString()})"
            }
            return Preprocessing(resize, crop[0], crop[1], interpolation, mean.toDoubleArray(), std.toDoubleArray(), scale)
        }

        /**
         * 8-bit RGBA bytes as `Bitmap.copyPixelsToBuffer` writes an ARGB_8888 bitmap (R, G, B, A in
         * memory, `rowBytes` per row) -> the 0xAARRGGBB ints [apply] takes. The values are copied,
         * not converted: no color space, no (un)premultiplication.
         */
        fun argbOfRgbaBytes(bytes: ByteArray, width: Int, height: Int, rowBytes: Int): IntArray {
            require(width > 0 && height > 0 && rowBytes >= width * 4 && bytes.size >= rowBytes * (height - 1) + width * 4) {
                "${bytes.size} bytes do not hold ${width}x$height RGBA pixels at $rowBytes bytes per row"
            }
            val argb = IntArray(width * height)
            for (y in 0 until height) {
                for (x in 0 until width) {
                    val at = y * rowBytes + x * 4
                    val r = bytes[at].toInt() and 0xFF
                    val g = bytes[at + 1].toInt() and 0xFF
                    val b = bytes[at + 2].toInt() and 0xFF
                    val a = bytes[at + 3].toInt() and 0xFF
                    argb[y * width + x] = (a shl 24) or (r shl 16) or (g shl 8) or b
                }
            }
            return argb
        }

        private const val PRECISION_BITS = 32 - 8 - 2
        private const val ONE = (1 shl PRECISION_BITS).toDouble()
        private const val ROUNDING = 1 shl (PRECISION_BITS - 1)

        private fun clip8(acc: Int): Int = min(max(acc shr PRECISION_BITS, 0), 255)

        private fun bilinear(t: Double): Double {
            val x = Math.abs(t)
            return if (x < 1.0) 1.0 - x else 0.0
        }

        /** Keys' cubic with a = -0.5, written in Pillow's operation order (the taps must round alike). */
        private fun bicubic(t: Double): Double {
            val a = -0.5
            val x = Math.abs(t)
            if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
            if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a
            return 0.0
        }

        private val FILTERS: Map<String, Filter> = mapOf(
            "bilinear" to Filter(1.0, ::bilinear),
            "bicubic" to Filter(2.0, ::bicubic)
        )

        /** Float input -> int8 with the input tensor's params, as edge-mlp does: clip(round_half_even(x / scale) + zp). */
        fun quantize(x: FloatArray, scale: Double, zeroPoint: Int): ByteArray {
            val scale32 = scale.toFloat()
            return ByteArray(x.size) {
                val q = Math.rint((x[it] / scale32).toDouble()) + zeroPoint
                min(max(q, -128.0), 127.0).toInt().toByte()
            }
        }
    }
}
