package dev.edgemlp.demo.ui

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.edgemlp.demo.Benchmarker
import dev.edgemlp.demo.BundledModel
import dev.edgemlp.demo.BundledModels
import dev.edgemlp.demo.BundledSample
import dev.edgemlp.demo.Images
import dev.edgemlp.demo.Pixels
import dev.edgemlp.demo.core.PerResizeDecode
import dev.edgemlp.demo.core.Prediction
import dev.edgemlp.demo.core.softmax
import dev.edgemlp.demo.core.toPreprocessing
import dev.edgemlp.demo.core.topK
import dev.edgemlp.demo.runtime.Classifier
import dev.edgemlp.demo.runtime.Classifiers
import java.util.concurrent.Executors
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** A sample image as the screen shows it. */
data class SampleThumb(val sample: BundledSample, val bitmap: Bitmap)

/** The top classes of one image and what it cost. */
data class Classification(
    val predictions: List<Prediction>,
    val forwardMs: Double,
    val preprocessMs: Double,
    val backend: String,
)

/** The last in-app benchmark: its statistics and where its JSON went. */
data class BenchSummary(val medianMs: Double, val p10Ms: Double?, val p90Ms: Double?, val runs: Int, val threads: Int, val path: String)

data class DemoState(
    val loading: Boolean = true,
    val models: List<BundledModel> = emptyList(),
    val problems: List<String> = emptyList(),
    val selected: BundledModel? = null,
    val samples: List<SampleThumb> = emptyList(),
    val image: Bitmap? = null,
    val imageName: String? = null,
    val result: Classification? = null,
    val busy: Boolean = false,
    val benchmark: BenchSummary? = null,
    val error: String? = null,
)

/**
 * The image being classified, kept as its source rather than as decoded pixels: a photo is decoded
 * for the model it is classified with (see [Images.photoPixels]). Decoded on the runtime thread, and
 * touched there only.
 */
private sealed class ImageSource {
    abstract fun pixelsFor(app: Application, model: BundledModel): Pixels

    /** A bundled sample: decoded once, at full size, whatever the model. */
    class Sample(private val assetPath: String) : ImageSource() {
        private var pixels: Pixels? = null

        override fun pixelsFor(app: Application, model: BundledModel): Pixels =
            pixels ?: Images.assetPixels(app.assets, assetPath).also { pixels = it }
    }

    /** A picked photo: decoded again for each model input size (see [PerResizeDecode]). */
    class Photo(private val uri: Uri) : ImageSource() {
        private var decoded: PerResizeDecode<Pixels>? = null

        override fun pixelsFor(app: Application, model: BundledModel): Pixels {
            val perResize = decoded ?: PerResizeDecode { resize -> Images.photoPixels(app, uri, resize) }
            decoded = perResize
            return perResize.forResize(model.manifest.preprocessing.resize)
        }
    }
}

/**
 * Holds the bundle, the chosen model and image, and runs inference. All runtime work happens on
 * one dedicated thread: the runtimes' modules are not thread-safe, and closing one while it runs
 * must not happen, so loading, classifying, benchmarking and closing are queued there in order.
 */
class DemoViewModel(application: Application) : AndroidViewModel(application) {
    private val _state = MutableStateFlow(DemoState())
    val state: StateFlow<DemoState> = _state.asStateFlow()

    private val runtimeThread = Executors.newSingleThreadExecutor { Thread(it, "edge-mlp-runtime") }
    private val runtime = runtimeThread.asCoroutineDispatcher()
    private var classifier: Classifier? = null // touched on the runtime thread only
    private var classifierModel: BundledModel? = null
    private var source: ImageSource? = null // set on the main thread; decoded on the runtime thread
    private val threads = Benchmarker.defaultThreads()

    init {
        viewModelScope.launch {
            val app = getApplication<Application>()
            val (contents, thumbs) = withContext(Dispatchers.IO) {
                val contents = BundledModels.scan(app.assets)
                val thumbs = contents.samples.mapNotNull { s ->
                    runCatching { SampleThumb(s, Images.asset(app.assets, s.assetPath)) }.getOrNull()
                }
                contents to thumbs
            }
            _state.update {
                it.copy(loading = false, models = contents.models, problems = contents.problems, samples = thumbs)
            }
            contents.models.firstOrNull()?.let { selectModel(it) }
            thumbs.firstOrNull()?.let { selectSample(it) }
        }
    }

