package dev.edgemlp.demo.runtime

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import dev.edgemlp.demo.core.Backends
import dev.edgemlp.demo.core.Manifest
import dev.edgemlp.demo.core.TensorIo
import dev.edgemlp.demo.core.dequantize
import dev.edgemlp.demo.core.io
import dev.edgemlp.demo.core.quantize
import java.io.File

/**
 * A `.tflite` on LiteRT's CompiledModel API with the CPU accelerator (XNNPACK), the backend edge-mlp
 * benchmarks on the host. Input and output buffers are made once and reused for every run.
 */
class LiteRtClassifier(manifest: Manifest, artifact: File, threads: Int) : Classifier {
    override val backend = Backends.LITERT
    override var lastForwardNanos = 0L
        private set

    private val numel = manifest.input.shape.fold(1) { n, d -> n * d }
    private val inputIo = manifest.input.io()
    private val outputIo = manifest.output.tensor.io()
    private val model: CompiledModel
    private val inputs: List<TensorBuffer>
    private val outputs: List<TensorBuffer>

    init {
        val options = CompiledModel.Options(Accelerator.CPU)
        if (threads > 0) options.cpuOptions = CompiledModel.CpuOptions(numThreads = threads)
        model = CompiledModel.create(artifact.absolutePath, options)
        try {
            inputs = model.createInputBuffers()
            outputs = model.createOutputBuffers()
            check(inputs.size == 1 && outputs.size == 1) {
                "expected one input and one output, the model has ${inputs.size} and ${outputs.size}"
            }
        } catch (e: Exception) {
            model.close()
            throw e
        }
    }

    override fun classify(input: FloatArray): FloatArray {
        require(input.size == numel) { "input has ${input.size} values, the model takes $numel" }
        when (inputIo) {
            TensorIo.Float32 -> inputs[0].writeFloat(input)
            is TensorIo.Int8 -> inputs[0].writeInt8(inputIo.params.quantize(input))
        }
        val start = System.nanoTime()
        model.run(inputs, outputs)
        lastForwardNanos = System.nanoTime() - start
        return when (outputIo) {
            TensorIo.Float32 -> outputs[0].readFloat()
            is TensorIo.Int8 -> outputIo.params.dequantize(outputs[0].readInt8())
        }
    }

    override fun close() {
        (inputs + outputs).forEach { it.close() }
        model.close()
    }
}
