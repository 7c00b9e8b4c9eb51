import EdgeMLPCore
import PhotosUI
import SwiftUI

/// One screen: pick a bundled model (and Core ML compute units), pick an image, read the top-5
/// and the latency; run the benchmark.
struct ContentView: View {
    @EnvironmentObject private var demo: DemoViewModel
    @State private var photoItem: PhotosPickerItem?

    var body: some View {
        NavigationStack {
            Form {
                modelSection
                if demo.selectedModel != nil {
                    imageSection
                    resultSection
                    benchmarkSection
                }
                if !demo.content.problems.isEmpty {
                    Section("Not loaded") {
                        ForEach(demo.content.problems, id: \.self) { Text($0).font(.footnote) }
                    }
                }
            }
            .navigationTitle("edge-mlp")
            .disabled(demo.isBusy)
            .overlay { if demo.isBusy { ProgressView().controlSize(.large) } }
            .onChange(of: photoItem) { _, item in
                guard let item else { return }
                Task {
                    if let data = try? await item.loadTransferable(type: Data.self) {
                        await demo.classify(photo: data)
                    }
                    photoItem = nil
                }
            }
        }
    }

    private var modelSection: some View {
        Section("Model") {
            if demo.content.models.isEmpty {
                Text("No models bundled. Convert with edge-mlp convert --target coreml (or executorch), run "
                     + "edge-mlp bundle out/demo --app ios, then build again (apps/ios/README.md).")
                    .font(.callout)
            } else {
                Picker("Model", selection: $demo.selectedModelID) {
                    ForEach(demo.content.models) { model in
                        Text(model.title).tag(Optional(model.id))
                    }
                }
                if demo.usesCoreML {
                    Picker("Compute units", selection: $demo.computeUnits) {
                        ForEach(ComputeUnits.allCases) { units in
                            Text(units.title).tag(units)
                        }
                    }
                }
                if let manifest = demo.selectedModel?.manifest {
                    LabeledContent("Input", value: "\(manifest.input.shape.map(String.init).joined(separator: "×")) "
                                   + manifest.input.dtype)
                    LabeledContent("Runtime", value: manifest.target.runtime.sorted { $0.key < $1.key }
                        .map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                }
            }
        }
    }

    private var imageSection: some View {
        Section("Image") {
            if !demo.content.samples.isEmpty {
                ScrollView(.horizontal, showsIndicators: false) {
                    HStack(spacing: 12) {
                        ForEach(demo.content.samples) { sample in
                            Button {
                                Task { await demo.classify(sample: sample) }
                            } label: {
                                SampleThumbnail(sample: sample)
                            }
                            .buttonStyle(.plain)
                        }
                    }
                    .padding(.vertical, 4)
                }
            }
            PhotosPicker(selection: $photoItem, matching: .images) {
                Label("Choose a photo", systemImage: "photo.on.rectangle")
            }
        }
    }

    @ViewBuilder
    private var resultSection: some View {
        if let message = demo.message {
            Section("Error") { Text(message).foregroundStyle(.red) }
        }
        if !demo.predictions.isEmpty {
            Section(demo.imageName.map { "Top 5 · \($0)" } ?? "Top 5") {
                if let preview = demo.preview {
                    Image(uiImage: preview)
                        .resizable()
                        .interpolation(.none)
                        .scaledToFit()
                        .frame(maxHeight: 160)
                        .frame(maxWidth: .infinity)
                }
                ForEach(demo.predictions, id: \.index) { prediction in
                    VStack(alignment: .leading, spacing: 4) {
                        HStack {
                            Text(prediction.label)
                            Spacer()
                            Text(Double(prediction.probability), format: .percent.precision(.fractionLength(1)))
                                .monospacedDigit()
                        }
                        ProgressView(value: Double(prediction.probability))
                    }
                }
                if let timing = demo.timing {
                    LabeledContent("Forward", value: String(format: "%.2f ms", timing.forwardMs))
                    LabeledContent("Preprocessing", value: String(format: "%.2f ms", timing.preprocessMs))
                }
            }
        }
    }

    private var benchmarkSection: some View {
        Section {
            Button("Run benchmark") { Task { await demo.runBenchmark() } }
            if let summary = demo.benchmarkSummary {
                Text(summary).font(.footnote.monospaced())
            }
        } header: {
            Text("Benchmark")
        } footer: {
            Text("Warm-up then timed forwards on the current image, written as edge-mlp bench JSON to the "
                 + "app's Documents folder.")
        }
    }
}

/// A bundled sample: its picture (pixelated, samples are tiny) and its true class.
private struct SampleThumbnail: View {
    let sample: BundledSample

    var body: some View {
        VStack(spacing: 4) {
            if let image = UIImage(contentsOfFile: sample.url.path) {
                Image(uiImage: image)
                    .resizable()
                    .interpolation(.none)
                    .scaledToFit()
                    .frame(width: 64, height: 64)
                    .clipShape(RoundedRectangle(cornerRadius: 6))
            }
            Text(sample.name)
                .font(.caption2)
                .lineLimit(1)
                .frame(width: 72)
        }
    }
}