    fun selectModel(model: BundledModel) {
        _state.update { it.copy(selected = model, result = null, benchmark = null, error = null) }
        classify()
    }

    fun selectSample(thumb: SampleThumb) {
        source = ImageSource.Sample(thumb.sample.assetPath)
        _state.update { it.copy(image = thumb.bitmap, imageName = thumb.sample.label, result = null, error = null) }
        classify()
    }

    fun selectPhoto(uri: Uri) {
        val model = _state.value.selected
        viewModelScope.launch {
            // The preview; the model's pixels are decoded in classify(), for each model anew.
            val resize = model?.manifest?.preprocessing?.resize ?: 224
            runCatching { withContext(Dispatchers.IO) { Images.photo(getApplication(), uri, resize) } }
                .onSuccess { bitmap ->
                    source = ImageSource.Photo(uri)
                    _state.update { it.copy(image = bitmap, imageName = "picked photo", result = null, error = null) }
                    classify()
                }
                .onFailure { e -> _state.update { it.copy(error = "cannot open the image: ${e.message}") } }
        }
    }

    /** Preprocesses the current image for the current model, runs it, and shows the top 5. */
    private fun classify() {
        val model = _state.value.selected ?: return
        val image = source ?: return
        _state.update { it.copy(busy = true) }
        viewModelScope.launch {
            val outcome = runCatching {
                withContext(runtime) {
                    val c = classifierFor(model)
                    val pixels = image.pixelsFor(getApplication(), model)
                    val t0 = System.nanoTime()
                    val input = model.manifest.preprocessing.toPreprocessing().apply(pixels.argb, pixels.width, pixels.height)
                    val preprocessNanos = System.nanoTime() - t0
                    val probabilities = softmax(c.classify(input))
                    Classification(topK(probabilities, 5, model.labels), c.lastForwardNanos / 1e6, preprocessNanos / 1e6, c.backend)
                }
            }
            if (_state.value.selected != model) return@launch // the user moved on meanwhile
            _state.update { s ->
                outcome.fold(
                    { s.copy(busy = false, result = it, error = null) },
                    { s.copy(busy = false, result = null, error = "${model.title}: ${it.message}") },
                )
            }
        }
    }

    /** Benchmarks the selected model (10 warm-up, 50 timed runs) and writes its bench JSON. */
    fun benchmark() {
        val model = _state.value.selected ?: return
        _state.update { it.copy(busy = true, benchmark = null, error = null) }
        viewModelScope.launch {
            val outcome = runCatching {
                withContext(runtime) {
                    val app = getApplication<Application>()
                    val input = Benchmarker.fixedInput(app, model, _state.value.samples.map { it.sample })
                    Benchmarker.run(app, model, input, Benchmarker.Settings(threads = threads))
                }
            }
            _state.update { s ->
                outcome.fold(
                    { o ->
                        val lat = o.report.results.single().latency
                        s.copy(
                            busy = false,
                            benchmark = BenchSummary(lat.medianMs, lat.p10Ms, lat.p90Ms, lat.runs, o.report.machine.threads, o.file.path),
                        )
                    },
                    { s.copy(busy = false, error = "benchmark failed: ${it.message}") },
                )
            }
        }
    }

    /** The loaded classifier for [model], loading it (and closing the previous one) if needed. */
    private fun classifierFor(model: BundledModel): Classifier {
        classifier?.takeIf { classifierModel == model }?.let { return it }
        classifier?.close()
        classifier = null
        val loaded = Classifiers.create(model.manifest, BundledModels.localFile(getApplication(), model), threads)
        classifier = loaded
        classifierModel = model
        return loaded
    }

    override fun onCleared() {
        // Queued behind any run still in progress; then the thread ends.
        runtimeThread.execute { classifier?.close() }
        runtimeThread.shutdown()
    }
}
