package dev.edgemlp.demo.core

import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

/**
 * The app's preprocessing against edge-mlp's Python reference (Pillow + numpy), on the vectors in
 * `src/test/resources/preprocess_vectors.json` (written by `make app-vectors`; the iOS tests read
 * the same file). The edge-mlp suite also compiles Preprocessing.kt and checks it bit for bit.
 */
class PreprocessingTest {
    @Serializable
    private data class Vectors(val cases: List<Case>)

    @Serializable
    private data class Case(
        val name: String,
        val width: Int,
        val height: Int,
        val rgba: List<Int>,
        val preprocessing: PreprocessingSpec,
        val resized_rgb: List<Int>,
        val expected: List<Double>,
        val quantization: Quantization? = null,
    )

    @Serializable
    private data class Quantization(val scale: Double, val zero_point: Int, val expected: List<Int>)

    private val vectors: Vectors = Json { ignoreUnknownKeys = true }.decodeFromString(
        Vectors.serializer(),
        javaClass.classLoader!!.getResource("preprocess_vectors.json")!!.readText(),
    )

    private fun Case.argb() = IntArray(width * height) { p ->
        (rgba[4 * p + 3] shl 24) or (rgba[4 * p] shl 16) or (rgba[4 * p + 1] shl 8) or rgba[4 * p + 2]
    }

    @Test
    fun resizeAndCropMatchPillowExactly() {
        for (case in vectors.cases) {
            val rgb = case.preprocessing.toPreprocessing().resizeAndCrop(case.argb(), case.width, case.height)
            assertArrayEquals(case.name, case.resized_rgb.toIntArray(), rgb)
        }
    }

    @Test
    fun normalizedInputMatchesPython() {
        for (case in vectors.cases) {
            val x = case.preprocessing.toPreprocessing().apply(case.argb(), case.width, case.height)
            val expected = FloatArray(case.expected.size) { case.expected[it].toFloat() }
            assertArrayEquals(case.name, expected, x, 1e-6f)
        }
    }

    @Test
    fun int8InputMatchesPython() {
        val quantized = vectors.cases.filter { it.quantization != null }
        assert(quantized.isNotEmpty())
        for (case in quantized) {
            val q = case.quantization!!
            val x = case.preprocessing.toPreprocessing().apply(case.argb(), case.width, case.height)
            val bytes = Preprocessing.quantize(x, q.scale, q.zero_point)
            assertEquals(case.name, q.expected, bytes.map { it.toInt() })
        }
    }

    @Test(expected = IllegalArgumentException::class)
    fun unsupportedInterpolationIsRefused() {
        Preprocessing(2, 2, 2, "nearest", doubleArrayOf(0.0, 0.0, 0.0), doubleArrayOf(1.0, 1.0, 1.0), 1.0)
    }

    private fun refusal(crop: List<Int> = listOf(2, 2), color: String = "RGB", layout: String = "NCHW"): String? =
        try {
            Preprocessing.forManifest(2, crop, "bilinear", listOf(0.0, 0.0, 0.0), listOf(1.0, 1.0, 1.0), 1.0, color, layout)
            null
        } catch (e: IllegalArgumentException) {
            e.message
        }

    /** The iOS app refuses the same specs in the same words (edge-mlp's tests compare the two). */
    @Test
    fun aManifestPreprocessingTheAppCannotFollowIsRefused() {
        assertEquals(null, refusal())
        assertEquals("preprocessing.crop must be [height, width] with positive sizes, got [2]", refusal(crop = listOf(2)))
        assertEquals("preprocessing.crop must be [height, width] with positive sizes, got [0, 2]", refusal(crop = listOf(0, 2)))
        assertEquals("preprocessing.color 'BGR' is not supported by the app (supported: RGB)", refusal(color = "BGR"))
        assertEquals("preprocessing.layout 'NHWC' is not supported by the app (supported: NCHW)", refusal(layout = "NHWC"))
        assertEquals(refusal(crop = listOf(2)), refusal(crop = listOf(2), color = "BGR", layout = "NHWC"))
    }

    /** What `Bitmap.copyPixelsToBuffer` writes (R, G, B, A bytes, padded rows) becomes ARGB ints unchanged. */
    @Test
    fun bitmapBytesBecomeArgbUnchanged() {
        val bytes = byteArrayOf(
            1, 2, 3, 4, -1, 0, -128, 127, 9, 9, // row 0 + 2 padding bytes
            10, 20, 30, -1, 40, 50, 60, 0, 9, 9,
        )
        val argb = Preprocessing.argbOfRgbaBytes(bytes, 2, 2, 10)
        assertArrayEquals(intArrayOf(0x04010203, 0x7FFF0080, 0xFF0A141E.toInt(), 0x0028323C), argb)
    }
}
