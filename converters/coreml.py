"""Core ML `.mlpackage` (ML program, iOS 17+): fp32, fp16 compute, W8 weight-only, W8A8 int8.

Converts anywhere. Core ML itself only predicts on macOS, where `load` uses `MLModel.predict`;
elsewhere `load` runs the package's MIL program in edge-mlp's numpy interpreter (`edge_mlp.mil`),
which checks the program's arithmetic, not Apple's kernels.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register, size_entry

if TYPE_CHECKING:
    import numpy as np


class _Predictor(HostModel):
    """Wraps `predict(name_in -> array) -> {name: array}` of Core ML or the MIL interpreter, one per
    function of a multifunction (multi-size) package, opened when first needed."""

    def __init__(self, open_function: Callable[[str], tuple[Callable[[dict], dict], str, list[str]]],
                 functions: Sequence[str]) -> None:
        self.open_function, self.functions = open_function, set(functions)
        self.opened: dict[str, tuple[Callable[[dict], dict], str, list[str]]] = {}

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import numpy as np

        function = size_entry(tuple(x.shape[-2:]), "main")
        if function not in self.functions:
            function = "main"
        if function not in self.opened:
            self.opened[function] = self.open_function(function)
        predict, name_in, names_out = self.opened[function]
        out = predict({name_in: np.ascontiguousarray(x, np.float32)})
        return [np.asarray(out[name], dtype=np.float32) for name in names_out]


def function_names(artifact: Path) -> list[str]:
    """The functions of a multifunction package (empty for a single-function one)."""
    import coremltools as ct

    return [f.name for f in ct.utils.load_spec(str(artifact)).description.functions]


@register
class CoreMLConverter(Converter):
    target = "coreml"
    suffix = ".mlpackage"
    precisions = (Precision.FP16, Precision.FP32, Precision.INT8, Precision.W8)
    default_precision = Precision.FP16
    preferred_lowering = ShiftLowering.SLICE
    lowering_reason = "slice: maps to slice_by_index/concat, which Core ML runs natively; no roll op in MIL"
    runtime_packages = ("coremltools", "torch")
    host_runtime_package = "coremltools"
    load_options = ("mil_precision",)
    bench_backend = "coreml"
    host_timed = False  # Core ML latency needs a Mac: the iOS app's benchmark mode measures it
    apps = ("ios",)
    int8_scheme = ("W8A8: per-channel symmetric int8 weights, per-tensor int8 activations "
                   "(PT2E Q/DQ graph -> MIL quantize/dequantize), fp16 compute elsewhere")
    int8_tool = "executorch XNNPACKQuantizer + torchao PT2E + coremltools"
    multi_size = "one function per size in a multifunction package (main, main_HxW; iOS 18), weights stored once"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import coremltools as ct
        import torch

        from edge_mlp.manifest import QuantizationInfo

        from .pt2e import quantize_request

        model, x = request.model, request.example
        quantization = None
        if request.precision.calibrated:
            model, _, quantization = quantize_request(self, request)
        # Several sizes: one function per size in a multifunction package (main, main_HxW), each
        # a static program; identical weights are stored once. Multifunction needs iOS 18.
        target = ct.target.iOS18 if len(request.sizes) > 1 else ct.target.iOS17
        compute = ct.precision.FLOAT32 if request.precision is Precision.FP32 else ct.precision.FLOAT16
        mlmodels = []
        for example in request.examples():
            with request.stage("export"):
                program = torch.export.export(model, (example,)).run_decompositions({})
            with request.stage("lower"):
                mlmodels.append(ct.convert(program, minimum_deployment_target=target, compute_precision=compute,
                                           convert_to="mlprogram"))
        mlmodel = mlmodels[0]
        if request.precision is Precision.W8:
            from coremltools.optimize.coreml import (
                OpLinearQuantizerConfig,
                OptimizationConfig,
                linear_quantize_weights,
            )

            config = OptimizationConfig(global_config=OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel"))
            with request.stage("quantize"):
                mlmodels = [linear_quantize_weights(m, config=config) for m in mlmodels]
            mlmodel = mlmodels[0]
            quantization = QuantizationInfo(
                scheme="weight-only int8: per-channel symmetric weights, fp16 activations and compute",
                tool="coremltools.optimize.coreml.linear_quantize_weights",
            )
        ops = op_histogram([op.op_type for op in mlmodel._mil_program.functions["main"].operations])
        path = request.work_dir / f"{request.stem}{self.suffix}"
        spec = mlmodel.get_spec()
        entries = ["main"] + [size_entry(size, "main") for size in request.sizes[1:]]
        with request.stage("save"):
            if len(mlmodels) == 1:
                mlmodel.save(str(path))
            else:
                _save_multifunction(mlmodels, entries, request.work_dir, path)
        return ConversionOutput(
            path=path,
            input=float_spec(spec.description.input[0].name, x.shape, "NCHW"),
            outputs=request.output_specs([o.name for o in spec.description.output]),
            quantization=quantization,
            coverage={
                "mil_op_histogram": ops,
                "compute_precision": "float32" if request.precision is Precision.FP32 else "float16",
                "minimum_deployment_target": "iOS18" if len(mlmodels) > 1 else "iOS17",
                "spec_version": spec.specificationVersion,
            },
            entry_points=entries,
        )

    def coverage_summary(self, coverage: dict) -> str:
        ops = coverage["mil_op_histogram"]
        return f"{sum(n for op, n in ops.items() if op != 'const')} MIL ops"

    def host_runtime(self, mil_precision: str | None = None) -> str:
        if _on_macos():
            return f"Core ML via coremltools {importlib.metadata.version('coremltools')} MLModel.predict"
        rounding = "kept in float32" if mil_precision == "fp32" else "rounded after each op"
        return f"edge-mlp MIL interpreter (numpy, fp16-typed tensors {rounding}; Core ML itself needs macOS)"

    def load(self, artifact: Path, threads: int | None = None, mil_precision: str | None = None) -> HostModel:
        """`mil_precision` ('fp16' default, or 'fp32') selects the interpreter's mode off macOS;
        `threads` does not apply (Core ML and the interpreter choose their own)."""
        if _on_macos() and mil_precision is None:
            return _predict_with_core_ml(artifact)
        from edge_mlp.mil import MilInterpreter

        def open_function(function: str) -> tuple[Callable[[dict], dict], str, list[str]]:
            interpreter = MilInterpreter(artifact, precision=mil_precision or "fp16", function=function)
            (name_in,) = interpreter.inputs
            return interpreter, name_in, list(interpreter.output_names)

        predictor = _Predictor(open_function, function_names(artifact))
        predictor.opened["main"] = open_function("main")  # a package the interpreter refuses fails here
        return predictor


def _on_macos() -> bool:
    return platform.system() == "Darwin"


def _predict_with_core_ml(artifact: Path) -> HostModel:
    import coremltools as ct

    def open_function(function: str) -> tuple[Callable[[dict], dict], str, list[str]]:
        names = function_names(artifact)
        mlmodel = ct.models.MLModel(str(artifact), function_name=function if names else None)
        spec = mlmodel.get_spec()
        description = next((f for f in spec.description.functions if f.name == function), spec.description)
        return mlmodel.predict, description.input[0].name, [o.name for o in description.output]

    predictor = _Predictor(open_function, function_names(artifact))
    predictor.opened["main"] = open_function("main")
    return predictor


def _save_multifunction(mlmodels: list, entries: list[str], work: Path, path: Path) -> None:
    """Each size's package saved apart, then merged into one multifunction package at `path`."""
    import shutil

    import coremltools as ct

    descriptor = ct.utils.MultiFunctionDescriptor()
    parts = []
    for mlmodel, entry in zip(mlmodels, entries):
        part = work / f"part-{entry}.mlpackage"
        mlmodel.save(str(part))
        descriptor.add_function(str(part), src_function_name="main", target_function_name=entry)
        parts.append(part)
    descriptor.default_function_name = "main"
    ct.utils.save_multifunction(descriptor, str(path))
    for part in parts:
        shutil.rmtree(part)
