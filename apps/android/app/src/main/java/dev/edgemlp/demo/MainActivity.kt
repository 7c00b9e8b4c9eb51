package dev.edgemlp.demo

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import dev.edgemlp.demo.ui.DemoScreen
import dev.edgemlp.demo.ui.EdgeMlpTheme

/** The demo: pick a bundled model and an image, see the top 5 and the latency. */
class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        enableEdgeToEdge()
        setContent { EdgeMlpTheme { DemoScreen() } }
    }
}
