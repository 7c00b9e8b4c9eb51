package dev.edgemlp.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class TopKTest {
    @Test
    fun softmaxIsAProbabilityDistributionInLogitOrder() {
        val p = softmax(floatArrayOf(1f, 2f, 3f))
        assertEquals(1.0, p.sum().toDouble(), 1e-6)
        assertTrue(p[0] < p[1] && p[1] < p[2])
        // exp(1) / (exp(1) + exp(2) + exp(3))
        assertEquals(0.09003057f, p[0], 1e-6f)
    }

    @Test
    fun softmaxDoesNotOverflowOnLargeLogits() {
        val p = softmax(floatArrayOf(1000f, 1000f, -1000f))
        assertArrayEquals(floatArrayOf(0.5f, 0.5f, 0f), p, 1e-6f)
    }

    @Test
    fun topKIsBestFirstWithLabels() {
        val top = topK(floatArrayOf(0.1f, 0.6f, 0.05f, 0.25f), 3, listOf("a", "b", "c", "d"))
        assertEquals(listOf(1, 3, 0), top.map { it.index })
        assertEquals(listOf("b", "d", "a"), top.map { it.label })
        assertEquals(0.6f, top[0].probability)
    }

    @Test
    fun tiesKeepClassOrderAndKMayExceedTheClasses() {
        val top = topK(floatArrayOf(0.25f, 0.25f, 0.5f), 10)
        assertEquals(listOf(2, 0, 1), top.map { it.index })
        assertEquals(emptyList<Prediction>(), topK(floatArrayOf(1f), 0))
    }

    @Test
    fun missingLabelsFallBackToClassN() {
        val top = topK(floatArrayOf(0.2f, 0.8f), 2, listOf("only one"))
        assertEquals(listOf("class 1", "only one"), top.map { it.label })
        assertEquals("class 0", labelFor(listOf("  "), 0))
    }

    @Test
    fun labelsFileIsOneLabelPerLine() {
        assertEquals(listOf("T-shirt/top", "Trouser", "", "Dress"), parseLabels("T-shirt/top\r\nTrouser\n\nDress\n\n"))
    }
}
