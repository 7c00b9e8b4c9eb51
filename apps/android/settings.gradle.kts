pluginManagement {
    repositories {
        google {
            content {
                includeGroupByRegex("com\\.android.*")
                includeGroupByRegex("com\\.google.*")
                includeGroupByRegex("androidx.*")
            }
        }
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // AndroidX, LiteRT (com.google.ai.edge.litert)
        mavenCentral() // ExecuTorch (org.pytorch), fbjni, kotlinx
    }
}

rootProject.name = "EdgeMlpDemo"
include(":app")
