package dev.edgemlp.demo

import android.content.Context
import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import dev.edgemlp.demo.core.PhotoSampling
import dev.edgemlp.demo.core.Preprocessing
import java.nio.ByteBuffer

/**
 * Decoded pixels as Preprocessing takes them: 0xAARRGGBB ints, not premultiplied, row-major, holding
 * the values stored in the image file (no color conversion, see [toPixels]).
 */
class Pixels(val argb: IntArray, val width: Int, val height: Int)

/**
 * The bitmap's stored 8-bit values, read without any color conversion.
 *
 * Not `Bitmap.getPixels`: it returns colors converted to sRGB. Android decodes an image into the
 * color space its ICC profile names (Display P3 for most phone photos today, Adobe RGB, ...), so
 * `getPixels` would hand the model sRGB-converted numbers, while edge-mlp's Python reference reads the
 * file with Pillow, which applies no ICC profile, and the iOS app deliberately converts nothing
 * either (ImageDecoding.swift): the accuracy `edge-mlp parity` measured is on the stored values.
 * `copyPixelsToBuffer` copies the bytes as stored, in the bitmap's own color space; the decoders below
 * ask for 8-bit ARGB_8888 that is not premultiplied by alpha, so those bytes are what Pillow sees.
 * (An ICC profile Android cannot represent as a parametric RGB space is still converted to sRGB by
 * the decoder itself; camera photos use sRGB or Display P3, which are kept.)
 */
fun Bitmap.toPixels(): Pixels {
    require(config == Bitmap.Config.ARGB_8888) { "expected an ARGB_8888 bitmap, got $config" }
    require(!isPremultiplied || !hasAlpha()) {
        "the bitmap's colors are premultiplied by alpha; decode it with Images.assetPixels / photoPixels"
    }
    val bytes = ByteBuffer.allocate(rowBytes * height)
    copyPixelsToBuffer(bytes)
    return Pixels(Preprocessing.argbOfRgbaBytes(bytes.array(), width, height, rowBytes), width, height)
}

/**
 * Image decoding for the demo. Two kinds: bitmaps to show (thumbnails, the preview: premultiplied,
 * as Canvas draws them, and color-managed by the screen) and pixels for a model ([Pixels]: 8-bit,
 * not premultiplied, no color conversion).
 */
object Images {
    private val display = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }

    /** A bundled sample to show. */
    fun asset(assets: AssetManager, path: String): Bitmap =
        assets.open(path).use { BitmapFactory.decodeStream(it, null, display) }
            ?: throw IllegalArgumentException("cannot decode $path")

    /**
     * A bundled sample's pixels at full size, so the app sees the pixels edge-mlp's Python
     * preprocessing saw (grayscale PNGs decode to gray ARGB, the RGB replication Pillow does).
     */
    fun assetPixels(assets: AssetManager, path: String): Pixels =
        (assets.open(path).use { BitmapFactory.decodeStream(it, null, modelOptions(1)) }
            ?: throw IllegalArgumentException("cannot decode $path")).toPixels()

    /** A picked photo to show, downsampled as for a model that resizes to [resize]. */
    fun photo(context: Context, uri: Uri, resize: Int): Bitmap = decodePhoto(context, uri, resize, forModel = false)

    /**
     * A picked photo's pixels for a model whose preprocessing resizes the shorter side to [resize],
     * downsampled while decoding as [PhotoSampling] says. Decode again for each model (the app keeps
     * one decode per photo in a [dev.edgemlp.demo.core.PerResizeDecode]): pixels decoded for a small
     * input and reused for a larger one would be upscaled. EXIF rotation is applied on Android 9+.
     */
    fun photoPixels(context: Context, uri: Uri, resize: Int): Pixels =
        decodePhoto(context, uri, resize, forModel = true).toPixels()

    private fun decodePhoto(context: Context, uri: Uri, resize: Int, forModel: Boolean): Bitmap {
        val resolver = context.contentResolver
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            // No target color space is set: the decoder keeps the image's own (no conversion).
            val bitmap = ImageDecoder.decodeBitmap(ImageDecoder.createSource(resolver, uri)) { decoder, info, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                decoder.setTargetSampleSize(PhotoSampling.sampleSize(info.size.width, info.size.height, resize))
                if (forModel) decoder.isUnpremultipliedRequired = true
            }
            // ImageDecoder picks RGBA_F16 for sources of more than 8 bits per channel (16-bit PNG,
            // 10-bit HEIF). The model takes 8-bit values, so those (rare) images are copied to 8 bits
            // by Android, which may convert their colors; 8-bit images, every JPEG, are read as stored.
            return if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        }
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, bounds) }
        val sample = PhotoSampling.sampleSize(bounds.outWidth, bounds.outHeight, resize)
        val options = if (forModel) {
            modelOptions(sample)
        } else {
            BitmapFactory.Options().apply {
                inPreferredConfig = Bitmap.Config.ARGB_8888
                inSampleSize = sample
            }
        }
        return resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IllegalArgumentException("cannot decode the picked image")
    }

    /**
     * BitmapFactory options for model pixels: 8-bit ARGB, not premultiplied, and no
     * `inPreferredColorSpace`, so the decoder keeps the image's own color space (no conversion).
     */
    private fun modelOptions(sample: Int) = BitmapFactory.Options().apply {
        inPreferredConfig = Bitmap.Config.ARGB_8888
        inPremultiplied = false
        inSampleSize = sample
    }
}
