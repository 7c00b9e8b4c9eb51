"""The one interface every export target implements, and the registry of targets.

A target class is the only home of its facts: name, artifact suffix, precisions and default, the
export forms it wants (shift lowering, delegate forms), how it converts, how its host runtime loads
an artifact (with a thread count), its bench backend name, its on-device benchmark tool and the
sample apps that run it. The CLI, bench, parity, bundle and the app layouts read these from the
registry. Adding a target is one new module with one `@register` class, plus its import line in
`__init__.py`.

This module and the class bodies of the targets import no torch or runtime: `edge-mlp --help`
reads the registry, so heavy imports live inside methods.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Protocol, Sequence

from edge_mlp.errors import EdgeMlpError, indefinite
from edge_mlp.options import ExportForms, NormForm, Precision, ShiftLowering

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn as nn

    from edge_mlp.manifest import QuantizationInfo, TensorSpec
    from edge_mlp.timing import Latency, OpProfile

StageTimer = Callable[[str], AbstractContextManager[Any]]


@dataclass
class ConversionRequest:
    model: nn.Module  # eval mode, with `edge_config`
    example: torch.Tensor  # (1, C, H, W) float32
    precision: Precision
    calibration: Sequence[torch.Tensor]  # preprocessed (1, C, H, W) batches; used by int8 only
    work_dir: Path  # staging folder: write the artifact here
    stem: str  # artifact file name without suffix
    num_classes: int
    stage: StageTimer  # `with request.stage("export"): ...` times and reports a stage
    float_modules: tuple[str, ...] = ()  # int8: module paths (blocks) to keep in float
    # Every (H, W) the artifact takes, the example's first; more than one only where the target
    # declares `multi_size`.
    sizes: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        self.precision = Precision.parse(self.precision)
        if not self.sizes:
            self.sizes = (tuple(int(s) for s in self.example.shape[-2:]),)  # type: ignore[assignment]

    def examples(self) -> list[torch.Tensor]:
        """One seeded example input per size (the first is `example`)."""
        import torch

        generator = torch.Generator().manual_seed(0)
        c = self.example.shape[1]
        return [self.example] + [torch.randn(1, c, h, w, generator=generator) for h, w in self.sizes[1:]]

    def output_specs(self, names: Sequence[str] | None = None) -> list[TensorSpec]:
        """The artifact's float outputs at the first size: the logits, or a backbone's feature maps
        (shapes from running the model once). `names`: the runtime's own output names, if it has them."""
        import torch

        config = getattr(self.model, "edge_config", None)  # None: a bare module (tests of single ops)
        features = config.features() if config is not None else []
        if not features:
            return [float_spec(names[0] if names else "logits", (1, self.num_classes), "NC")]
        with torch.no_grad():
            maps = self.model(self.example)
        return [float_spec(names[i] if names else f"stride{f.stride}", m.shape, "NCHW")
                for i, (f, m) in enumerate(zip(features, maps))]


@dataclass
class ConversionOutput:
    path: Path
    input: TensorSpec
    outputs: list[TensorSpec]  # the logits, or a backbone's feature maps in out_indices order
    quantization: QuantizationInfo | None
    coverage: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    entry_points: list[str] = field(default_factory=list)  # per request size: what runs it ("" = the default)


def size_entry(size: tuple[int, int], default: str) -> str:
    """The entry point (ExecuTorch method, LiteRT signature, Core ML function) of one extra input
    size of a multi-size artifact; the first size keeps the runtime's `default` one."""
    return f"{default}_{size[0]}x{size[1]}"


