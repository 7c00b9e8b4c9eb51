"""ONNX `.onnx` (fp32 via the TorchScript exporter, opset 17; int8 via ONNX Runtime static QDQ).

Why fp32 is the default here, measured (as_mlp_mobile at 224, 2 threads, ONNX Runtime CPU on x86):
fp32 30.0 ms; int8 with int8 activations (S8S8) 68.0 ms, because ORT fuses no S8S8 QDQ Conv on x86
and runs each conv in float between 1,050 DequantizeLinear nodes; with uint8 activations (U8S8) its
QLinearConv takes the convs (8.6 ms vs 16.8 in fp32) but needs an NHWC Transpose pair around each
one (128) plus Quantize/Dequantize at every float op, 33.0 ms with only the convs and matmuls
quantized (35.4 ms with the elementwise ops too, whose QLinearAdd / QLinearMul are slower than the
float ones). ORT's profiler (`edge-mlp bench --profile`) shows it. int8 stays available: 3.3x
smaller, and the scheme ORT runs fastest on x86 and arm64 alike (U8S8).
"""

from __future__ import annotations

import warnings

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register

if TYPE_CHECKING:
    import numpy as np

    from edge_mlp.timing import OpProfile

OPSET = 17
# ORT's QLinear elementwise kernels are slower than its float ones: only these run in int8.
_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


class _Session(HostModel):
    def __init__(self, artifact: Path, threads: int | None, profile_prefix: str | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        # ORT's intra-op threads spin after every call by default, taking the cores from whatever
        # runs next (bench interleaves backends round-robin): let them sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.bind(x)())  # type: ignore[call-overload]


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
    default_precision = Precision.FP32  # ORT's int8 is slower than its fp32 on CPU: see the docstring
    preferred_lowering = ShiftLowering.SLICE
    lowering_reason = "slice: exports to Pad/Slice/Concat directly; roll becomes extra Slice/Concat pairs"
    runtime_packages = ("onnx", "onnxruntime", "torch")
    host_runtime_package = "onnxruntime"
    bench_backend = "onnxruntime-cpu"
    int8_scheme = ("static QDQ of Conv / MatMul / Gemm: per-channel symmetric int8 weights, per-tensor uint8 "
                   "activations (MinMax; U8S8, ORT's fast path); other ops stay float")
    int8_tool = "onnxruntime.quantization.quantize_static"
    multi_size = "one graph with dynamic height and width axes"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import onnx
        import torch

        from edge_mlp.manifest import QuantizationInfo

        x = request.example
        outputs = request.output_specs()
        names = [o.name for o in outputs]
        # Several sizes: one graph with dynamic height and width axes (the exporter keeps the
        # shapes symbolic for these models; each size is checked by parity, not assumed).
        dynamic = None
        if len(request.sizes) > 1:
            dynamic = {"input": {2: "height", 3: "width"},
                       **{n: {2: f"{n}_height", 3: f"{n}_width"} for n, o in zip(names, outputs) if o.layout == "NCHW"}}
        path = request.work_dir / f"{request.stem}{self.suffix}"
        fp32_path = path if request.precision is Precision.FP32 else request.work_dir / "fp32.onnx"
        with request.stage("export"), torch.no_grad(), warnings.catch_warnings():
            # The TorchScript tracer warns wherever our model code reads a size as a Python value
            # (the shift's channel groups, PatchMerging's even-size check): the artifact is built
            # for one input size, so baking those values in is the intent. Only warnings raised
            # from edge_mlp's own modules are dropped.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"edge_mlp\.")
            torch.onnx.export(
                request.model, (x,), str(fp32_path), dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=names, dynamic_axes=dynamic,
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
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    op_types_to_quantize=list(_QUANTIZED_OPS),
                )
            for tmp in (fp32_path, prepared):
                tmp.unlink()
            quantization = QuantizationInfo(scheme=self.int8_scheme, tool=self.int8_tool)
        graph = onnx.load(str(path)).graph
        coverage = {"op_histogram": op_histogram([n.op_type for n in graph.node]), "opset": OPSET}
        return ConversionOutput(
            path=path,
            input=float_spec("input", x.shape, "NCHW"),
            outputs=outputs,
            quantization=quantization,
            coverage=coverage,
            entry_points=[""] * len(request.sizes),
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

    def profile(self, artifact: Path, x: np.ndarray, threads: int, runs: int) -> OpProfile:
        """ONNX Runtime's own profiler: one row per ONNX op type as ORT ran it after its graph
        optimizations (fused nodes keep the fused op's name, e.g. QLinearConv, FusedConv)."""
        import json
        import tempfile

        from edge_mlp.timing import OpProfile

        with tempfile.TemporaryDirectory(prefix="edge-mlp-ort-profile-") as tmp:
            session = _Session(artifact, threads, profile_prefix=str(Path(tmp) / "ort"))
            call = session.bind(x)
            call()  # warm-up: dropped below
            for _ in range(runs):
                call()
            trace = json.loads(Path(session.session.end_profiling()).read_text())
        model_runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                            if e.get("cat") == "Session" and e.get("name") == "model_run")[-runs:]
        per_run: list[list[tuple[str, float]]] = [[] for _ in model_runs]
        for e in trace:
            if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
                continue
            for i, (start, end) in enumerate(model_runs):
                if start <= e["ts"] <= end:
                    per_run[i].append((e.get("args", {}).get("op_name", e["name"]), e["dur"] / 1000.0))
                    break
        totals = [(end - start) / 1000.0 for start, end in model_runs]
        return OpProfile.from_runs("ONNX Runtime profiler: ops as ORT ran them after graph optimization",
                                   per_run, totals)
