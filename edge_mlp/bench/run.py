"""`edge-mlp bench`: convert (or take) artifacts, time every backend interleaved in one process,
and derive throughput, GFLOP/s, roofline share and speedups."""

from __future__ import annotations

import platform
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..convert import ConvertJob, convert
from ..converters import get_converter, host_timed_targets
from ..demo import weights_reference
from ..errors import EdgeMlpError
from ..manifest import Manifest, open_artifact
from ..models import config_from_record, list_models
from ..options import NO_SHIFT, ExportForms, Precision, ShiftLowering
from ..parity import reference_model
from ..stats import config_stats
from ..timing import OpProfile
from . import measure
from .schema import BACKENDS, EAGER, BenchReport, BenchResult, Machine, ShiftCost

TIMED_TARGETS = host_timed_targets()  # Core ML latency needs a Mac: the iOS app measures it
TIMED_PRECISIONS = (Precision.FP32.value, Precision.INT8.value)


@dataclass
class BenchJob:
    sources: list[str]  # model names (converted here) or artifacts / manifests
    targets: tuple[str, ...] = TIMED_TARGETS
    precisions: tuple[str, ...] = TIMED_PRECISIONS
    img_size: int | None = None
    weights: str | None = None  # for model names: a checkpoint, 'demo', or None (random init)
    threads: int = 2
    warmup: int = 5
    runs: int = 30
    shift_ablation: bool = False  # also time slice, roll and identity (shift removed) lowerings
    calib: str | None = None  # None: convert's default (edge_mlp.convert.default_calibration)
    calib_size: int = 32
    keep_artifacts: str | None = None  # folder to keep converted artifacts in, and reuse them from
    profile: bool = False  # after timing, a per-op table of each artifact from its runtime's profiler


@dataclass
class _Entry:
    key: tuple[str, str, str, str]  # (model, backend, precision, lowering)
    make: Callable[[], measure.Call]
    macs: int
    artifact: Path | None = None
    manifest: Manifest | None = None
    pytorch_threads: int = 1  # eager: the job's threads (measure.Runner)


def check_job(job: BenchJob) -> None:
    bad = [t for t in job.targets if t not in TIMED_TARGETS]
    if bad:
        raise EdgeMlpError(f"bench times {', '.join(TIMED_TARGETS)} on this host; {', '.join(bad)} cannot be "
                           "timed here (Core ML: use the iOS app's benchmark mode)")
    bad = [p for p in job.precisions if p not in TIMED_PRECISIONS]
    if bad:
        raise EdgeMlpError(f"bench precisions are {', '.join(TIMED_PRECISIONS)}; got {', '.join(bad)}")
    for name, value, low in (("--threads", job.threads, 1), ("--runs", job.runs, 1), ("--warmup", job.warmup, 0)):
        if value < low:
            raise EdgeMlpError(f"{name} must be at least {low}, got {value}")
    models = set(list_models())
    for source in job.sources:
        if source not in models and not Path(source).exists():
            raise EdgeMlpError(f"{source!r} is neither a model name (edge-mlp list) nor an existing artifact")


def _input(manifest: Manifest) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal(manifest.input.shape).astype(np.float32)


def _row_key(manifest: Manifest) -> tuple[str, str, str, str]:
    return (manifest.model.name, BACKENDS[manifest.target.name], str(manifest.precision), manifest.shift_lowering.used)


def _check_timeable(artifacts: list[tuple[Path, Manifest]]) -> None:
    """Each artifact's runtime runs on this host, and no two share a report row: a report has one
    row per model, runtime, precision and lowering, so a second artifact with the same four would
    replace the first one's row unseen (an A/B of two exports); it is refused."""
    seen: dict[tuple, Path] = {}
    for artifact, manifest in artifacts:
        if manifest.target.name not in TIMED_TARGETS:
            raise EdgeMlpError(f"{artifact.name}: {manifest.target.name} artifacts cannot be timed on this host")
        key = _row_key(manifest)
        if key in seen and seen[key].resolve() != artifact.resolve():
            model, backend, precision, lowering = key
            raise EdgeMlpError(f"{seen[key]} and {artifact} are both {model} on {backend} {precision} (shift "
                               f"{lowering}), and a report has one row for each; time them in separate bench runs")
        seen[key] = artifact


def _entries_for_artifact(artifact: Path, manifest: Manifest, macs: int, x: np.ndarray, threads: int) -> _Entry:
    converter = get_converter(manifest.target.name)
    return _Entry(_row_key(manifest), lambda: converter.open_model(artifact, threads=threads).bind(x), macs,
                  artifact, manifest)


