"""The conversion pipeline behind `edge-mlp convert`: model + weights + calibration -> artifacts.

Everything is validated before any heavy work starts; each artifact is staged in a temp folder and
renamed into place with its manifest last, so an artifact without a manifest never appears and an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
import torch.nn as nn

from . import __version__
from .calibration import CalibrationSet, load_calibration
from .errors import EdgeMlpError
from .fileio import path_size, publish, sha256_file, sha256_path, staging_dir
from .interrupts import checkpoint
from .manifest import FileInfo, Manifest, ModelInfo, OutputInfo, ShiftLoweringInfo, TargetInfo, manifest_path
from .demo import demo_config, demo_labels, demo_weights
from .ops.shift import ABLATION_LOWERING
from .models import RANDOM_INIT_SEED, ModelConfig, build, get_spec, resolve_config
from .preprocess import Preprocessing
from .stats import config_stats
from .weights import check_fit, read_state_dict

SHIFT_LOWERINGS = ("auto", "slice", "roll")
DEMO_WEIGHTS = "demo"  # --weights demo: the shipped Fashion-MNIST checkpoint of the model
CALIB_BUILTINS = ("demo", "synthetic")
LABELS_SUFFIX = ".labels.txt"


class Progress(Protocol):
    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None: ...


@dataclass
class ConvertJob:
    model: str
    target: str  # a registered target or "all"
    precision: str | None = None  # None: each target's default
    weights: str | None = None
    img_size: int | None = None
    num_classes: int | None = None
    calib: str = "demo"
    calib_size: int = 32
    shift_lowering: str = "auto"
    out_dir: str = "out"
    overrides: dict[str, Any] = field(default_factory=dict)  # further create_model overrides
    max_drop: float | None = None  # int8: keep the most sensitive blocks in float until the drop fits
    # Benchmark-only: allows shift_lowering="identity" (the shift removed, outputs change) so
    # `edge-mlp bench --shift-ablation` can measure what the shift costs.
    for_benchmark: bool = False


@dataclass
class ConvertResult:
    artifact: Path
    manifest_path: Path
    manifest: Manifest


@dataclass
class _Plan:
    steps: list[tuple[Any, str]]  # (converter, precision)
    config: ModelConfig  # before the per-target shift lowering
    has_shift: bool


def plan(job: ConvertJob) -> _Plan:
    """Validate the whole job up front: names, combinations, files, output folder."""
    import converters

    if job.target == "all":
        targets = [converters.get_converter(t) for t in converters.list_targets()]
    else:
        targets = [converters.get_converter(job.target)]
    if job.precision is not None and job.precision not in converters.PRECISIONS:
        raise EdgeMlpError(f"unknown precision {job.precision!r}; choose one of {', '.join(converters.PRECISIONS)}")
    steps = []
    for conv in targets:
        precision = job.precision or conv.default_precision
        conv.check_precision(precision)
        steps.append((conv, precision))
    if job.shift_lowering not in SHIFT_LOWERINGS and not (job.for_benchmark and job.shift_lowering == ABLATION_LOWERING):
        raise EdgeMlpError(f"unknown shift lowering {job.shift_lowering!r}; choose one of {', '.join(SHIFT_LOWERINGS)}")
    spec = get_spec(job.model)
    has_shift = "shift_lowering" in spec.overrides
    overrides = dict(job.overrides)
    if job.img_size is not None:
        overrides["img_size"] = job.img_size
    if job.num_classes is not None:
        overrides["num_classes"] = job.num_classes
    if job.weights == DEMO_WEIGHTS:
        if overrides:
            raise EdgeMlpError(
                f"--weights demo fixes the model config ({job.model} for 32x32 Fashion-MNIST); "
                "drop --img-size / --num-classes"
            )
        config = demo_config(job.model)
        demo_weights(job.model)
    else:
        config = resolve_config(job.model, **overrides)  # unknown overrides fail here, before any work
        if job.weights is not None and not Path(job.weights).is_file():
            raise EdgeMlpError(f"weights file not found: {job.weights}")
    needs_calib = any(p == "int8" for _, p in steps)
    if job.max_drop is not None:
        if not needs_calib:
            raise EdgeMlpError("--max-drop applies to int8 conversions; add --precision int8")
        if job.calib == "synthetic":
            raise EdgeMlpError("--max-drop measures accuracy: use labelled calibration data ('demo' or class subfolders)")
    if needs_calib and job.calib not in CALIB_BUILTINS and not Path(job.calib).is_dir():
        raise EdgeMlpError(f"calibration folder not found: {job.calib} (pass an image folder, 'demo' or 'synthetic')")
    return _Plan(steps, config, has_shift)


def convert(job: ConvertJob, progress: Progress | None = None) -> list[ConvertResult]:
    the_plan = plan(job)
    if job.weights == DEMO_WEIGHTS:
        weights_path: Path | None = demo_weights(job.model)
        labels: list[str] | None = list(demo_labels())
    else:
        weights_path = Path(job.weights) if job.weights else None
        labels = _labels_beside(weights_path)
    state = read_state_dict(weights_path) if weights_path else None
    weights_info = (
        FileInfo(file=f"demo:{job.model}" if job.weights == DEMO_WEIGHTS else str(weights_path),
                 sha256=sha256_file(weights_path), size_bytes=weights_path.stat().st_size)
        if weights_path else FileInfo(file=None, sha256=None)
    )
    models: dict[str, nn.Module] = {}
    calibration: CalibrationSet | None = None
    results = []
    for conv, precision in the_plan.steps:
        lowering, reason = _lowering_for(job.shift_lowering, conv, the_plan.has_shift)
        if lowering not in models:
            models[lowering] = _build(the_plan.config, lowering, state, weights_path)
        model = models[lowering]
        config: ModelConfig = model.edge_config
        preprocess = Preprocessing.for_model(config)
        if precision == "int8" and calibration is None:
            calibration = load_calibration(job.calib, preprocess, job.calib_size)
        if labels is not None and len(labels) != config.num_classes:
            raise EdgeMlpError(
                f"labels.txt beside the weights has {len(labels)} lines but the model has "
                f"{config.num_classes} classes"
            )
        args = (conv, precision, model, config, preprocess, calibration if precision == "int8" else None,
                ShiftLoweringInfo(job.shift_lowering if the_plan.has_shift else "none", lowering, reason),
                weights_info, labels, progress)
        if precision == "int8" and job.max_drop is not None:
            results.append(_convert_within_budget(job, *args))
        else:
            results.append(_convert_one(Path(job.out_dir), *args))
    return results


def _convert_within_budget(job: ConvertJob, conv: Any, precision: str, model: nn.Module, config: ModelConfig,
                           preprocess: Preprocessing, *rest: Any) -> ConvertResult:
    """Convert to int8, measure the drop on labelled held-out data, and keep the block with the
    worst int8 SQNR in float until the drop fits `job.max_drop`. Only the accepted artifact is
    published."""
    from .budget import labelled_holdout, reference_top1, sensitivity_ranking, top1

    x, y, source = labelled_holdout(job.calib, preprocess, config.num_classes)
    ref_top1 = reference_top1(model, x, y)
    float_blocks: list[str] = []
    ranking: list[str] | None = None
    out_dir = Path(job.out_dir)
    with staging_dir(out_dir) as attempts:
        while True:
            result = _convert_one(attempts, conv, precision, model, config, preprocess, *rest,
                                  float_modules=tuple(float_blocks))
            art_top1 = top1(conv.predict(result.artifact, x), y)
            drop = ref_top1 - art_top1
            if drop <= job.max_drop:
                break
            if ranking is None:
                ranking = sensitivity_ranking(conv, model, x)
            remaining = [b for b in ranking if b not in float_blocks]
            if not remaining:
                raise EdgeMlpError(
                    f"int8 {conv.target} cannot meet --max-drop {job.max_drop}: the drop is {drop:.2f} pts "
                    "even with every block in float"
                )
            float_blocks.append(remaining[0])
            remove_artifact(result.artifact)
        manifest = result.manifest
        assert manifest.quantization is not None
        manifest.quantization.float_blocks = list(float_blocks)
        manifest.quantization.accuracy_budget = {
            "max_drop_pts": job.max_drop, "drop_pts": round(drop, 3), "reference_top1": round(ref_top1, 3),
            "artifact_top1": round(art_top1, 3), "data": source, "images": int(len(y)),
            "ranking": "worst int8 SQNR first (PT2E simulation, edge_mlp.sensitivity)",
        }
        manifest.write(result.manifest_path)
        final = out_dir / result.artifact.name
        if manifest.output.labels_file:
            publish(attempts / manifest.output.labels_file, out_dir / manifest.output.labels_file)
        publish(result.artifact, final)
        publish(result.manifest_path, manifest_path(final))
    return ConvertResult(final, manifest_path(final), manifest)


def _lowering_for(requested: str, conv: Any, has_shift: bool) -> tuple[str, str]:
    if not has_shift:
        return "none", "this family has no shift op"
    if requested == ABLATION_LOWERING:
        return requested, "benchmark-only ablation: the shift is removed, outputs differ from the model's"
    if requested == "auto":
        return conv.preferred_lowering, conv.lowering_reason
    return requested, "requested explicitly"


def _build(config: ModelConfig, lowering: str, state: dict | None, source: Path | None) -> nn.Module:
    if lowering != "none":
        config = dataclasses.replace(config, kwargs={**config.kwargs, "shift_lowering": lowering})
    model = build(config, seed=RANDOM_INIT_SEED).eval()
    if state is not None:
        check_fit(model, state, str(source))
        model.load_state_dict(state, strict=True)
    return model


def _labels_beside(weights: Path | None) -> list[str] | None:
    if weights is None:
        return None
    path = weights.with_name("labels.txt")
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _convert_one(
    out_dir: Path, conv: Any, precision: str, model: nn.Module, config: ModelConfig,
    preprocess: Preprocessing, calibration: CalibrationSet | None, lowering: ShiftLoweringInfo,
    weights: FileInfo, labels: list[str] | None, progress: Progress | None,
    float_modules: tuple[str, ...] = (),
) -> ConvertResult:
    from converters import ConversionRequest

    stem = f"{config.name}-{conv.target}-{precision}"
    stage_seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        checkpoint()
        if progress:
            progress.stage(conv.target, name, False, 0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            stage_seconds[name] += elapsed
            if progress:
                progress.stage(conv.target, name, True, elapsed)
        checkpoint()

    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, *config.input_size, generator=generator)
    start = time.perf_counter()
    with staging_dir(out_dir) as work:
        request = ConversionRequest(
            model=model, example=example, precision=precision,
            calibration=[torch.from_numpy(b) for b in calibration.batches] if calibration else [],
            work_dir=work, stem=stem, num_classes=config.num_classes, stage=stage,
            float_modules=float_modules,
        )
        output = conv.convert(request)
        final = out_dir / output.path.name
        labels_name = f"{config.name}{LABELS_SUFFIX}" if labels else None
        if output.quantization is not None and calibration is not None:
            output.quantization.calibration = calibration.describe()
        notes = list(output.notes)
        if weights.file is None:
            notes.append("weights: random init (seed 0); for pipeline checks, not predictions")
        manifest = Manifest(
            model=ModelInfo(config.name, config.family, config.to_dict()["kwargs"], config_stats(config).macs),
            input=output.input,
            output=OutputInfo(
                tensor=output.output,
                meaning=f"logits over {config.num_classes} classes (softmax gives probabilities)",
                num_classes=config.num_classes,
                labels_file=labels_name,
            ),
            preprocessing=preprocess.to_dict(),
            precision=precision,
            quantization=output.quantization,
            shift_lowering=lowering,
            target=TargetInfo(conv.target, conv.runtime_versions()),
            artifact=FileInfo(final.name, sha256_path(output.path), path_size(output.path)),
            weights=weights,
            coverage=output.coverage,
            conversion={"wall_time_s": round(time.perf_counter() - start, 3),
                        "stages_s": {k: round(v, 3) for k, v in stage_seconds.items()}},
            edge_mlp_version=__version__,
            notes=notes,
        )
        staged_manifest = work / "manifest.json"
        manifest.write(staged_manifest)
        if labels_name:
            (work / labels_name).write_text("\n".join(labels) + "\n")
            publish(work / labels_name, out_dir / labels_name)
        publish(output.path, final)
        publish(staged_manifest, manifest_path(final))  # last: a manifest means a complete artifact
    return ConvertResult(final, manifest_path(final), manifest)


def remove_artifact(artifact: Path) -> None:
    """Delete an artifact and its manifest (used by tests and re-runs)."""
    if artifact.is_dir():
        shutil.rmtree(artifact)
    else:
        artifact.unlink(missing_ok=True)
    manifest_path(artifact).unlink(missing_ok=True)
