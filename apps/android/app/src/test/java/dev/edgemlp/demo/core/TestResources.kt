package dev.edgemlp.demo.core

/** A file of src/test/resources as text (the manifests edge-mlp converted, see ManifestTest). */
internal fun resourceText(name: String): String =
    requireNotNull(ResourceAnchor::class.java.classLoader?.getResource(name)) { "test resource $name is missing" }.readText()

private object ResourceAnchor
