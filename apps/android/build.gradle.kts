buildscript {
    repositories {
        google()
        mavenCentral()
    }
    dependencies {
        // AGP 9 compiles Kotlin itself ("built-in Kotlin") with the Kotlin Gradle plugin it depends on
        // (2.2.10), which cannot read the Kotlin 2.4 metadata of current AndroidX artifacts. Putting a newer
        // KGP on the classpath is AGP's documented way to raise it; keep it equal to the Compose and
        // serialization compiler plugins (all three use libs.versions.kotlin).
        classpath(libs.kotlin.gradle.plugin)
    }
}

plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.compose) apply false
    alias(libs.plugins.kotlin.serialization) apply false
}
