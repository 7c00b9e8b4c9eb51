"""ONNX `.onnx` (fp32 via the TorchScript exporter, opset 20; int8 via ONNX Runtime static QDQ).

What makes ONNX Runtime's int8 pay on x86 (as_mlp_mobile at 224, 2 threads; `edge-mlp bench
--profile` shows each cost):
- opset 20, so GELU exports as one `Gelu` node. At opset 17 it was Div/Erf/Add/Mul/Mul, which ORT
  fuses back into its Gelu kernel in fp32 but not between the QDQ nodes of an int8 graph (36 of 48
  GELUs stayed five ops).
- uint8 activations (U8S8): ORT fuses S8S8 QDQ convs into nothing on x86 and runs each in float
  between DequantizeLinear nodes (68 ms against 30 ms in fp32); U8S8 becomes QLinearConv.
- only Conv / MatMul / Gemm run in int8: ORT's QLinearAdd / QLinearMul are slower than its float
  ones, and GELU and the norms have no int8 kernel.
- each GroupNorm(1, C) normalized channels-last in int8 graphs (`_group_norms_channels_last`). ORT
  runs QLinearConv channels-last and wraps it in NCHW<->NHWC Transposes that its layout optimizer
  cancels through elementwise ops but not through the norm's Reshape: 116 Transposes stayed in
  as_mlp_mobile. Normalizing over all of C, H, W does not depend on the layout, so the norm can
  take the NHWC tensor; then 2 are left.
- the norms' affines folded into the next 1x1 conv (`folds_norm_affines`), as on the delegates.
"""

from __future__ import annotations

import warnings

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from edge_mlp.timing import OpProfile

OPSET = 20  # the first with a Gelu op: one node instead of five (see the docstring)
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


def _group_norms_channels_last(model: onnx.ModelProto) -> int:
    """Rewrite each GroupNorm(1, C) the exporter spelled `Reshape(x, [N, 1, -1])` ->
    InstanceNormalization -> `Reshape(_, Shape(x))` to take x channels-last (a Transpose before, one
    after). The norm spans all of C, H, W, so the result is the same up to the order of the float
    sums; what changes is that ORT's layout optimizer now meets a Transpose pair it can cancel
    against the NHWC ones it puts around each QLinearConv. Returns how many norms it rewrote."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    before: dict[int, str] = {}  # id(node) -> the NHWC tensor it reads instead of x
    after: set[int] = set()
    for norm in graph.node:
        if norm.op_type != "InstanceNormalization":
            continue
        flatten = producer.get(norm.input[0])
        users = consumers.get(norm.output[0], [])
        if flatten is None or flatten.op_type != "Reshape" or len(users) != 1 or users[0].op_type != "Reshape":
            continue
        target = constants.get(flatten.input[1])
        shape = producer.get(users[0].input[1])
        x = flatten.input[0]
        if (target is None or target.shape != (3,) or list(target[1:]) != [1, -1] or shape is None
                or shape.op_type != "Shape" or shape.input[0] != x or len(shape.attribute) != 0):
            continue
        if f"{x}_nhwc" in before.values():  # x feeds two norms: leave the second as it is
            continue
        before[id(flatten)] = before[id(shape)] = f"{x}_nhwc"
        after.add(id(users[0]))
    nodes, emitted = [], set()
    for node in graph.node:
        if id(node) in before:
            x, nhwc = node.input[0], before[id(node)]
            if nhwc not in emitted:  # before the first of the Reshape and the Shape that read it
                nodes.append(helper.make_node("Transpose", [x], [nhwc], perm=[0, 2, 3, 1], name=f"{node.name}_nhwc"))
                emitted.add(nhwc)
            node.input[0] = nhwc
        nodes.append(node)
        if id(node) in after:
            out = node.output[0]
            node.output[0] = f"{out}_nhwc"
            nodes.append(helper.make_node("Transpose", [node.output[0]], [out], perm=[0, 3, 1, 2],
                                          name=f"{node.name}_nchw"))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(after)


@register
class OnnxConverter(Converter):
    target = "onnx"
    suffix = ".onnx"
    precisions = (Precision.FP32, Precision.INT8)
    typical_seconds = {"fp32": 1.2, "int8": 7}
    default_precision = Precision.INT8  # faster than fp32 in ORT on CPU for all three families (README Latency)
    folds_norm_affines = True
    preferred_lowering = ShiftLowering.SLICE
    lowering_reason = "slice: exports to Pad/Slice/Concat directly; roll becomes extra Slice/Concat pairs"
    runtime_packages = ("onnx", "onnxruntime", "torch")
    host_runtime_package = "onnxruntime"
    bench_backend = "onnxruntime-cpu"
    int8_scheme = ("static QDQ of Conv / MatMul / Gemm: per-channel symmetric 7-bit weights (reduce_range), per-tensor uint8 "
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
                graph_in = onnx.load(str(fp32_path))
                if _group_norms_channels_last(graph_in):
                    onnx.save(graph_in, str(fp32_path))
                quant_pre_process(str(fp32_path), str(prepared))
            scopes = [scope for name in request.float_modules for scope in _onnx_scopes(name)]
            excluded = [n.name for n in onnx.load(str(prepared)).graph.node if any(s in n.name for s in scopes)]
            with request.stage("calibrate"):
                quantize_static(
                    str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    op_types_to_quantize=list(_QUANTIZED_OPS),
                    # 7-bit weights: x86 CPUs without VNNI run U8S8 with VPMADDUBSW, whose int16 pair
                    # sums saturate with full-range weights (as_mlp_mobile top-1 agreement 97.9 % ->
                    # 99.4 % on such a CPU; ORT's own advice). Same kernels, same speed.
                    reduce_range=True,
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
