package dev.edgemlp.demo

import android.content.Context
import android.os.Build
import dev.edgemlp.demo.core.BenchReport
import dev.edgemlp.demo.core.BenchSettings
import dev.edgemlp.demo.core.Machine
import dev.edgemlp.demo.core.benchReport
import dev.edgemlp.demo.core.toJson
import dev.edgemlp.demo.core.toPreprocessing
import dev.edgemlp.demo.runtime.Classifiers
import java.io.File

/**
 * The app's benchmark, shaped like `edge-mlp bench` on the host: load the artifact, W warm-up and
 * N timed forward calls on one fixed preprocessed input, on the given number of CPU threads. It
 * writes edge-mlp's bench JSON, so phone results go into the same tables and plots.
 */
object Benchmarker {
    data class Settings(val warmup: Int = 10, val runs: Int = 50, val threads: Int = defaultThreads())

    class Outcome(val report: BenchReport, val file: File)

    /** Four threads, or fewer on a phone with fewer cores: what edge-mlp's device runs use. */
    fun defaultThreads(): Int = minOf(4, Runtime.getRuntime().availableProcessors())

    /** Runs the benchmark on the calling (background) thread and writes the report. */
    fun run(context: Context, model: BundledModel, input: FloatArray, settings: Settings): Outcome {
        require(settings.warmup >= 0 && settings.runs >= 1 && settings.threads >= 1) {
            "warmup must be >= 0, runs and threads >= 1 (got $settings)"
        }
        val artifact = BundledModels.localFile(context, model)
        val rssBefore = residentMb()
        val (backend, latencies, rssLoaded) = Classifiers.create(model.manifest, artifact, settings.threads).use { c ->
            repeat(settings.warmup) { c.classify(input) }
            val rssLoaded = residentMb()
            val latencies = List(settings.runs) {
                c.classify(input)
                c.lastForwardNanos / 1e6
            }
            Triple(c.backend, latencies, rssLoaded)
        }
        val report = benchReport(
            manifest = model.manifest,
            backend = backend,
            latenciesMs = latencies,
            machine = machine(settings.threads),
            settings = BenchSettings(warmup = settings.warmup, runs = settings.runs, threads = settings.threads),
            source = "android:${Build.MODEL}",
            loadRssMb = if (rssBefore != null && rssLoaded != null) rssLoaded - rssBefore else null,
        )
        return Outcome(report, write(context, report, model.artifactName))
    }

    /**
     * The input every timed run sees: the first bundled sample, preprocessed, or a mid-gray image
     * when the bundle has no samples (latency does not depend on the pixels).
     */
    fun fixedInput(context: Context, model: BundledModel, samples: List<BundledSample>): FloatArray {
        val preprocessing = model.manifest.preprocessing.toPreprocessing()
        val pixels = samples.firstOrNull()?.let { Images.assetPixels(context.assets, it.assetPath) }
            ?: preprocessing.resize.let { side -> Pixels(IntArray(side * side) { 0xFF808080.toInt() }, side, side) }
        return preprocessing.apply(pixels.argb, pixels.width, pixels.height)
    }

    /** `<external files>/bench/<artifact>.bench.json`, where `adb pull` reaches it without root. */
    private fun write(context: Context, report: BenchReport, artifactName: String): File {
        val root = context.getExternalFilesDir(null) ?: context.filesDir
        val file = File(File(root, "bench").apply { mkdirs() }, "$artifactName.bench.json")
        file.writeText(report.toJson() + "\n")
        return file
    }

    private fun machine(threads: Int): Machine {
        val soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}"
        } else {
            Build.HARDWARE
        }
        val cores = Runtime.getRuntime().availableProcessors()
        return Machine(
            description = "${Build.MANUFACTURER} ${Build.MODEL}, $soc, $cores cores",
            platform = "android ${Build.VERSION.RELEASE} api ${Build.VERSION.SDK_INT}",
            threads = threads,
        )
    }

    /** This process's resident memory in MB (VmRSS), or null where /proc is not readable. */
    private fun residentMb(): Double? = runCatching {
        File("/proc/self/status").useLines { lines ->
            lines.first { it.startsWith("VmRSS:") }.split(Regex("\\s+"))[1].toDouble() / 1024.0
        }
    }.getOrNull()
}
