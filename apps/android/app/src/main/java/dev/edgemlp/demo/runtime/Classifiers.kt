package dev.edgemlp.demo.runtime

import dev.edgemlp.demo.core.Manifest
import java.io.File

/** Picks the runtime from the manifest's target, the one edge-mlp converted the artifact for. */
object Classifiers {
    /** Targets the Android app runs (edge_mlp.apps APPS["android"].targets). */
    val TARGETS = listOf("executorch", "tflite")

    /**
     * Loads [artifact] (a local file: ExecuTorch cannot read from the APK) with [threads] CPU threads.
     *
     * @throws IllegalArgumentException for a target the app has no runtime for.
     */
    fun create(manifest: Manifest, artifact: File, threads: Int): Classifier =
        when (manifest.target.name) {
            "executorch" -> ExecuTorchClassifier(manifest, artifact, threads)
            "tflite" -> LiteRtClassifier(manifest, artifact, threads)
            else -> throw IllegalArgumentException(
                "the Android app cannot run ${manifest.target.name} artifacts (${manifest.artifact.file}); it runs " +
                    "${TARGETS.joinToString(" and ")}: convert with edge-mlp convert ... --target executorch or --target tflite",
            )
        }
}
