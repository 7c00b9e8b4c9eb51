package dev.edgemlp.demo.runtime

/**
 * One loaded artifact behind a runtime. Takes the preprocessed float input (NCHW, the manifest's
 * input shape) and returns float logits, quantizing and dequantizing where the artifact has int8
 * I/O, so callers never see the runtime's tensor types.
 *
 * Not thread-safe: call it from one thread at a time, and [close] it on that thread when done.
 */
interface Classifier : AutoCloseable {
    /** The backend name edge-mlp's bench schema uses (see [dev.edgemlp.demo.core.Backends]). */
    val backend: String

    /**
     * Nanoseconds the runtime's forward call of the last [classify] took, alone: input copies and
     * (de)quantization are outside it, so app latencies compare with edge-mlp's host benchmark.
     */
    val lastForwardNanos: Long

    fun classify(input: FloatArray): FloatArray

    override fun close()
}
