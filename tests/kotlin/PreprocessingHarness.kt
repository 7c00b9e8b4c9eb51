// Runs the Android app's plain-Kotlin core (Preprocessing.kt, LatencyStats.kt) on the JVM for
// tests/test_app_preprocessing.py (compiled with kotlinc). Kotlin 1.3 syntax: Debian's kotlinc.
//
// No argument, or "bytes": per case on stdin, "W H resize cropH cropW interpolation", mean x3, std
// x3, scale, "qscale zeroPoint" or "none", then the RGBA bytes. Output (stdout), per case: the
// resized RGB values, the float32 outputs as raw IEEE bits, and the int8 values (or an empty line).
// "bytes" builds the pixels the way the app reads a decoded Bitmap: RGBA bytes with padded rows
// through Preprocessing.argbOfRgbaBytes, instead of packing the ARGB ints here.
//
// "spec": one manifest preprocessing per line, "resize|crop|interpolation|mean|std|scale|color|layout"
// (lists comma-separated); prints "ok" or "error: <message>" per line (Preprocessing.forManifest).
//
// "latency": one run of timed latencies per line (space-separated); prints the raw IEEE bits of the
// median and then of the 9 deciles (LatencyStats).
//
// "photo": per line "W H resize..." (a photo's size, then the resize of each model it is classified
// with in turn); prints "decodedFor:decodes:sampleSize" per model (PerResizeDecode, PhotoSampling).
import dev.edgemlp.demo.core.LatencyStats
import dev.edgemlp.demo.core.PerResizeDecode
import dev.edgemlp.demo.core.PhotoSampling
import dev.edgemlp.demo.core.Preprocessing

fun main(args: Array<String>) {
    val lines = generateSequence(::readLine).toList()
    when (args.firstOrNull()) {
        "spec" -> specs(lines)
        "latency" -> latencies(lines)
        "photo" -> photos(lines)
        else -> preprocess(lines, viaBytes = args.firstOrNull() == "bytes")
    }
}

private fun preprocess(lines: List<String>, viaBytes: Boolean) {
    var i = 1
    repeat(lines[0].trim().toInt()) {
        val head = lines[i++].split(" ")
        val (w, h, resize, cropH, cropW) = head.subList(0, 5).map { it.toInt() }
        val mean = lines[i++].split(" ").map { it.toDouble() }.toDoubleArray()
        val std = lines[i++].split(" ").map { it.toDouble() }.toDoubleArray()
        val scale = lines[i++].toDouble()
        val quant = lines[i++]
        val rgba = lines[i++].split(" ").map { it.toInt() }
        val argb = if (viaBytes) {
            val rowBytes = w * 4 + 12 // padded rows, as a Bitmap's rowBytes may be
            val bytes = ByteArray(rowBytes * h) { 0x5A }
            for (y in 0 until h) for (x in 0 until w) for (c in 0 until 4) {
                bytes[y * rowBytes + x * 4 + c] = rgba[(y * w + x) * 4 + c].toByte()
            }
            Preprocessing.argbOfRgbaBytes(bytes, w, h, rowBytes)
        } else {
            IntArray(w * h) { p ->
                (rgba[4 * p + 3] shl 24) or (rgba[4 * p] shl 16) or (rgba[4 * p + 1] shl 8) or rgba[4 * p + 2]
            }
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

private fun list(text: String): List<String> = if (text == "") emptyList() else text.split(",")

private fun specs(lines: List<String>) {
    for (line in lines.filter { it.isNotEmpty() }) {
        val f = line.split("|")
        val outcome = try {
            Preprocessing.forManifest(
                f[0].toInt(), list(f[1]).map { it.toInt() }, f[2], list(f[3]).map { it.toDouble() },
                list(f[4]).map { it.toDouble() }, f[5].toDouble(), f[6], f[7]
            )
            "ok"
        } catch (e: IllegalArgumentException) {
            "error: ${e.message}"
        }
        println(outcome)
    }
}

private fun latencies(lines: List<String>) {
    for (line in lines.filter { it.isNotEmpty() }) {
        val sorted = line.split(" ").map { it.toDouble() }.sorted()
        val values = listOf(LatencyStats.median(sorted)) + LatencyStats.deciles(sorted)
        println(values.joinToString(" ") { java.lang.Double.doubleToRawLongBits(it).toString() })
    }
}

private fun photos(lines: List<String>) {
    for (line in lines.filter { it != "" }) {
        val v = line.split(" ").map { it.toInt() }
        var decodes = 0
        val perResize = PerResizeDecode { resize -> decodes += 1; resize }
        println(v.drop(2).joinToString(" ") { resize ->
            val decodedFor = perResize.forResize(resize)
            "$decodedFor:$decodes:${PhotoSampling.sampleSize(v[0], v[1], decodedFor)}"
        })
    }
}
