"""Accuracy parity of a converted artifact against desktop PyTorch fp32 on labelled images.

Both sides see the same images through the manifest's preprocessing; the artifact runs on its real
host runtime (ExecuTorch pybindings, LiteRT Interpreter, ONNX Runtime; Core ML on macOS only) and
the reference is rebuilt from the manifest's model config and weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .converters import get_converter
from .data import LabelledImages, load_dataset, preprocess_all
from .demo import weights_file
from .errors import EdgeMlpError, indefinite
from .fileio import sha256_file, write_text_atomic
from .manifest import Manifest, open_artifact
from .options import Precision
from .models import RANDOM_INIT_SEED, build, config_from_record
from .models._registry import format_image_size
from .preprocess import Preprocessing
from .weights import load_weights


@dataclass
class OutputParity:
    """One output of the artifact at one input size against PyTorch's."""

    size: str  # "224" or "288x384"
    output: str  # the artifact's tensor name
    stride: int | None  # a backbone's feature stride; None for logits
    max_abs_diff: float
    mean_abs_diff: float
    value_range: float  # max - min of PyTorch's values
    cosine_mean: float  # per image, flattened
    cosine_min: float

    @property
    def max_abs_diff_rel(self) -> float:
        return self.max_abs_diff / self.value_range if self.value_range else float("inf")

    def to_dict(self) -> dict:
        return {**asdict(self), "max_abs_diff_rel": self.max_abs_diff_rel}


@dataclass
class ParityReport:
    """Classifiers: accuracy and logit agreement at the first input size. Backbones have no
    accuracy: their top-1 fields are None and `outputs` holds every feature map's figures. Both
    list every output at every input size the artifact takes in `outputs`."""

    artifact: str
    model: str
    target: str
    precision: str
    runtime: str  # what actually ran the artifact here
    data: str
    images: int
    top1_reference: float | None  # % PyTorch fp32
    top1_artifact: float | None  # % artifact on its runtime
    drop_pts: float | None  # reference - artifact, in accuracy points
    agreement: float | None  # % images with the same top-1 class
    max_abs_diff: float  # backbones: the worst output's (relative to its range)
    mean_abs_diff: float
    logit_range: float
    cosine_mean: float
    cosine_min: float
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def max_abs_diff_rel(self) -> float:
        return self.max_abs_diff / self.logit_range if self.logit_range else float("inf")

    def to_dict(self) -> dict:
        data = {**asdict(self), "max_abs_diff_rel": self.max_abs_diff_rel}
        data["outputs"] = [o.to_dict() for o in self.outputs]
        return data


def reference_model(manifest: Manifest) -> nn.Module:
    """The PyTorch fp32 model the artifact was converted from."""
    config = config_from_record(manifest.model.name, manifest.model.config)
    model = build(config, seed=RANDOM_INIT_SEED).eval()
    source = manifest.weights.file
    if source is None:
        return model
    path = weights_file(source)
    if not path.is_file():
        raise EdgeMlpError(f"the weights the artifact was converted from are missing: {source}")
    if sha256_file(path) != manifest.weights.sha256:
        raise EdgeMlpError(f"weights {source} changed since the conversion (sha256 differs)")
    return load_weights(model, path)


def manifest_preprocessing(manifest: Manifest) -> Preprocessing:
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest.preprocessing.items()}
    return Preprocessing(**fields)


