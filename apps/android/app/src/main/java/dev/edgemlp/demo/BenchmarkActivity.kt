package dev.edgemlp.demo

import android.os.Bundle
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.ui.Modifier
import androidx.compose.ui.res.stringResource
import androidx.compose.ui.unit.dp
import androidx.lifecycle.lifecycleScope
import dev.edgemlp.demo.ui.EdgeMlpTheme
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Headless benchmark for scripted runs from a computer:
 *
 *     adb shell am start -W -n dev.edgemlp.demo/.BenchmarkActivity \
 *         --es model as_mlp_mobile-executorch-int8.pte --ei warmup 10 --ei runs 50 --ei threads 4
 *
 * Benchmarks the bundled artifact `model` (its file name; optional when one model is bundled),
 * writes `<external files>/bench/<artifact>.bench.json`, logs its path under the tag [TAG] and
 * finishes. Failures are logged the same way, with the reason.
 */
class BenchmarkActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val requested = intent.getStringExtra(EXTRA_MODEL)
        val defaults = Benchmarker.Settings()
        val settings = Benchmarker.Settings(
            warmup = intent.getIntExtra(EXTRA_WARMUP, defaults.warmup),
            runs = intent.getIntExtra(EXTRA_RUNS, defaults.runs),
            threads = intent.getIntExtra(EXTRA_THREADS, defaults.threads),
        )
        setContent {
            EdgeMlpTheme {
                Surface(Modifier.fillMaxSize()) {
                    Text(stringResource(R.string.benchmark_running, requested ?: ""), Modifier.padding(24.dp))
                }
            }
        }
        lifecycleScope.launch {
            val outcome = withContext(Dispatchers.Default) {
                runCatching {
                    val contents = BundledModels.scan(assets)
                    val model = pick(contents, requested)
                    Log.i(TAG, "benchmarking ${model.artifactName}: $settings")
                    Benchmarker.run(this@BenchmarkActivity, model, Benchmarker.fixedInput(this@BenchmarkActivity, model, contents.samples), settings)
                }
            }
            outcome
                .onSuccess {
                    val lat = it.report.results.single().latency
                    Log.i(TAG, "median ${"%.3f".format(lat.medianMs)} ms over ${lat.runs} runs")
                    Log.i(TAG, "wrote ${it.file.absolutePath}")
                    setResult(RESULT_OK)
                }
                .onFailure { Log.e(TAG, "benchmark failed: ${it.message}", it) }
            finish()
        }
    }

    private fun pick(contents: BundleContents, requested: String?): BundledModel {
        val names = contents.models.joinToString { it.artifactName }.ifEmpty { "none (run edge-mlp bundle)" }
        if (requested == null) {
            return contents.models.singleOrNull()
                ?: throw IllegalArgumentException("pass --es $EXTRA_MODEL <artifact>; bundled: $names")
        }
        return contents.models.firstOrNull { it.artifactName == requested }
            ?: throw IllegalArgumentException(
                "$requested is not bundled (bundled: $names)" +
                    contents.problems.joinToString("") { "; not loaded: $it" },
            )
    }

    companion object {
        const val TAG = "EdgeMlpBench"
        const val EXTRA_MODEL = "model"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_RUNS = "runs"
        const val EXTRA_THREADS = "threads"
    }
}
