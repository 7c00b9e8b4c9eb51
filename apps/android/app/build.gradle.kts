plugins {
    alias(libs.plugins.android.application)
    // No org.jetbrains.kotlin.android: AGP 9 compiles Kotlin itself (built-in Kotlin), and its Kotlin
    // jvmTarget follows compileOptions.targetCompatibility below.
    alias(libs.plugins.kotlin.compose)
    alias(libs.plugins.kotlin.serialization)
}

android {
    namespace = "dev.edgemlp.demo"
    compileSdk = 37 // Compose UI 1.12 (BOM 2026.09.00) declares minCompileSdk 37

    defaultConfig {
        applicationId = "dev.edgemlp.demo"
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        // The ABIs both runtimes ship (the ExecuTorch AAR has arm64-v8a and x86_64 only).
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        compose = true
    }

    // Artifacts stay uncompressed in the APK: the app copies them to filesDir once (ExecuTorch needs a
    // file path) and then maps them from there; deflating a 100 MB model only slows that copy down.
    androidResources {
        noCompress += listOf("pte", "tflite")
    }

    packaging {
        jniLibs {
            // Both runtimes are native; if two AARs ever ship the same C++ runtime, take one.
            pickFirsts += "**/libc++_shared.so"
        }
    }
}

dependencies {
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.material3)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.runtime.ktx)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(libs.androidx.lifecycle.viewmodel.compose)
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.kotlinx.serialization.json)
    implementation(libs.executorch.android)
    implementation(libs.litert)
    debugImplementation(libs.androidx.compose.ui.tooling)

    testImplementation(libs.junit)
}