class HostModel:
    """An artifact loaded once on this machine's runtime."""

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Float32 outputs (logits, or a backbone's feature maps) of a float32 NCHW batch of one
        (int8 I/O is quantized inside); a multi-size artifact runs the entry point of x's size."""
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Float32 logits (a backbone's first output) of a float32 NCHW batch of one."""
        return self.outputs(x)[0]

    def batch(self, x: np.ndarray) -> np.ndarray:
        """Logits for a batch of any size: the artifact takes one image at a time."""
        return self.batch_outputs(x)[0]

    def batch_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output for a batch of any size, one image at a time."""
        import numpy as np

        per_image = [self.outputs(x[i : i + 1]) for i in range(len(x))]
        return [np.concatenate(column) for column in zip(*per_image)]

    def bind(self, x: np.ndarray) -> Callable[[], object]:
        """A call that runs the model on `x` with the input already in the runtime's form: what
        `edge-mlp bench` times, so input conversion does not count as inference."""
        return lambda: self(x)


class Shell(Protocol):
    """Runs a command on a phone (edge_mlp.bench.device.Adb) and returns its output."""

    def shell(self, command: str) -> str: ...


class Converter(ABC):
    target: ClassVar[str]
    suffix: ClassVar[str]
    precisions: ClassVar[tuple[Precision, ...]]
    default_precision: ClassVar[Precision]
    # What `--shift-lowering auto` uses where no committed ablation run measured this target,
    # precision and family (edge_mlp.shift_choice), and why.
    preferred_lowering: ClassVar[ShiftLowering]
    lowering_reason: ClassVar[str]
    norm_form: ClassVar[NormForm] = NormForm.STOCK  # how norms / means / space-to-depth export
    # Fold each norm's affine into the 1x1 conv / linear after it (edge_mlp.ops.fold): two
    # full-tensor ops less per norm where the delegate form spells them out.
    folds_norm_affines: ClassVar[bool] = False
    runtime_packages: ClassVar[tuple[str, ...]]
    host_runtime_package: ClassVar[str]  # what `load` runs artifacts on here, named in reports
    load_options: ClassVar[tuple[str, ...]] = ()  # keyword options `load` understands
    bench_backend: ClassVar[str]  # the runtime's name in bench results
    host_timed: ClassVar[bool] = True  # `edge-mlp bench` can time it on this host
    apps: ClassVar[tuple[str, ...]] = ()  # sample apps (edge_mlp.apps) that run its artifacts
    device_runner: ClassVar[str | None] = None  # the runtime's benchmark binary on an Android phone
    int8_scheme: ClassVar[str] = ""  # manifest quantization.scheme / .tool of its int8
    int8_tool: ClassVar[str] = ""
    # Seconds one conversion of as_mlp_mobile at 224 takes, per precision (the committed
    # benchmarks/results/convert_time.json; a test keeps them within 1.5x of it): what
    # `convert --jobs N` orders its artifacts by, the longest first, so no long one starts last.
    typical_seconds: ClassVar[Mapping[str, float]] = {}
    # How one artifact takes several input sizes (`convert --img-size 224,288x384`), "" where it
    # cannot; float precisions only (int8 calibrates one graph per size).
    multi_size: ClassVar[str] = ""

    def export_forms(self, lowering: ShiftLowering) -> ExportForms:
        """The op forms this target's artifacts are exported with."""
        return ExportForms(shift=lowering, norms=self.norm_form)

    @abstractmethod
    def convert(self, request: ConversionRequest) -> ConversionOutput:
        """Write the artifact for `request` into `request.work_dir` and describe it."""

    @abstractmethod
    def load(self, artifact: Path, threads: int | None = None, **options: Any) -> HostModel:
        """Load the artifact on the host runtime once (`threads`: the runtime's thread count;
        None: its default)."""

    def pt2e_recipe(self, float_modules: Sequence[str] = ()) -> tuple[Any, Callable | None, str]:
        """(quantizer, graph rewrite or None, note) of this target's int8, leaving `float_modules`
        unquantized; PT2E-free targets return the closest PT2E simulation (edge_mlp.sensitivity).
        Default: XNNPACKQuantizer."""
        from .pt2e import xnnpack_recipe

        return xnnpack_recipe(float_modules)

    @abstractmethod
    def coverage_summary(self, coverage: dict[str, Any]) -> str:
        """One short cell for the summary table, e.g. "212/212 delegated"."""

    def open_model(self, artifact: Path, threads: int | None = None, **options: Any) -> HostModel:
        """`load`, with the runtime's refusal of the file turned into one line. The artifact's
        sha256 matched its manifest before this, so such a file was written corrupt (or the
        manifest was edited to match it): say so instead of showing the runtime's traceback."""
        try:
            return self.load(artifact, threads=threads, **options)
        except (EdgeMlpError, MemoryError):
            raise
        except Exception as err:  # the runtime's own error types differ per target and version
            from edge_mlp.quiet import native_log

            lines = str(err).strip().splitlines() or [type(err).__name__]
            detail = "; ".join(d for d in (native_log(err), lines[0]) if d)[:300]
            raise EdgeMlpError(f"{self.host_runtime_package} cannot load {artifact.name} ({detail}): "
                               f"it is corrupt or not {indefinite(self.target)} artifact; "
                               "re-convert it") from None

    def run(self, artifact: Path, x: np.ndarray, **options: Any) -> np.ndarray:
        return self.open_model(artifact, **options)(x)

    def predict(self, artifact: Path, x: np.ndarray, **options: Any) -> np.ndarray:
        """Logits for a batch of any size (HostModel.batch)."""
        self.check_options(options)
        return self.open_model(artifact, **options).batch(x)

    def run_on_device(self, phone: Shell, model_path: str, runner_path: str, threads: int, warmup: int,
                      runs: int) -> tuple[Latency, float | None]:
        """(latency, memory MB or None) from `device_runner` on a phone; targets with one override it."""
        raise EdgeMlpError(f"{self.target} artifacts have no on-device benchmark runner")

    def profile(self, artifact: Path, x: np.ndarray, threads: int, runs: int) -> OpProfile:
        """Per-op times of `runs` inferences on the host runtime's own profiler (`bench --profile`);
        targets with one override it."""
        raise EdgeMlpError(f"{self.target} artifacts have no host profiler")

    def host_runtime(self, **options: Any) -> str:
        """The runtime `load` uses on this machine, with its version, for reports."""
        pkg = self.host_runtime_package
        return f"{pkg} {importlib.metadata.version(pkg)}"

    def runtime_versions(self) -> dict[str, str]:
        return {pkg: importlib.metadata.version(pkg) for pkg in self.runtime_packages}

    def check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - {"threads", *self.load_options})
        if unknown:
            raise EdgeMlpError(f"{', '.join(unknown)} do(es) not apply to {self.target} artifacts")

    def check_sizes(self, sizes: Sequence[tuple[int, int]], precision: Precision) -> None:
        if len(sizes) < 2:
            return
        if not self.multi_size:
            raise EdgeMlpError(f"{self.target} artifacts take one input size: convert once per size")
        if precision.calibrated:
            raise EdgeMlpError(f"{precision} calibrates one graph per input size: convert each size separately "
                               "(several sizes in one artifact are for the float precisions)")

    def check_precision(self, precision: Precision) -> None:
        if precision not in self.precisions:
            raise EdgeMlpError(
                f"precision {precision} is not supported for target {self.target} "
                f"(supported: {', '.join(self.precisions)})"
            )


_TARGETS: dict[str, Converter] = {}


def register(cls: type[Converter]) -> type[Converter]:
    _TARGETS[cls.target] = cls()
    return cls


def list_targets() -> list[str]:
    return list(_TARGETS)


def all_converters() -> list[Converter]:
    return list(_TARGETS.values())


def host_timed_targets() -> tuple[str, ...]:
    """Targets `edge-mlp bench` can time on this host."""
    return tuple(c.target for c in _TARGETS.values() if c.host_timed)


def get_converter(target: str) -> Converter:
    try:
        return _TARGETS[target]
    except KeyError:
        raise EdgeMlpError(f"unknown target {target!r}; choose one of {', '.join(_TARGETS)} or all") from None


def op_histogram(names: Sequence[str]) -> dict[str, int]:
    """Op name -> count, most frequent first."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def float_spec(name: str, shape: Sequence[int], layout: str) -> TensorSpec:
    from edge_mlp.manifest import TensorSpec

    return TensorSpec(name=name, shape=[int(s) for s in shape], dtype="float32", layout=layout)