def _eager_entries(manifest: Manifest, macs: int, x: np.ndarray, threads: int) -> list[_Entry]:
    """PyTorch eager fp32 of the artifact's own model config, with every exact shift lowering (the
    fastest is the baseline speedups are measured against) and the artifact's own lowering."""
    used = manifest.shift_lowering.used
    lowerings: list[str] = [NO_SHIFT] if used == NO_SHIFT else [*ShiftLowering.exact(), used]
    entries = []
    for lowering in dict.fromkeys(lowerings):
        forms = ExportForms() if lowering == NO_SHIFT else ExportForms(shift=ShiftLowering(lowering))
        key = (manifest.model.name, BACKENDS[EAGER], Precision.FP32.value, lowering)
        entries.append(_Entry(key, lambda forms=forms: measure.eager_call(reference_model(manifest), x, forms), macs,
                              pytorch_threads=threads))
    return entries


def _convert_all(job: BenchJob, model: str, out_dir: Path) -> list[tuple[Path, Manifest]]:
    lowerings: list[ShiftLowering | None] = [None]  # None: each target's own (auto)
    if job.shift_ablation:
        lowerings = list(ShiftLowering)
    done = []
    for target in job.targets:
        for precision in job.precisions:
            for lowering in lowerings:
                sub = out_dir / f"{model}-{lowering or 'auto'}"
                reused = _reusable(job, sub, model, target, precision)
                if reused is not None:
                    done.append(reused)
                    if reused[1].shift_lowering.used == NO_SHIFT:
                        break
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    (result,) = convert(ConvertJob(
                        model=model, target=target, precision=precision, weights=job.weights,
                        img_size=job.img_size, calib=job.calib, calib_size=job.calib_size, out_dir=str(sub),
                        shift_lowering=lowering, for_benchmark=True,
                    ))
                done.append((result.artifact, result.manifest))
                if result.manifest.shift_lowering.used == NO_SHIFT:
                    break  # no shift in this family: one lowering is all there is
    return done


def _reusable(job: BenchJob, folder: Path, model: str, target: str, precision: str) -> tuple[Path, Manifest] | None:
    """A kept artifact converted with the same model, target, precision, input size and weights."""
    if not job.keep_artifacts:
        return None
    path = folder / f"{model}-{target}-{precision}{get_converter(target).suffix}"
    if not path.exists():
        return None
    artifact, manifest = open_artifact(path)
    same_size = job.img_size is None or manifest.input.shape[-1] == job.img_size
    weights = manifest.weights.file if manifest.weights else None
    same_weights = weights == weights_reference(model, job.weights)
    return (artifact, manifest) if same_size and same_weights else None


def run_bench(job: BenchJob, progress: Callable[[str], None] = lambda _: None) -> BenchReport:
    check_job(job)
    keep = Path(job.keep_artifacts) if job.keep_artifacts else None
    with tempfile.TemporaryDirectory(prefix="edge-mlp-bench-") as tmp:
        out_dir = keep or Path(tmp)
        given = {s: open_artifact(s) for s in job.sources if Path(s).exists()}
        _check_timeable(list(given.values()))  # before any conversion
        artifacts: list[tuple[Path, Manifest]] = []
        for source in job.sources:
            if source in given:
                artifacts.append(given[source])
            else:
                progress(f"converting {source} for {', '.join(job.targets)} x {', '.join(job.precisions)}")
                artifacts.extend(_convert_all(job, source, out_dir))
        _check_timeable(artifacts)  # also a named model converted to what a given artifact is
        return _measure(job, artifacts, progress)


def _measure(job: BenchJob, artifacts: list[tuple[Path, Manifest]], progress: Callable[[str], None]) -> BenchReport:
    entries: dict[tuple, _Entry] = {}
    for artifact, manifest in artifacts:
        config = config_from_record(manifest.model.name, manifest.model.config)
        macs = config_stats(config).macs
        x = _input(manifest)
        entry = _entries_for_artifact(artifact, manifest, macs, x, job.threads)
        entries[entry.key] = entry
        for eager in _eager_entries(manifest, macs, x, job.threads):
            entries.setdefault(eager.key, eager)
    with measure.torch_threads(job.threads):
        progress(f"measuring the fp32 GEMM peak on {job.threads} thread(s)")
        peak = measure.gemm_peak_gflops()
        progress(f"loading and warming up {len(entries)} backend/precision/lowering combinations")
        runners = [measure.load_runner(e.key, e.make, job.warmup, e.pytorch_threads) for e in entries.values()]
        progress(f"timing {job.runs} interleaved rounds")
        latencies = measure.time_interleaved(runners, job.runs)
        peak_after = measure.gemm_peak_gflops()
    rss = {r.key: r.load_rss_mb for r in runners}
    results = [_result(e, latencies[k], rss[k], max(peak, peak_after)) for k, e in entries.items()]
    if job.profile:
        for result, entry in zip(results, entries.values()):
            if entry.artifact is not None and entry.manifest is not None:
                progress(f"profiling {entry.artifact.name} ({PROFILE_PHASES} x {job.runs} runs)")
                converter = get_converter(entry.manifest.target.name)
                x = _input(entry.manifest)
                result.profile = asdict(_quietest_profile(converter, entry.artifact, x, job.threads, job.runs))
    _add_speedups(results)
    machine = Machine(
        description=measure.machine_description(), platform=platform.platform(), threads=job.threads,
        gemm_peak_gflops=round(max(peak, peak_after), 2),
        gemm="torch.mm fp32 1024x1024x1024, best of ~1 s, before and after the timing rounds",
        process_peak_rss_mb=round(measure.peak_rss_mb(), 1),
    )
    settings = {"warmup": job.warmup, "runs": job.runs, "interleaved": True, "batch": 1,
                "img_size": job.img_size, "weights": job.weights, "shift_ablation": job.shift_ablation,
                "profile": job.profile}
    return BenchReport(machine, settings, results, _shift_costs(results), edge_mlp_version=__version__)


