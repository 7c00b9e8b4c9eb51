"""ONNX `.onnx` (fp32 via the TorchScript exporter, opset 17; int8 via ONNX Runtime static QDQ)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register

if TYPE_CHECKING:
    import numpy as np

OPSET = 17


class _Session(HostModel):
    def __init__(self, artifact: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def bind(self, x: np.ndarray) -> Callable[[], object]:
        import numpy as np

        feed = {self.name: np.ascontiguousarray(x, np.float32)}
        return lambda: self.session.run(None, feed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.bind(x)()[0]


def _onnx_scopes(module: str) -> set[str]:
    """How the TorchScript exporter spells a module's scope in node names: list indices stay on
    their parent ("/layers.0/blocks.1/..."), nested containers use the full path ("/network.0.0/")."""
    merged: list[str] = []
    for part in module.split("."):
        if part.isdigit() and merged:
            merged[-1] += f".{part}"
        else:
            merged.append(part)
    return {f"/{'/'.join(merged)}/", f"/{module}/"}


@register
class OnnxConverter(Converter):
    target = "onnx"
    suffix = ".onnx"
    precisions = (Precision.FP32, Precision.INT8)
    default_precision = Precision.INT8
    preferred_lowering = ShiftLowering.SLICE
    lowering_reason = "slice: exports to Pad/Slice/Concat directly; roll becomes extra Slice/Concat pairs"
    runtime_packages = ("onnx", "onnxruntime", "torch")
    host_runtime_package = "onnxruntime"
    bench_backend = "onnxruntime-cpu"
    int8_scheme = "static int8 QDQ: per-channel symmetric weights, per-tensor activations (MinMax)"
    int8_tool = "onnxruntime.quantization.quantize_static"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import onnx
        import torch

        from edge_mlp.manifest import QuantizationInfo

        x = request.example
        path = request.work_dir / f"{request.stem}{self.suffix}"
        fp32_path = path if request.precision is Precision.FP32 else request.work_dir / "fp32.onnx"
        with request.stage("export"), torch.no_grad():
            torch.onnx.export(
                request.model, (x,), str(fp32_path), dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=["logits"],
            )
        quantization = None
        if request.precision.calibrated:
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process

            batches = [{"input": b.numpy()} for b in request.calibration]

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter(batches)

                def get_next(self) -> dict | None:
                    return next(self._it, None)

            prepared = request.work_dir / "prepared.onnx"
            with request.stage("quantize"):
                quant_pre_process(str(fp32_path), str(prepared))
            scopes = [scope for name in request.float_modules for scope in _onnx_scopes(name)]
            excluded = [n.name for n in onnx.load(str(prepared)).graph.node if any(s in n.name for s in scopes)]
            with request.stage("calibrate"):
                quantize_static(
                    str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                )
            for tmp in (fp32_path, prepared):
                tmp.unlink()
            quantization = QuantizationInfo(scheme=self.int8_scheme, tool=self.int8_tool)
        graph = onnx.load(str(path)).graph
        coverage = {"op_histogram": op_histogram([n.op_type for n in graph.node]), "opset": OPSET}
        return ConversionOutput(
            path=path,
            input=float_spec("input", x.shape, "NCHW"),
            output=float_spec("logits", (1, request.num_classes), "NC"),
            quantization=quantization,
            coverage=coverage,
        )

    def coverage_summary(self, coverage: dict) -> str:
        return f"{sum(coverage['op_histogram'].values())} nodes"

    def pt2e_recipe(self, float_modules: Sequence[str] = ()) -> tuple[Any, Callable | None, str]:
        from .pt2e import xnnpack_recipe

        quantizer, rewrite, _ = xnnpack_recipe(float_modules)
        return quantizer, rewrite, ("XNNPACKQuantizer PT2E as a stand-in for ONNX Runtime's static QDQ "
                                    "(same scheme: per-channel symmetric weights, per-tensor activations)")

    def load(self, artifact: Path, threads: int | None = None, **options: Any) -> HostModel:
        return _Session(artifact, threads)
