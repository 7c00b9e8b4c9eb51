"""The one interface every export target implements, and the registry of targets.

A converter turns (model, example input, precision, calibration data) into one artifact in a
staging folder and describes it (I/O tensors, quantization, coverage). It also runs the artifact
on its host runtime, which tests and parity checks use. Adding a target is one new module with one
`@register` class.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch
import torch.nn as nn

from edge_mlp.errors import EdgeMlpError
from edge_mlp.manifest import QuantizationInfo, TensorSpec

PRECISIONS = ("fp32", "fp16", "int8", "w8")
StageTimer = Callable[[str], AbstractContextManager[Any]]


@dataclass
class ConversionRequest:
    model: nn.Module  # eval mode, with `edge_config`
    example: torch.Tensor  # (1, C, H, W) float32
    precision: str
    calibration: Sequence[torch.Tensor]  # preprocessed (1, C, H, W) batches; used by int8 only
    work_dir: Path  # staging folder: write the artifact here
    stem: str  # artifact file name without suffix
    num_classes: int
    stage: StageTimer  # `with request.stage("export"): ...` times and reports a stage
    float_modules: tuple[str, ...] = ()  # int8: module paths (blocks) to keep in float


@dataclass
class ConversionOutput:
    path: Path
    input: TensorSpec
    output: TensorSpec
    quantization: QuantizationInfo | None
    coverage: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Converter(ABC):
    target: ClassVar[str]
    suffix: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    default_precision: ClassVar[str]
    # What `--shift-lowering auto` uses for this target, and the measurement behind the choice.
    preferred_lowering: ClassVar[str]
    lowering_reason: ClassVar[str]
    runtime_packages: ClassVar[tuple[str, ...]]
    host_runtime_package: ClassVar[str]  # what `load` runs artifacts on here, named in reports
    load_options: ClassVar[tuple[str, ...]] = ()  # keyword options `load` understands

    @abstractmethod
    def convert(self, request: ConversionRequest) -> ConversionOutput:
        """Write the artifact for `request` into `request.work_dir` and describe it."""

    @abstractmethod
    def load(self, artifact: Path, **options: Any) -> Callable[[np.ndarray], np.ndarray]:
        """Load the artifact on the host runtime once: the result maps a float32 NCHW batch of
        one to float32 logits (int8 I/O is quantized and dequantized inside)."""

    def run(self, artifact: Path, x: np.ndarray, **options: Any) -> np.ndarray:
        return self.load(artifact, **options)(x)

    def predict(self, artifact: Path, x: np.ndarray, **options: Any) -> np.ndarray:
        """Logits for a batch of any size: the artifact takes one image at a time."""
        self.check_options(options)
        run = self.load(artifact, **options)
        return np.concatenate([run(x[i : i + 1]) for i in range(len(x))])

    def host_runtime(self, **options: Any) -> str:
        """The runtime `load` uses on this machine, with its version, for reports."""
        pkg = self.host_runtime_package
        return f"{pkg} {importlib.metadata.version(pkg)}"

    def pt2e_recipe(self, float_modules: Sequence[str] = ()) -> tuple[Any, Callable | None, str]:
        """(quantizer, graph rewrite or None, note) of this target's int8, leaving `float_modules`
        unquantized; PT2E-free targets return the XNNPACK recipe as the closest simulation."""
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        from ._pt2e import chain, float_norms, mark_float, slices_share_qparams

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        rewrite = chain(mark_float(float_modules) if float_modules else None, float_norms,
                        slices_share_qparams(quantizer))
        return quantizer, rewrite, "XNNPACKQuantizer PT2E (per-channel symmetric weights, per-tensor activations)"

    @abstractmethod
    def coverage_summary(self, coverage: dict[str, Any]) -> str:
        """One short cell for the summary table, e.g. "212/212 delegated"."""

    def runtime_versions(self) -> dict[str, str]:
        return {pkg: importlib.metadata.version(pkg) for pkg in self.runtime_packages}

    def check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - set(self.load_options))
        if unknown:
            raise EdgeMlpError(f"{', '.join(unknown)} do(es) not apply to {self.target} artifacts")

    def check_precision(self, precision: str) -> None:
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


def get_converter(target: str) -> Converter:
    try:
        return _TARGETS[target]
    except KeyError:
        raise EdgeMlpError(f"unknown target {target!r}; choose one of {', '.join(_TARGETS)} or all") from None


def in_modules(node: torch.fx.Node, modules: Sequence[str]) -> bool:
    """Whether an exported graph node comes from inside one of the named modules."""
    paths = {path for path, _ in (node.meta.get("nn_module_stack") or {}).values()}
    return any(m in paths for m in modules)


def float_spec(name: str, shape: Sequence[int], layout: str) -> TensorSpec:
    return TensorSpec(name=name, shape=[int(s) for s in shape], dtype="float32", layout=layout)
