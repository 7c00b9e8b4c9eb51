package dev.edgemlp.demo

import android.content.Context
import android.content.res.AssetManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build

/** Decoded pixels in `Bitmap.getPixels` order (non-premultiplied ARGB, row-major): what Preprocessing takes. */
class Pixels(val argb: IntArray, val width: Int, val height: Int)

fun Bitmap.toPixels(): Pixels {
    val argb = IntArray(width * height)
    getPixels(argb, 0, width, 0, 0, width, height)
    return Pixels(argb, width, height)
}

/** Image decoding for the demo: 8-bit ARGB software bitmaps, whose getPixels the preprocessing reads. */
object Images {
    private val argb8888 = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }

    /**
     * A bundled sample at full size, so the app sees the pixels edge-mlp's Python preprocessing saw
     * (grayscale PNGs decode to gray ARGB, the RGB replication Pillow does).
     */
    fun asset(assets: AssetManager, path: String): Bitmap =
        assets.open(path).use { BitmapFactory.decodeStream(it, null, argb8888) }
            ?: throw IllegalArgumentException("cannot decode $path")

    /**
     * A picked photo, downsampled by a power of two while its shorter side stays >= [minSide]: the
     * exact Pillow-style resize then starts from a few hundred pixels, not 12 megapixels (which would
     * not fit the preprocessing's buffers on many phones). EXIF rotation is applied on Android 9+.
     */
    fun photo(context: Context, uri: Uri, minSide: Int): Bitmap {
        val resolver = context.contentResolver
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            return ImageDecoder.decodeBitmap(ImageDecoder.createSource(resolver, uri)) { decoder, info, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                decoder.setTargetSampleSize(sampleSize(info.size.width, info.size.height, minSide))
            }
        }
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, bounds) }
        val options = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inSampleSize = sampleSize(bounds.outWidth, bounds.outHeight, minSide)
        }
        return resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw IllegalArgumentException("cannot decode the picked image")
    }

    private fun sampleSize(width: Int, height: Int, minSide: Int): Int {
        var sample = 1
        while (minOf(width, height) / (sample * 2) >= minSide) sample *= 2
        return sample
    }
}
