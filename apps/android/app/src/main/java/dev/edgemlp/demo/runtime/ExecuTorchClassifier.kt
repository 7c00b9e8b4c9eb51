package dev.edgemlp.demo.runtime

import dev.edgemlp.demo.core.Backends
import dev.edgemlp.demo.core.Manifest
import dev.edgemlp.demo.core.TensorIo
import dev.edgemlp.demo.core.dequantize
import dev.edgemlp.demo.core.io
import dev.edgemlp.demo.core.quantize
import java.io.File
import org.pytorch.executorch.DType
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * A `.pte` on ExecuTorch (its XNNPACK delegate does the work for edge-mlp's artifacts). The file is
 * memory-mapped rather than read into the heap, and `forward` is loaded up front so the first
 * classification is not also the method's load.
 */
class ExecuTorchClassifier(manifest: Manifest, artifact: File, threads: Int) : Classifier {
    override val backend = Backends.EXECUTORCH
    override var lastForwardNanos = 0L
        private set

    private val shape = manifest.input.shape.map { it.toLong() }.toLongArray()
    private val numel = manifest.input.shape.fold(1) { n, d -> n * d }
    private val inputIo = manifest.input.io()
    private val outputIo = manifest.output.tensor.io()
    private val module = Module.load(artifact.absolutePath, Module.LOAD_MODE_MMAP, threads)

    init {
        try {
            module.loadMethod("forward")
        } catch (e: RuntimeException) {
            module.destroy()
            throw e
        }
    }

    override fun classify(input: FloatArray): FloatArray {
        require(input.size == numel) { "input has ${input.size} values, the model takes ${shape.joinToString("x")}" }
        val tensor = when (inputIo) {
            TensorIo.Float32 -> Tensor.fromBlob(input, shape)
            is TensorIo.Int8 -> Tensor.fromBlob(inputIo.params.quantize(input), shape)
        }
        val start = System.nanoTime()
        val outputs = module.forward(EValue.from(tensor))
        lastForwardNanos = System.nanoTime() - start
        val logits = outputs.first().toTensor()
        return when (logits.dtype()) {
            DType.FLOAT -> logits.dataAsFloatArray
            DType.INT8 -> (outputIo as? TensorIo.Int8)?.params?.dequantize(logits.dataAsByteArray)
                ?: error("the model returns int8 logits but the manifest gives no output quantization")
            else -> error("the model returns ${logits.dtype()} logits; the app reads float32 or int8")
        }
    }

    override fun close() = module.destroy()
}
