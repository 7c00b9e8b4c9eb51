package dev.edgemlp.demo.core

import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.double
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class BenchReportTest {
    private val manifest = parseManifest(resourceText("manifest_executorch_int8.json")).let {
        it.copy(model = it.model.copy(macs = 4_426_240L))
    }
    private val machine = Machine(description = "Pixel 9, Google Tensor G4, 8 cores", platform = "android 15 api 35", threads = 4)
    private val settings = BenchSettings(warmup = 10, runs = 10, threads = 4)

    @Test
    fun statisticsAreEdgeMlps() {
        val lat = latencyOf(listOf(5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 9.0, 8.0, 7.0, 6.0))
        // sorted 1..10: statistics.median = (5 + 6) / 2; quantiles(n=10, method="inclusive") -> 1.9 ... 9.1
        assertEquals(5.5, lat.medianMs, 0.0)
        assertEquals(1.9, lat.p10Ms!!, 0.0)
        assertEquals(9.1, lat.p90Ms!!, 0.0)
        assertEquals(5.5, lat.meanMs, 1e-12)
        assertEquals(1.0, lat.minMs, 0.0)
        assertEquals(10, lat.runs)
        assertEquals(null, lat.p5Ms)
        val one = latencyOf(listOf(0.7))
        assertEquals(listOf(0.7, 0.7, 0.7, 0.7), listOf(one.medianMs, one.p10Ms, one.p90Ms, one.minMs))
        assertThrows(IllegalArgumentException::class.java) { latencyOf(emptyList()) }
    }

    /**
     * `latency_vectors.json`: what edge_mlp/timing.py `Latency.from_samples` reports for the same runs
     * (edge-mlp's tests check the file against Python, and LatencyStats.kt bit for bit; iOS reads it too).
     */
    @Test
    fun latencyVectorsAreWhatPythonReports() {
        val cases = EdgeMlpJson.parseToJsonElement(resourceText("latency_vectors.json")).jsonObject["cases"]!!.jsonArray
        assert(cases.isNotEmpty())
        for (element in cases) {
            val c = element.jsonObject
            val name = c["name"]!!.jsonPrimitive.content
            fun number(key: String) = c[key]!!.jsonPrimitive.double
            val lat = latencyOf(c["samples_ms"]!!.jsonArray.map { it.jsonPrimitive.double })
            assertEquals(name, number("median_ms"), lat.medianMs, 0.0)
            assertEquals(name, number("p10_ms"), lat.p10Ms!!, 0.0)
            assertEquals(name, number("p90_ms"), lat.p90Ms!!, 0.0)
            assertEquals(name, number("min_ms"), lat.minMs, 0.0)
            assertEquals(name, c["runs"]!!.jsonPrimitive.int, lat.runs)
            // Python's fmean sums exactly; the app sums in order: equal to rounding.
            assertEquals(name, number("mean_ms"), lat.meanMs, 1e-12 * lat.meanMs)
        }
    }

    @Test
    fun throughputAndGflopsFollowTheMedian() {
        val r = benchReport(manifest, Backends.EXECUTORCH, List(10) { 2.0 + it }, machine, settings, "android:Pixel 9")
        val result = r.results.single()
        assertEquals(6.5, result.latency.medianMs, 0.0) // sorted 2..11: (6 + 7) / 2
        assertEquals(1000.0 / 6.5, result.throughputIps, 1e-9)
        assertEquals(2.0 * 4_426_240 / (6.5 * 1e6), result.gflops, 1e-12)
        assertEquals(manifest.artifact.file, result.artifact)
        assertEquals(manifest.artifact.sizeBytes, result.sizeBytes)
        assertEquals(manifest.shiftLowering.used, result.shiftLowering)
        assertEquals("int8", result.precision)
        assertEquals(manifest.edgeMlpVersion, r.edgeMlpVersion)
    }

    @Test
    fun aManifestWithoutMacsCannotBeBenchmarked() {
        val noMacs = manifest.copy(model = manifest.model.copy(macs = null))
        val e = assertThrows(IllegalArgumentException::class.java) {
            benchReport(noMacs, Backends.EXECUTORCH, listOf(1.0), machine, settings, "android:x")
        }
        assertEquals(true, e.message!!.contains("model.macs"))
    }

    /** Every key of BenchReport.to_dict() (edge_mlp/bench/schema.py), nulls written, not dropped. */
    @Test
    fun jsonHasEveryKeyOfTheBenchSchemaIncludingNulls() {
        val json = benchReport(manifest, Backends.EXECUTORCH, listOf(1.0, 2.0, 3.0), machine, settings, "android:Pixel 9")
            .toJson()
        val root = EdgeMlpJson.parseToJsonElement(json).jsonObject
        assertEquals(
            setOf("schema_version", "tool", "edge_mlp_version", "machine", "settings", "results", "shift_costs"),
            root.keys,
        )
        assertEquals(2, root.getValue("schema_version").jsonPrimitive.int)
        assertEquals("edge-mlp android app", root.getValue("tool").jsonPrimitive.content)
        assertEquals(JsonArray(emptyList()), root.getValue("shift_costs"))
        assertEquals(setOf("warmup", "runs", "threads"), root.getValue("settings").jsonObject.keys)

        val machineJson = root.getValue("machine").jsonObject
        assertEquals(
            setOf("description", "platform", "threads", "gemm_peak_gflops", "gemm", "process_peak_rss_mb"),
            machineJson.keys,
        )
        assertEquals(JsonNull, machineJson["gemm_peak_gflops"])
        assertEquals(JsonNull, machineJson["process_peak_rss_mb"])

        val result = root.getValue("results").jsonArray.single().jsonObject
        assertEquals(
            setOf(
                "model", "backend", "precision", "shift_lowering", "latency", "throughput_ips", "macs", "gflops",
                "pct_of_gemm_peak", "artifact", "size_bytes", "load_rss_mb", "speedup_vs_eager_fp32",
                "speedup_vs_fp32", "delegation", "source",
            ),
            result.keys,
        )
        for (key in listOf("pct_of_gemm_peak", "load_rss_mb", "speedup_vs_eager_fp32", "speedup_vs_fp32", "delegation")) {
            assertEquals(key, JsonNull, result[key])
        }
        assertEquals("executorch-xnnpack", result.getValue("backend").jsonPrimitive.content)
        assertEquals("android:Pixel 9", result.getValue("source").jsonPrimitive.content)

        val latency = result.getValue("latency") as JsonObject
        assertEquals(
            setOf("median_ms", "p10_ms", "p90_ms", "mean_ms", "min_ms", "runs", "p5_ms", "p95_ms"),
            latency.keys,
        )
        assertEquals(JsonNull, latency["p5_ms"])
        assertEquals(JsonNull, latency["p95_ms"])
        assertEquals(3, latency.getValue("runs").jsonPrimitive.int)
    }
}
