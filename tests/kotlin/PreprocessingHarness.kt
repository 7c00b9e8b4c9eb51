// Runs the Android app's Preprocessing.kt on the JVM for tests/test_apps.py (compiled with kotlinc).
// Input (stdin), per case: "W H resize cropH cropW interpolation", mean x3, std x3, scale,
// "qscale zeroPoint" or "none", then the RGBA bytes. Output (stdout), per case: the resized RGB
// values, the float32 outputs as raw IEEE bits, and the int8 values (or an empty line).
import dev.edgemlp.demo.core.Preprocessing

fun main(args: Array<String>) {
    val lines = generateSequence(::readLine).toList()
    var i = 1
    repeat(lines[0].trim().toInt()) {
        val head = lines[i++].split(" ")
        val (w, h, resize, cropH, cropW) = head.subList(0, 5).map { it.toInt() }
        val mean = lines[i++].split(" ").map { it.toDouble() }.toDoubleArray()
        val std = lines[i++].split(" ").map { it.toDouble() }.toDoubleArray()
        val scale = lines[i++].toDouble()
        val quant = lines[i++]
        val rgba = lines[i++].split(" ").map { it.toInt() }
        val argb = IntArray(w * h) { p ->
            (rgba[4 * p + 3] shl 24) or (rgba[4 * p] shl 16) or (rgba[4 * p + 1] shl 8) or rgba[4 * p + 2]
        }
        val pre = Preprocessing(resize, cropH, cropW, head[5], mean, std, scale)
        println(pre.resizeAndCrop(argb, w, h).joinToString(" "))
        val x = pre.apply(argb, w, h)
        println(x.joinToString(" ") { java.lang.Float.floatToRawIntBits(it).toString() })
        if (quant == "none") println("") else {
            val (qs, zp) = quant.split(" ")
            println(Preprocessing.quantize(x, qs.toDouble(), zp.toInt()).joinToString(" "))
        }
    }
}