def evaluation_set(manifest: Manifest, data: str, limit: int | None,
                   size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Preprocessed images (at `size`, default the artifact's first), labels and their source. A
    backbone takes any labelled or unlabelled set's images; a classifier needs its classes."""
    dataset: LabelledImages = load_dataset(data)
    if not manifest.is_backbone and len(dataset.classes) != manifest.output.num_classes:
        raise EdgeMlpError(
            f"{dataset.source} has {len(dataset.classes)} classes but {manifest.model.name} predicts "
            f"{manifest.output.num_classes}"
        )
    if limit is not None:
        if limit < 1:
            raise EdgeMlpError(f"--limit must be at least 1, got {limit}")
        dataset = dataset.subset(np.arange(min(limit, len(dataset))))
    preprocess = manifest_preprocessing(manifest)
    if size is not None:
        preprocess = preprocess.at_size(*size)
    return preprocess_all(dataset.images, preprocess), dataset.labels, dataset.source


def compare(artifact_logits: np.ndarray, reference_logits: np.ndarray, labels: np.ndarray) -> dict:
    a, r = artifact_logits.astype(np.float64), reference_logits.astype(np.float64)
    top1_ref = 100.0 * float((r.argmax(1) == labels).mean())
    top1_art = 100.0 * float((a.argmax(1) == labels).mean())
    diff = np.abs(a - r)
    cos = _cosines(a, r)
    return dict(
        top1_reference=round(top1_ref, 3), top1_artifact=round(top1_art, 3),
        drop_pts=round(top1_ref - top1_art, 3), agreement=round(100.0 * float((a.argmax(1) == r.argmax(1)).mean()), 3),
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), logit_range=float(r.max() - r.min()),
        cosine_mean=float(cos.mean()), cosine_min=float(cos.min()),
    )


def _cosines(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Cosine similarity per image, each output flattened."""
    a, r = a.reshape(len(a), -1).astype(np.float64), r.reshape(len(r), -1).astype(np.float64)
    return (a * r).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(r, axis=1), 1e-12)


def compare_output(artifact: np.ndarray, reference: np.ndarray, size: tuple[int, int], name: str,
                   stride: int | None) -> OutputParity:
    a, r = artifact.astype(np.float64), reference.astype(np.float64)
    if a.shape != r.shape:
        raise EdgeMlpError(f"output {name} has shape {list(a.shape[1:])} on the runtime but PyTorch gives "
                           f"{list(r.shape[1:])}: the artifact does not match its manifest's model; re-convert it")
    cos = _cosines(a, r)
    diff = np.abs(a - r)
    return OutputParity(format_image_size(size), name, stride, float(diff.max()), float(diff.mean()),
                        float(r.max() - r.min()), float(cos.mean()), float(cos.min()))


def reference_outputs(model: nn.Module, x: np.ndarray) -> list[np.ndarray]:
    """PyTorch's outputs (logits, or every feature map) for a batch, 64 images at a time."""
    columns: list[list[np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            out = model(torch.from_numpy(x[i : i + 64]))
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            columns.append([o.numpy() for o in outs])
    return [np.concatenate(c) for c in zip(*columns)]


def run_parity(artifact_or_manifest: str | Path, data: str = "fashion-mnist", limit: int | None = None,
               mil_precision: str | None = None) -> ParityReport:
    """`mil_precision` (Core ML only): run the MIL interpreter in 'fp16' or 'fp32' mode, on macOS too.
    A multi-size artifact runs at every size it lists; each size sees the images preprocessed for it."""
    artifact, manifest = open_artifact(artifact_or_manifest)
    converter = get_converter(manifest.target.name)
    options = {} if mil_precision is None else {"mil_precision": mil_precision}
    converter.check_options(options)
    host = converter.open_model(artifact, **options)  # a file its runtime refuses fails here, first
    model = reference_model(manifest)
    names = [f.tensor.name for f in manifest.features] or [manifest.output.tensor.name]
    strides: list[int | None] = [f.stride for f in manifest.features] or [None]
    rows: list[OutputParity] = []
    first: dict | None = None
    for size in manifest.sizes():
        x, labels, source = evaluation_set(manifest, data, limit, size)
        reference = reference_outputs(model, x)
        outputs = host.batch_outputs(x)
        if len(outputs) != len(reference):
            raise EdgeMlpError(f"{artifact.name} gives {len(outputs)} outputs but its model gives {len(reference)}: "
                               "re-convert it")
        rows += [compare_output(o, r, size, n, s) for o, r, n, s in zip(outputs, reference, names, strides)]
        if first is None:
            first = (backbone_summary(rows) if manifest.is_backbone else compare(outputs[0], reference[0], labels))
            images = len(x)
    assert first is not None
    return ParityReport(
        artifact=str(artifact), model=manifest.model.name, target=manifest.target.name,
        precision=manifest.precision, runtime=converter.host_runtime(**options), data=source, images=images,
        **first, outputs=rows,
    )


def backbone_summary(rows: list[OutputParity]) -> dict:
    """A backbone's headline figures: its worst output (by relative max |diff|) and worst cosine."""
    worst = max(rows, key=lambda r: r.max_abs_diff_rel)
    return dict(top1_reference=None, top1_artifact=None, drop_pts=None, agreement=None,
                max_abs_diff=worst.max_abs_diff, mean_abs_diff=worst.mean_abs_diff, logit_range=worst.value_range,
                cosine_mean=min(r.cosine_mean for r in rows), cosine_min=min(r.cosine_min for r in rows))


def check_extras(artifact_or_manifest: str | Path, per_layer: bool = False, trace: bool = False) -> None:
    """What `--per-layer` and `--trace` need of the artifact, checked before the parity run."""
    artifact, manifest = open_artifact(artifact_or_manifest)
    if per_layer:
        _require_int8(artifact, manifest)
    if trace:
        _require_coreml(artifact, manifest)


def _require_int8(artifact: Path, manifest: Manifest) -> None:
    if manifest.precision != Precision.INT8 or manifest.quantization is None:
        raise EdgeMlpError(f"--per-layer analyses int8 artifacts; {artifact.name} is {manifest.precision}")


def _require_coreml(artifact: Path, manifest: Manifest) -> None:
    if manifest.target.name != "coreml":
        raise EdgeMlpError(f"--trace runs Core ML programs op by op; {artifact.name} is "
                           f"{indefinite(manifest.target.name)} artifact")


def write_json(reports: list[ParityReport], path: str | Path) -> None:
    write_text_atomic(path, json.dumps([r.to_dict() for r in reports], indent=2) + "\n")


def per_layer_report(artifact_or_manifest: str | Path, data: str = "fashion-mnist", images: int = 32):
    """Per-block SQNR of an int8 artifact's PT2E simulation vs fp32, worst first, and a note on
    which quantizer simulated it."""
    from .calibration import load_calibration
    from .sensitivity import target_block_sqnr

    artifact, manifest = open_artifact(artifact_or_manifest)
    _require_int8(artifact, manifest)
    calib_info = manifest.quantization.calibration or {"source": "demo", "size": 32}
    preprocess = manifest_preprocessing(manifest)
    calibration = [torch.from_numpy(b) for b in
                   load_calibration(calib_info["source"], preprocess, int(calib_info["size"])).batches]
    x, _, _ = evaluation_set(manifest, data, images)
    return target_block_sqnr(get_converter(manifest.target.name), reference_model(manifest),
                             calibration, [torch.from_numpy(x[i : i + 1]) for i in range(len(x))])


def trace_coreml(artifact_or_manifest: str | Path, out: str | Path, data: str = "fashion-mnist",
                 mil_precision: str | None = None):
    """Run the first image through a Core ML artifact's MIL program op by op, write every op's
    output to `out` (.npz) and match them to the PyTorch reference's nodes.

    Returns (rows, note). int8 programs come from the quantized graph, whose node names do not
    line up with the float reference, so only their trace file is written (use --per-layer).
    """
    from .mil import MilInterpreter
    from .mil.trace import match_trace, torch_node_outputs, write_trace

    artifact, manifest = open_artifact(artifact_or_manifest)
    _require_coreml(artifact, manifest)
    x, _, _ = evaluation_set(manifest, data, 1)
    interpreter = MilInterpreter(artifact, precision=mil_precision or "fp16", model_name=manifest.model.name)
    (name_in,) = interpreter.inputs
    traced = interpreter.trace({name_in: x})
    write_trace(out, traced)
    if manifest.precision == Precision.INT8:
        return [], "int8: op names follow the quantized graph, so no PyTorch float matching; see --per-layer"
    rows = match_trace(traced, torch_node_outputs(reference_model(manifest), torch.from_numpy(x)))
    matched = sum(r.torch_node is not None for r in rows)
    return rows, f"{matched}/{len(rows)} MIL ops matched to PyTorch nodes by name and kind"
