package dev.edgemlp.demo.core

/**
 * The latency statistics of edge-mlp's benchmark (edge_mlp/timing.py `Latency.from_samples`),
 * ported operation for operation so the app reports what Python computes from the same times:
 * the median is `statistics.median` (the mean of the two middle runs for an even count) and p10 /
 * p90 are `statistics.quantiles(n=10, method="inclusive")` (linear interpolation between the two
 * nearest runs; one run is every decile). The iOS app's `Latency(samplesMs:)` is the same port.
 *
 * Plain Kotlin with no Android or serialization imports: edge-mlp's tests compile this file and
 * compare it with Python bit for bit.
 */
object LatencyStats {
    /** `statistics.median` of ascending values. */
    fun median(sorted: List<Double>): Double {
        require(sorted.isNotEmpty()) { "no timed runs" }
        val n = sorted.size
        return if (n % 2 == 1) sorted[n / 2] else (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /** `statistics.quantiles(sorted, n=10, method="inclusive")`: the 9 deciles, p10 first. */
    fun deciles(sorted: List<Double>): List<Double> {
        require(sorted.isNotEmpty()) { "no timed runs" }
        if (sorted.size == 1) return List(9) { sorted[0] }
        val m = sorted.size - 1
        return (1 until 10).map { i ->
            // Python: j, delta = divmod(i * m, n); (data[j] * (n - delta) + data[j + 1] * delta) / n
            val j = i * m / 10
            val delta = i * m % 10
            (sorted[j] * (10 - delta) + sorted[j + 1] * delta) / 10
        }
    }
}
