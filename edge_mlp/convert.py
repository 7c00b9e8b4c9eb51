"""The conversion pipeline behind `edge-mlp convert`: model + weights + calibration -> artifacts.

Everything is validated before any heavy work starts; each artifact is staged in a temp folder and
renamed into place with its manifest last, so an artifact without a manifest never appears and an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
import torch.nn as nn

from . import __version__
from .calibration import CalibrationSet, load_calibration
from .converters import Converter, all_converters, get_converter
from .demo import DEMO_MODELS, DEMO_WEIGHTS, demo_config, demo_labels, demo_weights, weights_reference
from .errors import EdgeMlpError
from .fileio import check_output_dir, folder_lock, path_size, publish, sha256_file, sha256_path, staging_dir
from .interrupts import checkpoint
from .manifest import (FeatureMap, FileInfo, InputSize, Manifest, ModelInfo, OutputInfo, ShiftLoweringInfo,
                       TargetInfo, manifest_path)
from .models import (
    RANDOM_INIT_SEED,
    ModelConfig,
    build,
    check_architecture,
    get_spec,
    option_for,
    resolve_config,
    size_overrides,
)
from .models._registry import ImageSize, check_image_size
from .ops.fold import fold_norm_affines
from .options import AUTO, NO_SHIFT, ExportForms, Precision, ShiftLowering, parse_lowering, using_forms
from .preprocess import Preprocessing
from .shift_choice import Choice, measured_choice
from .stats import config_stats
from .weights import backbone_state, check_fit, read_state_dict
from .workers import default_workers

CALIB_BUILTINS = ("demo", "synthetic")
LABELS_SUFFIX = ".labels.txt"


class Progress(Protocol):
    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None: ...


@dataclass
class ConvertJob:
    model: str
    target: str  # a registered target or "all"
    # None: each target's default; several (a list, or "fp32,int8") make one artifact per target each
    precision: Precision | str | Sequence[Precision | str] | None = None
    weights: str | None = None
    # One size (N or (H, W)), or several for one multi-size artifact (the first is the model's).
    img_size: int | tuple[int, int] | list[int | tuple[int, int]] | None = None
    num_classes: int | None = None
    features_only: bool = False  # a backbone: the chosen stages' feature maps instead of logits
    out_indices: tuple[int, ...] | None = None  # with features_only: which stages (None: all)
    # None: the demo set for the demo weights, synthetic images for random init; other weights
    # need real images of their own domain (`default_calibration`).
    calib: str | None = None
    calib_size: int = 32
    shift_lowering: ShiftLowering | str | None = None  # None or "auto": each target's preferred
    out_dir: str = "out"
    overrides: dict[str, Any] = field(default_factory=dict)  # further create_model overrides
    # int8: keep the most sensitive blocks in float until the drop fits; Core ML w4 / pal4 / pal6:
    # keep them at 8-bit palettization
    max_drop: float | None = None
    force: bool = False  # replace an existing artifact even if it came from another model config
    # Worker processes, one artifact each at a time (--target all): 1 converts in this process,
    # None picks one per artifact within the cores and memory (edge_mlp.workers.default_workers).
    jobs: int | None = 1
    # Benchmark-only: allows shift_lowering="identity" (the shift removed, outputs change) so
    # `edge-mlp bench --shift-ablation` can measure what the shift costs.
    for_benchmark: bool = False

    def __post_init__(self) -> None:  # strings from the CLI or callers become typed values here, once
        if self.precision is not None:
            items = self.precision.split(",") if isinstance(self.precision, str) else self.precision
            parsed = tuple(dict.fromkeys(Precision.parse(p.strip() if isinstance(p, str) else p) for p in items))
            self.precision = parsed[0] if len(parsed) == 1 else parsed
        self.shift_lowering = parse_lowering(self.shift_lowering, allow_ablation=self.for_benchmark)

    def precisions(self) -> tuple[Precision | None, ...]:
        """The requested precisions in order (None: each target's default)."""
        return self.precision if isinstance(self.precision, tuple) else (self.precision,)


@dataclass
class ConvertResult:
    artifact: Path
    manifest_path: Path
    manifest: Manifest
    replaced: str | None = None  # what the published artifact replaced, if anything


@dataclass(frozen=True)
class Step:
    """One artifact to make: the target, its precision and the op forms it is exported with."""

    converter: Converter
    precision: Precision
    lowering: ShiftLoweringInfo
    forms: ExportForms
    label: str = ""  # what progress lines call it: the target, with the precision when a job has several


@dataclass
class Plan:
    steps: list[Step]
    config: ModelConfig
    calib: str | None  # the calibration source of int8 steps and --max-drop (None: neither)
    weights_sha256: str | None = None
    sizes: tuple[ImageSize, ...] = ()  # every input size of the artifacts; the config's first


def job_sizes(img_size: Any) -> list[ImageSize] | None:
    """The job's input sizes as (H, W), in order, duplicates removed (None: the model's default)."""
    if img_size is None:
        return None
    items = img_size if isinstance(img_size, list) else [img_size]
    sizes: list[ImageSize] = []
    for item in items:
        size = (item, item) if isinstance(item, int) else tuple(item)
        if size not in sizes:
            sizes.append(size)  # type: ignore[arg-type]
    return sizes


def _size_overrides(job: ConvertJob, sizes: list[ImageSize] | None) -> dict[str, Any]:
    backbone = {"features_only": True} if job.features_only else {}
    if job.out_indices is not None:
        backbone["out_indices"] = tuple(job.out_indices)
    return {**job.overrides, **backbone, **size_overrides(sizes[0] if sizes else None, job.num_classes)}


def plan(job: ConvertJob) -> Plan:
    """Validate the whole job up front: names, combinations, files, output folder."""
    targets = all_converters() if job.target == "all" else [get_converter(job.target)]
    if job.jobs is not None and job.jobs < 1:
        raise EdgeMlpError(f"--jobs must be at least 1 (got {job.jobs})")
    spec = get_spec(job.model)
    check_output_dir(job.out_dir)
    steps = []
    several = len(job.precisions()) > 1
    for conv in targets:
        for requested in job.precisions():
            precision = requested or conv.default_precision
            conv.check_precision(precision)
            step = _step(conv, precision, job.shift_lowering, spec.family if spec.has_shift else None)
            steps.append(dataclasses.replace(step, label=f"{conv.target} {precision}" if several else conv.target))
    sizes = job_sizes(job.img_size)
    overrides = _size_overrides(job, sizes)
    if job.weights == DEMO_WEIGHTS:
        config = _demo_config(job.model, overrides)
        demo_weights(job.model)
    else:
        config = resolve_config(job.model, **overrides)  # unknown overrides fail here, before any work
        check_architecture(config, job.overrides)
        if job.weights is not None and not Path(job.weights).is_file():
            raise EdgeMlpError(f"weights file not found: {job.weights}")
    sizes = sizes or [config.input_size[1:]]
    _check_sizes(job.model, config, sizes, steps)
    needs_calib = any(s.precision.calibrated for s in steps)
    if job.max_drop is not None and not any(s.precision.budgeted for s in steps):
        low_bit = ", ".join(p for p in Precision if p.low_bit)
        raise EdgeMlpError(f"--max-drop applies to int8 conversions (and Core ML {low_bit}); add --precision int8")
    needs_data = needs_calib or job.max_drop is not None
    calib = (job.calib or default_calibration(job.weights, needs_calib)) if needs_data else None
    if job.max_drop is not None:
        if calib == "synthetic":
            raise EdgeMlpError("--max-drop measures accuracy: use labelled calibration data ('demo' or class subfolders)")
    if calib is not None and calib not in CALIB_BUILTINS and not Path(calib).is_dir():
        raise EdgeMlpError(f"calibration folder not found: {calib} (pass an image folder, 'demo' or 'synthetic')")
    weights_file = demo_weights(job.model) if job.weights == DEMO_WEIGHTS else job.weights
    the_plan = Plan(steps, config, calib, sha256_file(weights_file) if weights_file else None, tuple(sizes))
    for step in steps:
        final = Path(job.out_dir) / f"{config.name}-{step.converter.target}-{step.precision}{step.converter.suffix}"
        _check_replace(final, config.to_dict()["kwargs"], the_plan.weights_sha256, job.force)
    return the_plan


def _demo_config(model: str, overrides: dict[str, Any]) -> ModelConfig:
    """The demo checkpoint's config, as a backbone and at other sizes where its weights allow."""
    spec = get_spec(model)
    allowed = {"features_only", "out_indices"}
    if not spec.input_sizes(demo_config(model).kwargs).fixed:
        allowed.add("img_size")  # AS-MLP and CycleMLP weights do not depend on the input size
    refused = sorted(set(overrides) - allowed)
    if refused:
        what = " / ".join(option_for(k) for k in refused)
        raise EdgeMlpError(f"--weights demo fixes the model config ({model} for 32x32 Fashion-MNIST); drop {what}")
    config = demo_config(model)
    if not overrides:
        return config
    return dataclasses.replace(resolve_config(model, **{**DEMO_MODELS[model], **overrides}), data=config.data)


def _check_sizes(model: str, config: ModelConfig, sizes: list[ImageSize], steps: list[Step]) -> None:
    """Every size against the family's rule; several sizes only where each target can hold them."""
    spec = get_spec(model)
    rule = spec.input_sizes(config.kwargs)
    for size in sizes[1:]:
        check_image_size(model, rule, size[0] if size[0] == size[1] else size)
    if len(sizes) > 1:
        if rule.fixed:
            raise EdgeMlpError(f"{model} takes one input size per model ({rule.why}): convert once per size")
        for step in steps:
            step.converter.check_sizes(sizes, step.precision)


def default_calibration(weights: str | None, calibrating: bool = True) -> str:
    """What int8 calibrates on (and --max-drop measures on) without --calib. The demo set is
    Fashion-MNIST clothing: right for the demo checkpoints only. Random init is a pipeline check,
    which synthetic images serve. Any other checkpoint needs images of its own domain: calibrating
    an ImageNet model on clothing costs accuracy silently, so that is refused rather than defaulted.
    `calibrating`: False when only --max-drop needs the images (weight-only precisions)."""
    if weights == DEMO_WEIGHTS:
        return "demo"
    if weights is None:
        return "synthetic"
    if not calibrating:
        raise EdgeMlpError("--max-drop measures accuracy on labelled images like the ones your weights were "
                           "trained on: pass --calib DIR (class subfolders)")
    raise EdgeMlpError("int8 needs calibration images like the ones your weights were trained on: pass "
                       "--calib DIR (a folder of them), or --calib synthetic for a pipeline check only")


def _check_replace(final: Path, config: dict[str, Any], weights_sha256: str | None, force: bool) -> str | None:
    """`config`: as the manifest records it (ModelConfig.to_dict, lists not tuples). Whether publishing `final` may replace what is there: an artifact of the same model config
    and weights may be replaced (said in one line); another one only with --force, since the file
    name does not carry image size or weights. Returns what is replaced, None if nothing."""
    old_manifest = manifest_path(final)
    if not final.exists() and not old_manifest.exists():
        return None
    try:  # raw JSON: a manifest of an older schema still says what it was converted from
        old = json.loads(old_manifest.read_text())
        old_config, old_weights = old["model"]["config"], old["weights"]["sha256"]
        changes = [f"{k} {old_config[k]!r} -> {v!r}" for k, v in config.items()
                   if k in old_config and old_config[k] != v]
        if old_weights != weights_sha256:
            changes.append("other weights")
    except (OSError, ValueError, KeyError, TypeError):
        changes = ["an artifact without a readable manifest"]
    if changes and not force:
        raise EdgeMlpError(f"{final} exists from another conversion ({'; '.join(changes)}); pass --force to "
                           "replace it, or choose another --out")
    return f"replaced {final.name} ({'; '.join(changes) if changes else 'same model config and weights'})"



def auto_lowering(conv: Converter, precision: Precision, family: str) -> Choice:
    """What `--shift-lowering auto` uses: the committed measurement, else the target's declared default."""
    measured = measured_choice(conv.target, precision, family)
    if measured is not None:
        return measured
    return Choice(conv.preferred_lowering, f"{conv.lowering_reason} [not measured for {conv.target} {precision}]")


def _step(conv: Converter, precision: Precision, requested: ShiftLowering | None, shift_family: str | None) -> Step:
    """`shift_family`: the model's family when it has a shift op, else None."""
    if shift_family is None:
        info = ShiftLoweringInfo(NO_SHIFT, NO_SHIFT, "this family has no shift op")
        return Step(conv, precision, info, conv.export_forms(ShiftLowering.SLICE))
    if requested is None:
        lowering, reason = auto_lowering(conv, precision, shift_family).as_tuple()
    elif requested is ShiftLowering.IDENTITY:
        lowering, reason = requested, "benchmark-only ablation: the shift is removed, outputs differ from the model's"
    else:
        lowering, reason = requested, "requested explicitly"
    info = ShiftLoweringInfo(requested or AUTO, lowering, reason)
    return Step(conv, precision, info, conv.export_forms(lowering))


@dataclass
class _Artifact:
    """Everything one artifact is made from."""

    step: Step
    model: nn.Module
    config: ModelConfig
    preprocess: Preprocessing
    calibration: CalibrationSet | None
    weights: FileInfo
    labels: list[str] | None
    progress: Progress | None
    # The accuracy budget's blocks: int8 keeps them in float, Core ML w4 / pal4 / pal6 at 8 bits.
    float_modules: tuple[str, ...] = ()
    sizes: tuple[ImageSize, ...] = ()  # every input size; the config's first
    folded_norms: tuple[str, ...] = ()  # norms whose affine `model` has folded into the next layer


def convert(job: ConvertJob, progress: Progress | None = None, checked: Plan | None = None) -> list[ConvertResult]:
    """`checked`: the job's plan if the caller validated it already (the CLI does, before it
    starts drawing progress)."""
    the_plan = checked or plan(job)
    workers = min(len(the_plan.steps), job.jobs or default_workers(len(the_plan.steps)))
    if workers > 1:
        return _convert_in_workers(job, the_plan, progress, workers)
    if job.weights == DEMO_WEIGHTS:
        weights_path: Path | None = demo_weights(job.model)
        labels: list[str] | None = list(demo_labels())
    else:
        weights_path = Path(job.weights) if job.weights else None
        labels = _labels_beside(weights_path)
    state = read_state_dict(weights_path) if weights_path else None
    weights_info = (
        FileInfo(file=weights_reference(job.model, job.weights), sha256=the_plan.weights_sha256,
                 size_bytes=weights_path.stat().st_size)
        if weights_path else FileInfo(file=None, sha256=None)
    )
    model = _build(the_plan.config, state, weights_path)
    config: ModelConfig = model.edge_config
    if config.features_only:
        labels = None  # a backbone has no classes
    if labels is not None and len(labels) != config.num_classes:
        raise EdgeMlpError(
            f"labels.txt beside the weights has {len(labels)} lines but the model has {config.num_classes} classes"
        )
    preprocess = Preprocessing.for_model(config)
    calibration: CalibrationSet | None = None
    results = []
    calib = the_plan.calib
    folded: tuple[nn.Module, list[str]] | None = None
    for step in the_plan.steps:
        if step.precision.calibrated and calibration is None:
            assert calib is not None  # plan() resolves it for every calibrated step
            calibration = load_calibration(calib, preprocess, job.calib_size)
        step_model, folded_norms = model, []
        if step.converter.folds_norm_affines:
            folded = folded or fold_norm_affines(model)
            step_model, folded_norms = folded
        item = _Artifact(step, step_model, config, preprocess, calibration if step.precision.calibrated else None,
                         weights_info, labels, progress, sizes=the_plan.sizes, folded_norms=tuple(folded_norms))
        out_dir = Path(job.out_dir)
        if step.precision.budgeted and job.max_drop is not None and calib is not None:
            results.append(_convert_within_budget(job, item, calib))
        else:
            with staging_dir(out_dir) as work:
                results.append(_publish(_stage(item, work), work, out_dir, job.force))
    return results


def _convert_in_workers(job: ConvertJob, the_plan: Plan, progress: Progress | None, workers: int) -> list[ConvertResult]:
    """Each artifact of the plan as a one-artifact job in a worker process (edge_mlp.workers):
    the plan was checked here, so a worker's own check of its part passes."""
    from . import workers as pool

    # the longest first, so that no long conversion starts while the other workers run out of work
    order = sorted(range(len(the_plan.steps)), key=lambda i: -expected_seconds(the_plan.steps[i]))
    steps = [the_plan.steps[i] for i in order]
    parts = [dataclasses.replace(job, target=step.converter.target, precision=step.precision, jobs=1) for step in steps]
    results = pool.run(_convert_part, parts, workers, progress, [Path(job.out_dir)], [s.label for s in steps])
    by_step = dict(zip(order, results))
    return [by_step[i] for i in range(len(the_plan.steps))]


def expected_seconds(step: Step) -> float:
    """About how long the step converts (as_mlp_mobile at 224; only the order matters): its
    converter's measured `typical_seconds`, else calibrated steps count as the longest."""
    measured = step.converter.typical_seconds.get(str(step.precision))
    return measured if measured is not None else (1000.0 if step.precision.calibrated else 100.0)


def _convert_part(job: ConvertJob, progress: Progress) -> ConvertResult:
    """A worker's task (module level, so a spawned process can import it)."""
    (result,) = convert(job, progress)
    return result


def _convert_within_budget(job: ConvertJob, item: _Artifact, calib: str) -> ConvertResult:
    """Convert, measure the drop on labelled held-out data, and keep the block with the worst int8
    SQNR at higher precision (int8: float; Core ML w4 / pal4 / pal6: 8-bit palettization) until
    the drop fits `job.max_drop`. Only the accepted artifact is published."""
    from .budget import labelled_holdout, reference_top1, sensitivity_ranking, top1

    conv, precision = item.step.converter, item.step.precision
    if precision.calibrated:
        kept_as = "float"
    else:  # only Core ML has the low-bit weight precisions
        from .converters.coreml import KEPT_SCHEME as kept_as
    x, y, source = labelled_holdout(calib, item.preprocess, item.config.num_classes)
    ref_top1 = reference_top1(item.model, x, y)
    kept: list[str] = []
    ranking: list[str] | None = None
    out_dir = Path(job.out_dir)
    with staging_dir(out_dir) as work:
        while True:
            staged = _stage(dataclasses.replace(item, float_modules=tuple(kept)), work)
            art_top1 = top1(conv.predict(staged.artifact, x), y)
            drop = ref_top1 - art_top1
            if drop <= job.max_drop:
                break
            if ranking is None:
                ranking = sensitivity_ranking(conv, item.model, x)
            remaining = [b for b in ranking if b not in kept]
            if not remaining:
                raise EdgeMlpError(
                    f"{precision} {conv.target} cannot meet --max-drop {job.max_drop}: the drop is {drop:.2f} pts "
                    f"even with every block in {kept_as}"
                )
            kept.append(remaining[0])
            remove_artifact(staged.artifact)
        quantization = staged.manifest.quantization
        assert quantization is not None
        if precision.calibrated:
            quantization.float_blocks = list(kept)
        quantization.accuracy_budget = {
            "max_drop_pts": job.max_drop, "drop_pts": round(drop, 3), "reference_top1": round(ref_top1, 3),
            "artifact_top1": round(art_top1, 3), "data": source, "images": int(len(y)),
            "kept_blocks": list(kept), "kept_as": kept_as,
            "ranking": "worst int8 SQNR first (PT2E simulation, edge_mlp.sensitivity)",
        }
        return _publish(staged, work, out_dir, job.force)


def _build(config: ModelConfig, state: dict | None, source: Path | None) -> nn.Module:
    # Inference only. Weights that require grad make each further exported program of the same
    # model (a multi-size artifact's methods) warn about every folded constant.
    model = build(config, seed=RANDOM_INIT_SEED).eval().requires_grad_(False)
    if state is not None:
        state, dropped = backbone_state(model, state)
        model.dropped_weights = dropped  # type: ignore[assignment]  # said in the manifest's notes
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


@dataclass
class _Staged:
    """An artifact written into a staging folder, with its manifest (not yet written)."""

    artifact: Path
    manifest: Manifest


def _stage(item: _Artifact, work: Path) -> _Staged:
    """Convert into the staging folder `work`: the artifact and, if any, its labels file."""
    from .converters import ConversionRequest
    from .converters.provenance import shared_provenance

    conv, precision, config = item.step.converter, item.step.precision, item.config
    stem = f"{config.name}-{conv.target}-{precision}"
    stage_seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        checkpoint()
        if item.progress:
            item.progress.stage(item.step.label or conv.target, name, False, 0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            stage_seconds[name] += elapsed
            if item.progress:
                item.progress.stage(item.step.label or conv.target, name, True, elapsed)
        checkpoint()

    generator = torch.Generator().manual_seed(0)
    example = torch.randn(1, *config.input_size, generator=generator)
    start = time.perf_counter()
    calibration = item.calibration
    request = ConversionRequest(
        model=item.model, example=example, precision=precision,
        calibration=[torch.from_numpy(b) for b in calibration.batches] if calibration else [],
        work_dir=work, stem=stem, num_classes=config.num_classes, stage=stage,
        float_modules=item.float_modules, sizes=item.sizes,
    )
    with using_forms(item.step.forms), shared_provenance():  # same bytes, seconds less per re-trace
        output = conv.convert(request)
    labels_name = f"{config.name}{LABELS_SUFFIX}" if item.labels else None
    if labels_name:
        (work / labels_name).write_text("\n".join(item.labels or ()) + "\n")
    if output.quantization is not None and calibration is not None:
        output.quantization.calibration = calibration.describe()
    notes = list(output.notes)
    if item.weights.file is None:
        notes.append("weights: random init (seed 0); for pipeline checks, not predictions")
    if item.folded_norms:
        notes.append(f"export: the affines of {len(item.folded_norms)} norms folded into the 1x1 conv / linear "
                     "after each (edge_mlp.ops.fold)")
    dropped = getattr(item.model, "dropped_weights", [])
    if dropped:
        notes.append(f"weights: the backbone does not use the checkpoint's classifier keys ({', '.join(dropped)})")
    features = [FeatureMap(tensor, f.index, f.stride, f.channels)
                for tensor, f in zip(output.outputs, config.features())]
    sizes = item.sizes or (tuple(config.input_size[1:]),)
    entries = output.entry_points or [""] * len(sizes)
    if features:
        meaning = (f"feature maps of stages {', '.join(str(f.index) for f in features)} "
                   f"(strides {', '.join(str(f.stride) for f in features)}): see features")
        output_info = OutputInfo(tensor=output.outputs[0], meaning=meaning, num_classes=0)
    else:
        output_info = OutputInfo(
            tensor=output.outputs[0],
            meaning=f"logits over {config.num_classes} classes (softmax gives probabilities)",
            num_classes=config.num_classes,
            labels_file=labels_name,
        )
    manifest = Manifest(
        model=ModelInfo(config.name, config.family, config.to_dict()["kwargs"], config_stats(config).macs),
        input=output.input,
        output=output_info,
        preprocessing=item.preprocess.to_dict(),
        precision=precision,
        quantization=output.quantization,
        shift_lowering=item.step.lowering,
        target=TargetInfo(conv.target, conv.runtime_versions()),
        artifact=FileInfo(output.path.name, sha256_path(output.path), path_size(output.path)),
        weights=item.weights,
        coverage=output.coverage,
        conversion={"wall_time_s": round(time.perf_counter() - start, 3),
                    "stages_s": {k: round(v, 3) for k, v in stage_seconds.items()}},
        edge_mlp_version=__version__,
        notes=notes,
        features=features,
        input_sizes=[InputSize(h, w, entry) for (h, w), entry in zip(sizes, entries)],
    )
    return _Staged(output.path, manifest)


def _publish(staged: _Staged, work: Path, out_dir: Path, force: bool) -> ConvertResult:
    """Move a staged artifact into `out_dir`: labels, artifact, then its manifest last, so a
    manifest always means a complete artifact."""
    manifest = staged.manifest
    staged_manifest = work / "manifest.json"
    manifest.write(staged_manifest)
    final = out_dir / staged.artifact.name
    with folder_lock(out_dir):  # one unit: another conversion into out_dir publishes before or after
        replaced = _check_replace(final, manifest.model.config, manifest.weights.sha256, force)
        if manifest.output.labels_file:
            publish(work / manifest.output.labels_file, out_dir / manifest.output.labels_file)
        publish(staged.artifact, final)
        publish(staged_manifest, manifest_path(final))
    return ConvertResult(final, manifest_path(final), manifest, replaced)


def remove_artifact(artifact: Path) -> None:
    """Delete an artifact and its manifest (used by tests and re-runs)."""
    if artifact.is_dir():
        shutil.rmtree(artifact)
    else:
        artifact.unlink(missing_ok=True)
    manifest_path(artifact).unlink(missing_ok=True)
