package dev.edgemlp.demo.core

import kotlinx.serialization.SerialName
import kotlinx.serialization.Serializable
import kotlinx.serialization.SerializationException
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.intOrNull

// The fields of `<artifact>.manifest.json` (edge_mlp/manifest.py) that the app reads, in one place.
// edge-mlp's contract test parses this file and checks every field against the Python schema, so
// keep the style: `@Serializable` then `data class Name(`, one property per line, `@SerialName` on
// the same line wherever the JSON key differs from the Kotlin name, `T?` where Python has `X | None`.

/** The manifest schema version this app reads (edge_mlp.manifest.SCHEMA_VERSION). */
const val MANIFEST_SCHEMA_VERSION = 1

/** JSON settings for everything the app reads and writes: unknown keys are skipped, nulls written. */
val EdgeMlpJson: Json = Json {
    ignoreUnknownKeys = true
    encodeDefaults = true
    explicitNulls = true
}

@Serializable
data class Manifest(
    val model: ModelInfo,
    val input: TensorSpec,
    val output: OutputInfo,
    val preprocessing: PreprocessingSpec,
    val precision: String,
    @SerialName("shift_lowering") val shiftLowering: ShiftLoweringInfo,
    val target: TargetInfo,
    val artifact: FileInfo,
    @SerialName("edge_mlp_version") val edgeMlpVersion: String,
    @SerialName("schema_version") val schemaVersion: Int,
)

@Serializable
data class ModelInfo(
    val name: String,
    val family: String,
    val macs: Long? = null,
)

@Serializable
data class TensorSpec(
    val name: String,
    val shape: List<Int>,
    val dtype: String,
    val layout: String,
    val quantization: QuantParams? = null,
)

/** Affine int8 mapping of an I/O tensor: real = (q - zero_point) * scale. */
@Serializable
data class QuantParams(
    val scale: Double,
    @SerialName("zero_point") val zeroPoint: Int,
)

@Serializable
data class OutputInfo(
    val tensor: TensorSpec,
    val meaning: String,
    @SerialName("num_classes") val numClasses: Int,
    @SerialName("labels_file") val labelsFile: String? = null,
)

/** The manifest's `preprocessing` dict, laid out by edge_mlp/preprocess.py `Preprocessing`. */
@Serializable
data class PreprocessingSpec(
    val resize: Int,
    val crop: List<Int>,
    val interpolation: String,
    val mean: List<Double>,
    val std: List<Double>,
    val scale: Double,
    val color: String,
    val layout: String,
)

@Serializable
data class ShiftLoweringInfo(
    val requested: String,
    val used: String,
    val reason: String,
)

@Serializable
data class TargetInfo(
    val name: String,
    val runtime: Map<String, String>,
)

@Serializable
data class FileInfo(
    val file: String?,
    val sha256: String?,
    @SerialName("size_bytes") val sizeBytes: Long? = null,
)

/**
 * Decodes a manifest, refusing any schema version but [MANIFEST_SCHEMA_VERSION] first: a newer
 * edge-mlp may have renamed or retyped fields, and a clear "re-convert" beats a confusing field error.
 *
 * @throws IllegalArgumentException for another schema version or a malformed manifest.
 */
fun parseManifest(json: String): Manifest {
    val root = try {
        EdgeMlpJson.parseToJsonElement(json) as? JsonObject
    } catch (e: SerializationException) {
        throw IllegalArgumentException("manifest is not valid JSON: ${e.message}", e)
    } ?: throw IllegalArgumentException("manifest is not a JSON object")
    val version = root["schema_version"]
    require((version as? JsonPrimitive)?.intOrNull == MANIFEST_SCHEMA_VERSION) {
        "manifest schema version ${version ?: "(missing)"} is not supported: this app reads version " +
            "$MANIFEST_SCHEMA_VERSION. Convert the artifact with an edge-mlp that writes version " +
            "$MANIFEST_SCHEMA_VERSION, or update the app."
    }
    return try {
        EdgeMlpJson.decodeFromJsonElement(Manifest.serializer(), root)
    } catch (e: SerializationException) {
        throw IllegalArgumentException("manifest is malformed: ${e.message}", e)
    }
}

/**
 * The shared preprocessing (Preprocessing.kt) this spec describes. It produces RGB NCHW floats
 * only; anything else is refused as the iOS app refuses it ([Preprocessing.forManifest]).
 */
fun PreprocessingSpec.toPreprocessing(): Preprocessing =
    Preprocessing.forManifest(resize, crop, interpolation, mean, std, scale, color, layout)
