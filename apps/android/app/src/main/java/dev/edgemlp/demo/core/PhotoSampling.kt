package dev.edgemlp.demo.core

/**
 * How far a picked photo is downsampled while decoding, for a model: by a power of two while its
 * shorter side stays >= 4 x the model's `preprocessing.resize`. The exact Pillow-style resize then
 * starts from a few hundred pixels, not 12 megapixels (which would not fit the preprocessing's
 * buffers on many phones), and never from fewer than the model's input needs.
 *
 * Plain Kotlin with no Android imports: edge-mlp's tests compile this file.
 */
object PhotoSampling {
    /** The shorter side a photo keeps when decoded for a model that resizes it to [resize]. */
    fun minSide(resize: Int): Int = 4 * resize

    /** The decoder's sample size (a power of two) for a width x height photo and a model resizing to [resize]. */
    fun sampleSize(width: Int, height: Int, resize: Int): Int {
        val minSide = minSide(resize)
        var sample = 1
        while (minOf(width, height) / (sample * 2) >= minSide) sample *= 2
        return sample
    }
}

/**
 * One picked photo's pixels, decoded for the model that uses them: [decode] runs again whenever the
 * model's `preprocessing.resize` differs from the one the kept pixels were decoded for. Pixels
 * downsampled for a model with a small input and reused for one with a larger input would reach it
 * upscaled; decoded for a larger input and reused for a smaller one, the resize would start from
 * other pixels than a decode for that model. Not thread-safe: the app uses it on its runtime thread.
 */
class PerResizeDecode<T>(private val decode: (resize: Int) -> T) {
    private var decoded: T? = null
    private var decodedFor = 0

    fun forResize(resize: Int): T {
        val kept = decoded
        if (kept != null && decodedFor == resize) return kept
        val fresh = decode(resize)
        decoded = fresh
        decodedFor = resize
        return fresh
    }
}
