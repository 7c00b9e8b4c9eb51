package dev.edgemlp.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Test

class QuantizationTest {
    private val params = QuantParams(scale = 0.5, zeroPoint = -3)

    @Test
    fun dequantizeIsAffine() {
        val real = params.dequantize(byteArrayOf(-128, -3, 0, 127))
        assertArrayEquals(floatArrayOf(-62.5f, 0f, 1.5f, 65f), real, 0f)
    }

    @Test
    fun quantizeIsEdgeMlpsRoundHalfEvenAndClip() {
        val q = params.quantize(floatArrayOf(0f, 0.25f, 0.75f, 1000f, -1000f))
        // x / 0.5 = 0, 0.5, 1.5 -> round half to even 0, 0, 2; then + (-3); then clip to int8
        assertArrayEquals(byteArrayOf(-3, -3, -1, 127, -128), q)
    }

    @Test
    fun roundTripIsWithinHalfAStep() {
        val x = floatArrayOf(-1.3f, 0.2f, 2.6f)
        val back = params.dequantize(params.quantize(x))
        assertArrayEquals(x, back, 0.25f)
    }
}
