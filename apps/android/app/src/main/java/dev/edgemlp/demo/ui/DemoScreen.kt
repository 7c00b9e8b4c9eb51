package dev.edgemlp.demo.ui

import android.graphics.Bitmap
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia
import androidx.compose.foundation.Image
import androidx.compose.foundation.border
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.PaddingValues
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.LazyRow
import androidx.compose.foundation.lazy.items
import androidx.compose.foundation.selection.selectable
import androidx.compose.foundation.shape.RoundedCornerShape
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.ExperimentalMaterial3Api
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.RadioButton
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.material3.TopAppBar
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.remember
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.draw.clip
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.res.stringResource
import androidx.compose.ui.semantics.Role
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import androidx.lifecycle.viewmodel.compose.viewModel
import dev.edgemlp.demo.Benchmarker
import dev.edgemlp.demo.BundledModel
import dev.edgemlp.demo.R
import dev.edgemlp.demo.core.Prediction

@OptIn(ExperimentalMaterial3Api::class)
@Composable
fun DemoScreen(viewModel: DemoViewModel = viewModel()) {
    val state by viewModel.state.collectAsStateWithLifecycle()
    val pickPhoto = rememberLauncherForActivityResult(PickVisualMedia()) { uri -> uri?.let(viewModel::selectPhoto) }
    Scaffold(topBar = { TopAppBar(title = { Text(stringResource(R.string.app_name)) }) }) { padding ->
        LazyColumn(
            modifier = Modifier.padding(padding),
            contentPadding = PaddingValues(16.dp),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            item { SectionTitle(stringResource(R.string.section_model)) }
            when {
                state.loading -> item { Text(stringResource(R.string.loading)) }
                state.models.isEmpty() -> item { Text(stringResource(R.string.no_models)) }
                else -> items(state.models, key = { it.artifactName }) { model ->
                    ModelRow(model, selected = model == state.selected, onClick = { viewModel.selectModel(model) })
                }
            }
            if (state.problems.isNotEmpty()) {
                item { Problems(state.problems) }
            }
            item { SectionTitle(stringResource(R.string.section_image)) }
            item {
                SampleRow(
                    samples = state.samples,
                    current = state.image,
                    onSelect = viewModel::selectSample,
                    onPickPhoto = { pickPhoto.launch(PickVisualMediaRequest(mediaType = PickVisualMedia.ImageOnly)) },
                )
            }
            state.image?.let { image -> item { ImagePreview(image, state.imageName) } }
            item { ResultCard(state) }
            item { BenchmarkCard(state, onBenchmark = viewModel::benchmark) }
        }
    }
}

@Composable
private fun SectionTitle(text: String) {
    Text(text, style = MaterialTheme.typography.titleMedium)
}

@Composable
private fun ModelRow(model: BundledModel, selected: Boolean, onClick: () -> Unit) {
    val artifact = model.manifest.artifact
    Row(
        modifier = Modifier
            .fillMaxWidth()
            .selectable(selected = selected, onClick = onClick, role = Role.RadioButton)
            .padding(vertical = 4.dp),
        verticalAlignment = Alignment.CenterVertically,
    ) {
        RadioButton(selected = selected, onClick = null)
        Column(Modifier.padding(start = 12.dp)) {
            Text(model.title, style = MaterialTheme.typography.bodyLarge)
            Text(
                stringResource(
                    R.string.model_details,
                    model.artifactName,
                    (artifact.sizeBytes ?: 0L) / 1e6,
                    model.manifest.shiftLowering.used,
                ),
                style = MaterialTheme.typography.bodySmall,
                color = MaterialTheme.colorScheme.onSurfaceVariant,
            )
        }
    }
}

@Composable
private fun Problems(problems: List<String>) {
    Column {
        Text(stringResource(R.string.problems), color = MaterialTheme.colorScheme.error)
        problems.forEach { Text(it, style = MaterialTheme.typography.bodySmall) }
    }
}

