package dev.edgemlp.demo.core

import kotlin.math.exp

/** One ranked class: its index in the logits, its label and its softmax probability. */
data class Prediction(val index: Int, val label: String, val probability: Float)

/** Probabilities from logits, in double and shifted by the max logit so large logits cannot overflow. */
fun softmax(logits: FloatArray): FloatArray {
    require(logits.isNotEmpty()) { "no logits" }
    val max = logits.max()
    val exps = DoubleArray(logits.size) { exp((logits[it] - max).toDouble()) }
    val sum = exps.sum()
    return FloatArray(logits.size) { (exps[it] / sum).toFloat() }
}

/** The [k] most probable classes, best first; equal scores keep class order, so results are stable. */
fun topK(probabilities: FloatArray, k: Int, labels: List<String> = emptyList()): List<Prediction> {
    require(k >= 0) { "k must be >= 0" }
    return probabilities.indices
        .sortedWith(compareByDescending<Int> { probabilities[it] }.thenBy { it })
        .take(k)
        .map { Prediction(it, labelFor(labels, it), probabilities[it]) }
}

/** The label of class [index], or "class N" where the labels file has none (or there is no labels file). */
fun labelFor(labels: List<String>, index: Int): String =
    labels.getOrNull(index)?.trim()?.takeIf { it.isNotEmpty() } ?: "class $index"

/** A labels file: one label per line, line i for class i; trailing blank lines are not classes. */
fun parseLabels(text: String): List<String> =
    text.lines().map { it.trimEnd('\r') }.dropLastWhile { it.isBlank() }
