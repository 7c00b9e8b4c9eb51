package dev.edgemlp.demo.core

import kotlinx.serialization.SerialName
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.Json

// The bench JSON the app writes: the layout of `BenchReport.to_dict()` in edge_mlp/bench/schema.py,
// so edge-mlp's bench tools read it like a host run. The contract test checks both ways that every
// field of the Python dataclasses is declared here with the same JSON type (style as in Manifest.kt).
// Every key is written, nulls included: Python reads e.g. lat["p5_ms"] directly.

/** edge_mlp.bench.schema.BENCH_SCHEMA_VERSION. */
const val BENCH_SCHEMA_VERSION = 2

/** Values of edge_mlp.bench.schema.BACKENDS for the runtimes the app has. */
object Backends {
    const val EXECUTORCH = "executorch-xnnpack"
    const val LITERT = "litert-xnnpack"
}

@Serializable
data class BenchReport(
    @SerialName("schema_version") val schemaVersion: Int = BENCH_SCHEMA_VERSION,
    val tool: String = "edge-mlp android app",
    @SerialName("edge_mlp_version") val edgeMlpVersion: String,
    val machine: Machine,
    val settings: BenchSettings,
    val results: List<BenchResult>,
    @SerialName("shift_costs") val shiftCosts: List<ShiftCost> = emptyList(),
)

@Serializable
data class Machine(
    val description: String,
    val platform: String,
    val threads: Int,
    @SerialName("gemm_peak_gflops") val gemmPeakGflops: Double? = null,
    val gemm: String = "not measured on device",
    @SerialName("process_peak_rss_mb") val processPeakRssMb: Double? = null,
)

@Serializable
data class BenchSettings(
    val warmup: Int,
    val runs: Int,
    val threads: Int,
)

@Serializable
data class BenchResult(
    val model: String,
    val backend: String,
    val precision: String,
    @SerialName("shift_lowering") val shiftLowering: String,
    val latency: Latency,
    @SerialName("throughput_ips") val throughputIps: Double,
    val macs: Long,
    val gflops: Double,
    @SerialName("pct_of_gemm_peak") val pctOfGemmPeak: Double? = null,
    val artifact: String? = null,
    @SerialName("size_bytes") val sizeBytes: Long? = null,
    @SerialName("load_rss_mb") val loadRssMb: Double? = null,
    @SerialName("speedup_vs_eager_fp32") val speedupVsEagerFp32: Double? = null,
    @SerialName("eager_baseline_lowering") val eagerBaselineLowering: String? = null,
    @SerialName("speedup_vs_fp32") val speedupVsFp32: Double? = null,
    @SerialName("fp32_baseline_lowering") val fp32BaselineLowering: String? = null,
    val delegation: Map<String, String>? = null,
    /** Per-op profile: only the host's `edge-mlp bench --profile` records one; the app writes null. */
    val profile: Map<String, String>? = null,
    val source: String,
)

@Serializable
data class Latency(
    @SerialName("median_ms") val medianMs: Double,
    @SerialName("p10_ms") val p10Ms: Double?,
    @SerialName("p90_ms") val p90Ms: Double?,
    @SerialName("mean_ms") val meanMs: Double,
    @SerialName("min_ms") val minMs: Double,
    val runs: Int,
    @SerialName("p5_ms") val p5Ms: Double? = null,
    @SerialName("p95_ms") val p95Ms: Double? = null,
)

/** Declared for the schema's sake; the app measures no shift ablation, so the list stays empty. */
@Serializable
data class ShiftCost(
    val model: String,
    val backend: String,
    val precision: String,
    val lowering: String,
    @SerialName("median_ms") val medianMs: Double,
    @SerialName("identity_median_ms") val identityMedianMs: Double,
)

/**
 * Statistics of the timed runs, as edge-mlp's host benchmark computes them (`Latency.from_samples`
 * in edge_mlp/timing.py, see [LatencyStats]): the median of an even N is the mean of the two middle
 * runs, p10 / p90 interpolate linearly between the two nearest runs.
 */
fun latencyOf(latenciesMs: List<Double>): Latency {
    require(latenciesMs.isNotEmpty()) { "no timed runs" }
    val sorted = latenciesMs.sorted()
    val deciles = LatencyStats.deciles(sorted)
    return Latency(
        medianMs = LatencyStats.median(sorted),
        p10Ms = deciles.first(),
        p90Ms = deciles.last(),
        meanMs = sorted.average(),
        minMs = sorted.first(),
        runs = sorted.size,
    )
}

/**
 * The report of one benchmarked artifact: throughput = 1000 / median, GFLOP/s = 2 x MACs / median,
 * the identity fields from its manifest. Needs `model.macs` in the manifest (edge-mlp writes it).
 */
fun benchReport(
    manifest: Manifest,
    backend: String,
    latenciesMs: List<Double>,
    machine: Machine,
    settings: BenchSettings,
    source: String,
    loadRssMb: Double? = null,
): BenchReport {
    val macs = requireNotNull(manifest.model.macs) {
        "the manifest of ${manifest.artifact.file} has no model.macs, which GFLOP/s needs: convert it again with this edge-mlp"
    }
    require(macs > 0) { "model.macs must be positive, got $macs" }
    val latency = latencyOf(latenciesMs)
    val result = BenchResult(
        model = manifest.model.name,
        backend = backend,
        precision = manifest.precision,
        shiftLowering = manifest.shiftLowering.used,
        latency = latency,
        throughputIps = 1000.0 / latency.medianMs,
        macs = macs,
        gflops = 2.0 * macs / (latency.medianMs * 1e6),
        artifact = manifest.artifact.file,
        sizeBytes = manifest.artifact.sizeBytes,
        loadRssMb = loadRssMb,
        source = source,
    )
    return BenchReport(edgeMlpVersion = manifest.edgeMlpVersion, machine = machine, settings = settings, results = listOf(result))
}

private val BenchJson = Json(EdgeMlpJson) { prettyPrint = true }

/** The report as edge-mlp's bench JSON (indented, every key present). */
fun BenchReport.toJson(): String = BenchJson.encodeToString(BenchReport.serializer(), this)