@Composable
private fun SampleRow(
    samples: List<SampleThumb>,
    current: Bitmap?,
    onSelect: (SampleThumb) -> Unit,
    onPickPhoto: () -> Unit,
) {
    LazyRow(horizontalArrangement = Arrangement.spacedBy(8.dp), verticalAlignment = Alignment.CenterVertically) {
        items(samples, key = { it.sample.assetPath }) { thumb ->
            val selected = thumb.bitmap === current
            PixelImage(
                bitmap = thumb.bitmap,
                description = thumb.sample.label,
                modifier = Modifier
                    .size(64.dp)
                    .clip(RoundedCornerShape(8.dp))
                    .then(
                        if (selected) Modifier.border(3.dp, MaterialTheme.colorScheme.primary, RoundedCornerShape(8.dp))
                        else Modifier,
                    )
                    .clickable { onSelect(thumb) },
            )
        }
        item {
            OutlinedButton(onClick = onPickPhoto) { Text(stringResource(R.string.pick_photo)) }
        }
    }
}

@Composable
private fun ImagePreview(image: Bitmap, name: String?) {
    Row(verticalAlignment = Alignment.CenterVertically) {
        PixelImage(image, name, Modifier.size(160.dp).clip(RoundedCornerShape(12.dp)))
        name?.let { Text(it, Modifier.padding(start = 16.dp), style = MaterialTheme.typography.bodyLarge) }
    }
}

/** Small images (28x28 samples) scaled up with sharp pixels, as the model sees them. */
@Composable
private fun PixelImage(bitmap: Bitmap, description: String?, modifier: Modifier) {
    val image = remember(bitmap) { bitmap.asImageBitmap() }
    Image(
        bitmap = image,
        contentDescription = description,
        modifier = modifier,
        contentScale = ContentScale.Crop,
        filterQuality = FilterQuality.None,
    )
}

@Composable
private fun ResultCard(state: DemoState) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            SectionTitle(stringResource(R.string.section_result))
            val result = state.result
            when {
                state.busy -> LinearProgressIndicator(Modifier.fillMaxWidth())
                state.error != null -> Text(state.error, color = MaterialTheme.colorScheme.error)
                result != null -> {
                    result.predictions.forEach { PredictionRow(it) }
                    Text(
                        stringResource(R.string.latency, result.forwardMs, result.preprocessMs, result.backend),
                        style = MaterialTheme.typography.bodySmall,
                        color = MaterialTheme.colorScheme.onSurfaceVariant,
                    )
                }
                else -> Text(stringResource(R.string.result_empty))
            }
        }
    }
}

@Composable
private fun PredictionRow(prediction: Prediction) {
    Column {
        Row {
            Text(prediction.label, Modifier.weight(1f))
            Text(stringResource(R.string.probability, prediction.probability * 100f))
        }
        LinearProgressIndicator(
            progress = { prediction.probability },
            modifier = Modifier.fillMaxWidth().height(6.dp),
        )
    }
}

@Composable
private fun BenchmarkCard(state: DemoState, onBenchmark: () -> Unit) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            SectionTitle(stringResource(R.string.section_benchmark))
            Text(
                stringResource(R.string.benchmark_hint, Benchmarker.defaultThreads()),
                style = MaterialTheme.typography.bodySmall,
            )
            Button(onClick = onBenchmark, enabled = state.selected != null && !state.busy) {
                Text(stringResource(R.string.benchmark))
            }
            state.benchmark?.let { b ->
                Text(
                    stringResource(
                        R.string.benchmark_result,
                        b.medianMs,
                        b.p10Ms ?: Double.NaN,
                        b.p90Ms ?: Double.NaN,
                        b.runs,
                        b.threads,
                    ),
                )
                Text(b.path, style = MaterialTheme.typography.bodySmall, color = MaterialTheme.colorScheme.onSurfaceVariant)
            }
        }
    }
}
