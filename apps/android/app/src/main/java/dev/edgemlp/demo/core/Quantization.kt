package dev.edgemlp.demo.core

/**
 * How the app exchanges one I/O tensor with a runtime. The models always take and give floats in
 * the app; an int8-I/O artifact (TFLite int8 has one) gets its input quantized and its logits
 * dequantized with the params the manifest recorded at conversion.
 */
sealed interface TensorIo {
    data object Float32 : TensorIo

    data class Int8(val params: QuantParams) : TensorIo
}

/** The [TensorIo] of this tensor; edge-mlp's Android targets (ExecuTorch, TFLite) use float32 or int8 I/O. */
fun TensorSpec.io(): TensorIo {
    val q = quantization
    return when {
        dtype == "float32" && q == null -> TensorIo.Float32
        dtype == "int8" && q != null -> TensorIo.Int8(q)
        dtype == "int8" -> throw IllegalArgumentException("tensor '$name' is int8 but the manifest gives no quantization")
        else -> throw IllegalArgumentException(
            "tensor '$name' has dtype $dtype${if (q != null) " with quantization" else ""}; " +
                "the app runs float32 and quantized int8 tensors",
        )
    }
}

/** Float input -> int8 with these params, exactly as edge-mlp quantizes it (see [Preprocessing.quantize]). */
fun QuantParams.quantize(x: FloatArray): ByteArray = Preprocessing.quantize(x, scale, zeroPoint)

/** int8 output -> real values: (q - zero_point) * scale. */
fun QuantParams.dequantize(q: ByteArray): FloatArray = FloatArray(q.size) { ((q[it] - zeroPoint) * scale).toFloat() }
