"""Core ML `.mlpackage` (ML program, iOS 17+): fp32, fp16 compute, W8 weight-only, W8A8 int8.

Converts anywhere. Core ML itself only predicts on macOS, where `load` uses `MLModel.predict`;
elsewhere `load` runs the package's MIL program in edge-mlp's numpy interpreter (`edge_mlp.mil`),
which checks the program's arithmetic, not Apple's kernels.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register

if TYPE_CHECKING:
    import numpy as np


class _Predictor(HostModel):
    """Wraps `predict(name_in -> array) -> {name_out: array}` of Core ML or the MIL interpreter."""

    def __init__(self, predict: Callable[[dict], dict], name_in: str, name_out: str) -> None:
        self.predict, self.name_in, self.name_out = predict, name_in, name_out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        out = self.predict({self.name_in: np.ascontiguousarray(x, np.float32)})[self.name_out]
        return np.asarray(out, dtype=np.float32)


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

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import coremltools as ct
        import torch

        from edge_mlp.manifest import QuantizationInfo

        from .pt2e import quantize_request

        model, x = request.model, request.example
        quantization = None
        if request.precision.calibrated:
            model, _, quantization = quantize_request(self, request)
        with request.stage("export"):
            program = torch.export.export(model, (x,)).run_decompositions({})
        compute = ct.precision.FLOAT32 if request.precision is Precision.FP32 else ct.precision.FLOAT16
        with request.stage("lower"):
            mlmodel = ct.convert(
                program, minimum_deployment_target=ct.target.iOS17, compute_precision=compute,
                convert_to="mlprogram",
            )
        if request.precision is Precision.W8:
            from coremltools.optimize.coreml import (
                OpLinearQuantizerConfig,
                OptimizationConfig,
                linear_quantize_weights,
            )

            with request.stage("quantize"):
                config = OptimizationConfig(global_config=OpLinearQuantizerConfig(
                    mode="linear_symmetric", dtype="int8", granularity="per_channel"))
                mlmodel = linear_quantize_weights(mlmodel, config=config)
            quantization = QuantizationInfo(
                scheme="weight-only int8: per-channel symmetric weights, fp16 activations and compute",
                tool="coremltools.optimize.coreml.linear_quantize_weights",
            )
        ops = op_histogram([op.op_type for op in mlmodel._mil_program.functions["main"].operations])
        path = request.work_dir / f"{request.stem}{self.suffix}"
        with request.stage("save"):
            mlmodel.save(str(path))
        spec = mlmodel.get_spec()
        return ConversionOutput(
            path=path,
            input=float_spec(spec.description.input[0].name, x.shape, "NCHW"),
            output=float_spec(spec.description.output[0].name, (1, request.num_classes), "NC"),
            quantization=quantization,
            coverage={
                "mil_op_histogram": ops,
                "compute_precision": "float32" if request.precision is Precision.FP32 else "float16",
                "minimum_deployment_target": "iOS17",
                "spec_version": spec.specificationVersion,
            },
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

        interpreter = MilInterpreter(artifact, precision=mil_precision or "fp16")
        (name_in,), (name_out,) = interpreter.inputs, interpreter.output_names
        return _Predictor(interpreter, name_in, name_out)


def _on_macos() -> bool:
    return platform.system() == "Darwin"


def _predict_with_core_ml(artifact: Path) -> HostModel:
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(artifact))
    spec = mlmodel.get_spec()
    return _Predictor(mlmodel.predict, spec.description.input[0].name, spec.description.output[0].name)