# A profile is short (`--runs` inferences) and these hosts are shared: one phase now and then caught
# a neighbour's burst (as_mlp_mobile at 224: LiteRT int8 9.0 ms under the profiler against its 5.3 ms
# latency, ExecuTorch fp32 23.8 against 14.1). As benchmarks/thread_scaling.py does, profile in
# phases and keep the quietest.
PROFILE_PHASES = 3


def _quietest_profile(converter: Any, artifact: Path, x: np.ndarray, threads: int, runs: int) -> OpProfile:
    """The profile of least time of PROFILE_PHASES, each on a settled process (the backend timed or
    profiled before may still spin its pool)."""
    profiles = []
    for _ in range(PROFILE_PHASES):
        measure.settle()
        profiles.append(converter.profile(artifact, x, threads, runs))
    return min(profiles, key=lambda p: p.total_ms if p.total_ms is not None else sum(op.ms for op in p.ops))


def _result(e: _Entry, latency: Any, load_rss_mb: float, peak: float) -> BenchResult:
    model, backend, precision, lowering = e.key
    gflops = 2 * e.macs / (latency.median_ms * 1e6)
    delegation = None
    if e.manifest is not None:
        delegation = {k: v for k, v in e.manifest.coverage.items() if not isinstance(v, dict)}
    return BenchResult(
        model=model, backend=backend, precision=precision, shift_lowering=lowering, latency=latency,
        throughput_ips=1000.0 / latency.median_ms, macs=e.macs, gflops=gflops,
        pct_of_gemm_peak=100.0 * gflops / peak if peak else None,
        artifact=e.artifact.name if e.artifact else None,
        size_bytes=e.manifest.artifact.size_bytes if e.manifest else None,
        load_rss_mb=load_rss_mb, delegation=delegation,
    )


def _add_speedups(results: list[BenchResult]) -> None:
    """vs eager: against the model's *fastest* exact eager lowering (comparing with eager in the
    artifact's own lowering would credit the runtime with what the lowering alone buys)."""
    by_key = {(r.model, r.backend, r.precision, r.shift_lowering): r for r in results}
    exact = {*ShiftLowering.exact(), NO_SHIFT}
    fastest: dict[str, BenchResult] = {}
    for r in results:
        if r.backend == BACKENDS[EAGER] and r.precision == Precision.FP32 and r.shift_lowering in exact:
            best = fastest.get(r.model)
            if best is None or r.latency.median_ms < best.latency.median_ms:
                fastest[r.model] = r
    for r in results:
        eager = fastest.get(r.model)
        if eager is not None:
            r.speedup_vs_eager_fp32 = eager.latency.median_ms / r.latency.median_ms
            r.eager_baseline_lowering = eager.shift_lowering
        if r.precision != Precision.FP32:
            fp32 = by_key.get((r.model, r.backend, Precision.FP32, r.shift_lowering)) or _only(
                [f for f in results if (f.model, f.backend, f.precision) == (r.model, r.backend, Precision.FP32)])
            if fp32 is not None:
                r.speedup_vs_fp32 = fp32.latency.median_ms / r.latency.median_ms
                r.fp32_baseline_lowering = fp32.shift_lowering


def _only(rows: list[BenchResult]) -> BenchResult | None:
    """The one row, if exactly one (`auto` may pick different lowerings for fp32 and int8)."""
    return rows[0] if len(rows) == 1 else None


def _shift_costs(results: list[BenchResult]) -> list[ShiftCost]:
    by_key = {(r.model, r.backend, r.precision, r.shift_lowering): r for r in results}
    costs = []
    for (model, backend, precision, lowering), r in by_key.items():
        identity = by_key.get((model, backend, precision, ShiftLowering.IDENTITY))
        if lowering in ShiftLowering.exact() and identity is not None:
            costs.append(ShiftCost(model, backend, precision, lowering, r.latency.median_ms,
                                   identity.latency.median_ms))
    return costs
