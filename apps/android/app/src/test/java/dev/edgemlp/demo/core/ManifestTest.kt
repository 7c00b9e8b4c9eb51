package dev.edgemlp.demo.core

import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.put
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * Real manifests written by `edge-mlp convert` (src/test/resources) decode into the app's structs.
 * The assertions hold for any re-conversion of the same artifacts, so the files can be regenerated.
 */
class ManifestTest {
    private val executorchJson = resourceText("manifest_executorch_int8.json")
    private val tfliteJson = resourceText("manifest_tflite_fp32.json")

    @Test
    fun executorchInt8ManifestDecodes() {
        val m = parseManifest(executorchJson)
        assertEquals(MANIFEST_SCHEMA_VERSION, m.schemaVersion)
        assertEquals("executorch", m.target.name)
        assertEquals("int8", m.precision)
        assertEquals("as_mlp_mobile", m.model.name)
        assertEquals("${m.model.name}-executorch-int8.pte", m.artifact.file)
        assertTrue(m.artifact.sha256!!.matches(Regex("[0-9a-f]{64}")))
        assertTrue(m.artifact.sizeBytes!! > 0)
        assertTrue("macs is recorded and positive", (m.model.macs ?: 0L) > 0L)
        assertTrue(m.edgeMlpVersion.isNotBlank())
        assertTrue(m.shiftLowering.used in listOf("slice", "roll", "none"))
        // ExecuTorch int8 keeps float I/O: the quantization lives inside the XNNPACK delegate.
        assertEquals(TensorIo.Float32, m.input.io())
        assertEquals(TensorIo.Float32, m.output.tensor.io())
        assertEquals(4, m.input.shape.size)
        assertEquals(listOf(1, 3), m.input.shape.take(2))
        assertEquals(listOf(1, m.output.numClasses), m.output.tensor.shape)
        assertTrue(m.target.runtime.containsKey("executorch"))
    }

    @Test
    fun preprocessingMatchesTheInputShape() {
        for (json in listOf(executorchJson, tfliteJson)) {
            val m = parseManifest(json)
            val p = m.preprocessing
            assertEquals(m.input.shape.drop(2), p.crop)
            assertEquals("RGB", p.color)
            assertEquals("NCHW", p.layout)
            assertEquals(3, p.mean.size)
            assertEquals(3, p.std.size)
            val pre = p.toPreprocessing()
            assertEquals(p.crop[0], pre.cropHeight)
            assertEquals(p.crop[1], pre.cropWidth)
            assertEquals(p.resize, pre.resize)
        }
    }

    @Test
    fun tfliteFp32ManifestDecodes() {
        val m = parseManifest(tfliteJson)
        assertEquals("tflite", m.target.name)
        assertEquals("fp32", m.precision)
        assertEquals("${m.model.name}-tflite-fp32.tflite", m.artifact.file)
        assertEquals(TensorIo.Float32, m.input.io())
        assertEquals(TensorIo.Float32, m.output.tensor.io())
        assertNull(m.input.quantization)
        assertEquals(m.output.numClasses, m.output.tensor.shape.last())
    }

    @Test
    fun int8IoCarriesItsQuantization() {
        val q = buildJsonObject {
            put("scale", 0.0109)
            put("zero_point", -54)
        }
        val root = EdgeMlpJson.parseToJsonElement(tfliteJson).jsonObject
        val input = JsonObject(root.getValue("input").jsonObject + mapOf("dtype" to JsonPrimitive("int8"), "quantization" to q))
        val m = parseManifest(JsonObject(root + ("input" to input)).toString())
        assertEquals(QuantParams(0.0109, -54), m.input.quantization)
        assertEquals(TensorIo.Int8(QuantParams(0.0109, -54)), m.input.io())
    }

    @Test
    fun anotherSchemaVersionIsRefusedWithAClearMessage() {
        val root = EdgeMlpJson.parseToJsonElement(executorchJson).jsonObject
        val newer = JsonObject(root + ("schema_version" to JsonPrimitive(2))).toString()
        val e = assertThrows(IllegalArgumentException::class.java) { parseManifest(newer) }
        assertTrue(e.message!!, e.message!!.contains("schema version 2 is not supported"))
        val missing = JsonObject(root - "schema_version").toString()
        val e2 = assertThrows(IllegalArgumentException::class.java) { parseManifest(missing) }
        assertTrue(e2.message!!, e2.message!!.contains("(missing)"))
    }

    @Test
    fun aMalformedManifestIsRefused() {
        val root = EdgeMlpJson.parseToJsonElement(executorchJson).jsonObject
        val e = assertThrows(IllegalArgumentException::class.java) { parseManifest(JsonObject(root - "input").toString()) }
        assertTrue(e.message!!, e.message!!.startsWith("manifest is malformed"))
        assertThrows(IllegalArgumentException::class.java) { parseManifest("not json") }
        assertThrows(IllegalArgumentException::class.java) { parseManifest("[1, 2]") }
    }

    @Test
    fun unsupportedDtypesAreRefused() {
        val spec = TensorSpec("x", listOf(1, 3, 8, 8), "float16", "NCHW")
        assertThrows(IllegalArgumentException::class.java) { spec.io() }
        assertThrows(IllegalArgumentException::class.java) { spec.copy(dtype = "int8").io() }
    }
}
