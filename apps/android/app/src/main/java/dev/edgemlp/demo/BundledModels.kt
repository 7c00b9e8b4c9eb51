package dev.edgemlp.demo

import android.content.Context
import android.content.res.AssetManager
import dev.edgemlp.demo.core.Manifest
import dev.edgemlp.demo.core.parseLabels
import dev.edgemlp.demo.core.parseManifest
import dev.edgemlp.demo.runtime.Classifiers
import java.io.File
import java.security.DigestInputStream
import java.security.MessageDigest

/** An artifact in the app's bundle with its manifest and class labels (empty: "class N" is shown). */
data class BundledModel(val manifest: Manifest, val labels: List<String>) {
    /** The artifact's file name in the bundle (and in filesDir once copied). */
    val artifactName: String = requireNotNull(manifest.artifact.file) { "the manifest names no artifact file" }
    val title: String get() = "${manifest.model.name} · ${manifest.target.name} ${manifest.precision}"
}

/** A sample image of the bundle: its asset path and the label from its file name (`<n>_<label>.png`). */
data class BundledSample(val assetPath: String, val label: String)

/** What `edge-mlp bundle` put into the APK, and what could not be used (shown to the user). */
data class BundleContents(val models: List<BundledModel>, val samples: List<BundledSample>, val problems: List<String>)

/**
 * Reads the bundle folder `assets/edge_mlp/` (written by `edge-mlp bundle ... --app android`): every
 * `*.manifest.json` is a model, `samples/` holds the sample images.
 */
object BundledModels {
    const val DIR = "edge_mlp"
    private const val MANIFEST_SUFFIX = ".manifest.json"
    private val IMAGE_SUFFIXES = listOf(".png", ".jpg", ".jpeg", ".webp")

    fun scan(assets: AssetManager): BundleContents {
        val files = assets.list(DIR).orEmpty().toSet()
        val models = mutableListOf<BundledModel>()
        val problems = mutableListOf<String>()
        for (name in files.filter { it.endsWith(MANIFEST_SUFFIX) }.sorted()) {
            runCatching { load(assets, name, files) }
                .onSuccess { models += it }
                .onFailure { problems += "$name: ${it.message}" }
        }
        val samples = assets.list("$DIR/samples").orEmpty()
            .filter { name -> IMAGE_SUFFIXES.any { name.lowercase().endsWith(it) } }
            .sortedWith(compareBy<String>({ it.substringBefore('_').toIntOrNull() ?: Int.MAX_VALUE }, { it }))
            .map { BundledSample("$DIR/samples/$it", it.substringAfter('_').substringBeforeLast('.')) }
        return BundleContents(models, samples, problems)
    }

    private fun load(assets: AssetManager, manifestName: String, files: Set<String>): BundledModel {
        val manifest = parseManifest(assets.open("$DIR/$manifestName").bufferedReader().use { it.readText() })
        require(manifest.target.name in Classifiers.TARGETS) {
            "a ${manifest.target.name} artifact; the app runs ${Classifiers.TARGETS.joinToString(" and ")}"
        }
        val model = BundledModel(manifest, labels = emptyList())
        require(model.artifactName in files) { "${model.artifactName} is missing; run edge-mlp bundle again" }
        val labels = manifest.output.labelsFile
            ?.takeIf { it in files }
            ?.let { parseLabels(assets.open("$DIR/$it").bufferedReader().use { r -> r.readText() }) }
            .orEmpty()
        return model.copy(labels = labels)
    }

    /**
     * The artifact as a file in filesDir, copied from the APK on first use (ExecuTorch loads a path,
     * and both runtimes then map the file). Copies are keyed by the manifest's sha256 and checked
     * against it, so a re-bundled artifact is copied again and a damaged copy is never loaded.
     */
    fun localFile(context: Context, model: BundledModel): File {
        val expected = model.manifest.artifact.sha256
        val dir = File(context.filesDir, "models/${expected ?: "unhashed"}").apply { mkdirs() }
        val target = File(dir, model.artifactName)
        val size = model.manifest.artifact.sizeBytes
        if (target.isFile && (size == null || target.length() == size)) return target

        val partial = File(dir, "${model.artifactName}.part")
        val digest = MessageDigest.getInstance("SHA-256")
        context.assets.open("$DIR/${model.artifactName}").use { asset ->
            DigestInputStream(asset, digest).use { input -> partial.outputStream().use { input.copyTo(it) } }
        }
        val actual = digest.digest().joinToString("") { "%02x".format(it) }
        if (expected != null && actual != expected) {
            partial.delete()
            error(
                "${model.artifactName} does not match its manifest (sha256 ${actual.take(12)}... != " +
                    "${expected.take(12)}...); run edge-mlp bundle again",
            )
        }
        check(partial.renameTo(target)) { "cannot write $target" }
        return target
    }
}
