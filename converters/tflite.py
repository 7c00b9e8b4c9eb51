"""TFLite / LiteRT `.tflite` via litert-torch (fp32, or int8 via its PT2EQuantizer)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from edge_mlp.errors import EdgeMlpError
from edge_mlp.options import NormForm, Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, Shell, op_histogram, register, size_entry

if TYPE_CHECKING:
    import numpy as np
    import torch

    from edge_mlp.manifest import TensorSpec
    from edge_mlp.timing import Latency, OpProfile

_STAT_LINE = re.compile(r"count=(?P<count>\d+) first=\S+ curr=\S+ min=(?P<min>[\d.e+]+) max=(?P<max>[\d.e+]+) "
                        r"avg=(?P<avg>[\d.e+]+) std=(?P<std>[\d.e+]+)"
                        r"(?: p5=(?P<p5>[\d.e+]+) median=(?P<median>[\d.e+]+) p95=(?P<p95>[\d.e+]+))?")
_TIMINGS = re.compile(r"Inference timings in us: Init: (?P<init>[\d.e+]+), First inference: (?P<first>[\d.e+]+), "
                      r"Warmup \(avg\): [\d.e+]+, Inference \(avg\): (?P<avg>[\d.e+]+)")
_MEMORY = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     r"init=(?P<init>[\d.e+]+) overall=(?P<overall>[\d.e+]+)")


def _interpreter(path: Path, delegates: bool = True, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edge_mlp.quiet import native_stderr

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        it = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver, num_threads=threads)
        it.allocate_tensors()
    return it


def _spec(detail: dict, layout: str) -> TensorSpec:
    import numpy as np

    from edge_mlp.manifest import QuantParams, TensorSpec

    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    quant = QuantParams(float(scale), int(zero_point)) if dtype in ("int8", "uint8") else None
    return TensorSpec(detail["name"], [int(s) for s in detail["shape"]], dtype, layout, quant)


def _fixed_softmax_qparams(quantizer) -> Callable[[torch.fx.GraphModule], None]:
    """Let litert's quantizer give every softmax TFLite's fixed int8 output params (1/256, -128).

    Its annotator does so only for `aten._softmax` whose input is an already-annotated op output.
    CycleMLP's gate reshapes a linear output right before its softmax, and the reshape would only
    be annotated later (by propagation), so the softmax got observed params and the TFLite runtime
    rejected it. We spell softmax as `_softmax` and annotate the reshape as sharing its input's
    params, as propagation would.
    """
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    act_qspec = quantizer.global_config.input_activation
    reshapes = (torch.ops.aten.reshape.default, torch.ops.aten.view.default)

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if node.op != "call_function" or node.target != torch.ops.aten.softmax.int:
                continue
            if len(node.args) > 2 and node.args[2] is not None:
                continue  # softmax with a dtype cast: leave it alone
            node.target = torch.ops.aten._softmax.default
            node.args = (node.args[0], node.args[1], False)
            node.kwargs = {}
            source = node.args[0]
            if source.op == "call_function" and source.target in reshapes:
                producer = source.args[0]
                source.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={producer: act_qspec},
                    output_qspec=SharedQuantizationSpec((producer, source)),
                    _annotated=True,
                )
        graph.recompile()

    return rewrite


def _backbone_norms(model: torch.nn.Module) -> tuple[str, ...]:
    """The GroupNorms (AS-MLP's) a backbone keeps in float in LiteRT int8. litert-torch quantizes
    their mean / variance arithmetic too; a classifier's pooled logits average that error out, a
    feature map does not (as_mlp_mobile demo, 64 px, 32 images: worst-image cosine of the stride-32
    map 0.959 with int8 norms, 0.997 with float ones; benchmarks/backbones.py has the full-size rows)."""
    import torch.nn as nn

    config = getattr(model, "edge_config", None)
    if config is None or not config.features_only:
        return ()
    return tuple(name for name, m in model.named_modules() if isinstance(m, nn.GroupNorm))


def input_tensor(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A float32 NCHW batch as the interpreter's input: quantized with its params for int8 I/O."""
    import numpy as np

    from edge_mlp.preprocess import quantize_input

    x = np.ascontiguousarray(x, np.float32)
    if np.dtype(detail["dtype"]) == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    return quantize_input(x, scale, zero_point, detail["dtype"])


@contextmanager
def _clear_errors(request: ConversionRequest) -> Iterator[None]:
    """litert-torch reports MLIR failures as long ValueErrors: make them one actionable line."""
    try:
        yield
    except ValueError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = ""
        if "batch_matmul" in first:
            hint = (" (litert-torch 0.10 cannot lower a Linear over a 1x1 feature map: use a larger "
                    "--img-size, e.g. 64 or more for CycleMLP)")
        name = request.model.edge_config.name
        raise EdgeMlpError(f"TFLite conversion of {name} failed: {first}{hint}") from None


@contextmanager
def _greedy_layout_partitioner() -> Iterator[None]:
    """litert-torch picks NCHW or NHWC per node; its default min-cut partitioner left 4 interior
    TRANSPOSEs in a two-stage int8 AS-MLP that its greedy one avoids (both leave 1, the input's,
    in the full mobile models). It reads an environment variable: set it for this conversion only."""
    import os

    key, before = "LAYOUT_OPTIMIZE_PARTITIONER", os.environ.get("LAYOUT_OPTIMIZE_PARTITIONER")
    os.environ[key] = "GREEDY"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


# Functions litert-torch's layout pass puts into the graph whose bodies hold no op that the passes
# between its canonicalization and its pre-lower decomposition look for (its composite builders
# match gelu, pools, pads, upsampling, embedding; conv and permute are not among them).
_LAYOUT_FUNCTIONS = ("conv_nhwc", "tensor_to_nhwc", "tensor_to_nchw")


def _only_layout_functions(exported_program: Any) -> bool:
    """Whether every node that is not an ATen op or a builtin is one of _LAYOUT_FUNCTIONS."""
    import torch
    from litert_torch.fx_infra import _safe_run_decompositions as safe

    functions = [n.target for n in exported_program.graph.nodes if n.op == "call_function"
                 and not isinstance(n.target, (torch._ops.OpOverload, torch._ops.OperatorBase,
                                               torch._ops.OpOverloadPacket))
                 and n.target not in safe._BUILTIN_OPERATORS]
    return bool(functions) and all(getattr(f, "__name__", "") in _LAYOUT_FUNCTIONS for f in functions)


@contextmanager
def one_retrace_for_layout() -> Iterator[list[int]]:
    """litert-torch re-traces the whole program three times (about 9 s each for as_mlp_mobile int8
    at 224). The second, its CanonicalizePass after the layout pass, only inlines the layout pass's
    conv / transpose functions into ATen ops; its pre-lower decomposition re-traces unconditionally
    a few passes later and inlines them the same way. Within, the canonicalization is skipped when
    those functions are all it would inline: the `.tflite` bytes stay the same
    (tests/test_lean_lowering.py) and LiteRT's lowering takes about a third less time. Yields the
    node count of each program whose canonicalization it skipped."""
    from litert_torch._convert import fx_passes
    from litert_torch.fx_infra import pass_base

    canonicalize = fx_passes.CanonicalizePass.call
    skipped: list[int] = []

    def call(self: Any, exported_program: Any) -> Any:
        if not _only_layout_functions(exported_program):
            return canonicalize(self, exported_program)
        skipped.append(len(exported_program.graph.nodes))
        return pass_base.ExportedProgramPassResult(exported_program, False)

    fx_passes.CanonicalizePass.call = call
    try:
        yield skipped
    finally:
        fx_passes.CanonicalizePass.call = canonicalize


@contextmanager
def _lowering(request: ConversionRequest) -> Iterator[None]:
    """The "lower" stage: litert-torch's conversion with our settings, its errors as one line."""
    from edge_mlp.quiet import native_stderr

    with request.stage("lower"), _clear_errors(request), _greedy_layout_partitioner(), one_retrace_for_layout(), \
            native_stderr():
        yield


# Ops LiteRT 2.3's XNNPACK delegate runs in float only, which litert-torch 0.10 nevertheless fuses
# into int8 kernels when int8 tensors surround them (DEQUANTIZE-op-QUANTIZE): those ran outside
# the delegate, on one thread, each a partition boundary (as_mlp_mobile int8 at 224: 48 GELUs,
# 37 partitions). SOFTMAX only with beta 1, the delegate's condition.
_FLOAT_ONLY_IN_XNNPACK = ("GELU", "SOFTMAX")


def float_islands_in_delegate(path: Path) -> dict[str, int]:
    """Rewrite each int8 op of `_FLOAT_ONLY_IN_XNNPACK` in the .tflite at `path` as DEQUANTIZE ->
    the float op -> QUANTIZE into the same int8 tensor, so XNNPACK runs all three. LiteRT's int8 GELU
    is a table of that float function requantized, so its codes stay equal; its int8 softmax only
    approximates the float one (the demo CycleMLP on the 10k test set: top-1 89.10 -> 89.04 %).
    Returns how many of each op were rewritten; the file is rewritten only when some were."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}

    def builtin(code: Any) -> str:
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")

    def opcode_index(name: str) -> int:
        for i, code in enumerate(model.operatorCodes):
            if builtin(code) == name:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = getattr(schema.BuiltinOperator, name)
        code.deprecatedBuiltinCode = min(code.builtinCode, 127)
        code.version = 2  # the int8 side of (de)quantize
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def takes(op: Any, name: str, tensors: list) -> bool:
        if name not in _FLOAT_ONLY_IN_XNNPACK or len(op.inputs) != 1 or len(op.outputs) != 1:
            return False
        if name == "SOFTMAX" and getattr(op.builtinOptions, "beta", 1.0) != 1.0:
            return False
        return all(tensors[t].type == schema.TensorType.INT8 for t in (op.inputs[0], op.outputs[0]))

    rewritten: dict[str, int] = {}
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            name = builtin(model.operatorCodes[op.opcodeIndex])
            if not takes(op, name, graph.tensors):
                operators.append(op)
                continue
            floats = []
            for index, suffix in ((op.inputs[0], b";float_in"), (op.outputs[0], b";float_out")):
                quantized, tensor = graph.tensors[index], schema.TensorT()
                tensor.shape, tensor.shapeSignature = quantized.shape, quantized.shapeSignature
                tensor.type, tensor.buffer, tensor.name = schema.TensorType.FLOAT32, 0, quantized.name + suffix
                graph.tensors.append(tensor)
                floats.append(len(graph.tensors) - 1)
            dequantize, quantize = schema.OperatorT(), schema.OperatorT()
            dequantize.opcodeIndex, dequantize.inputs, dequantize.outputs = opcode_index("DEQUANTIZE"), \
                [op.inputs[0]], [floats[0]]
            quantize.opcodeIndex, quantize.inputs, quantize.outputs = opcode_index("QUANTIZE"), \
                [floats[1]], [op.outputs[0]]
            op.inputs, op.outputs = [floats[0]], [floats[1]]
            operators += [dequantize, op, quantize]
            rewritten[name] = rewritten.get(name, 0) + 1
        graph.operators = operators
    if rewritten:
        path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return rewritten


DEFAULT_SIGNATURE = "serving_default"


def _output_number(name: str) -> int:
    """litert-torch names a signature's outputs output_0, output_1, ... in the model's order."""
    digits = name.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 0


def signature_io(runner) -> tuple[tuple[str, dict], list[tuple[str, dict]]]:
    """(input name and detail, outputs in the model's order) of one signature runner."""
    (inp,) = runner.get_input_details().items()
    outs = sorted(runner.get_output_details().items(), key=lambda kv: _output_number(kv[0]))
    return inp, outs


def _dequantized(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    import numpy as np

    if np.dtype(detail["dtype"]) != np.float32:
        scale, zero_point = detail["quantization"]
        y = (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)


class _Interpreter(HostModel):
    def __init__(self, artifact: Path, threads: int | None) -> None:
        self.it = _interpreter(artifact, threads=threads)  # XNNPACK delegate by default
        self.inp, self.out = self.it.get_input_details()[0], self.it.get_output_details()[0]
        self.signatures = set(self.it.get_signature_list())
        self.runners: dict[str, Any] = {}

    def bind(self, x: np.ndarray) -> Callable[[], object]:
        if self.signatures:
            # Through the signature runner even for the default signature: once a runner exists,
            # the interpreter refuses a plain invoke() (the runner holds a reference to it).
            runner, (name, detail) = self._runner(self._signature(x))
            feed_kw = {name: input_tensor(x, detail)}
            return lambda: runner(**feed_kw)
        feed = input_tensor(x, self.inp)

        def call() -> None:
            self.it.set_tensor(self.inp["index"], feed)
            self.it.invoke()

        return call

    def _signature(self, x: np.ndarray) -> str:
        """The signature of x's size: the default, or `serving_default_HxW` of a multi-size model."""
        key = size_entry(tuple(x.shape[-2:]), DEFAULT_SIGNATURE)
        return key if key in self.signatures else DEFAULT_SIGNATURE

    def _runner(self, key: str):
        if key not in self.runners:
            runner = self.it.get_signature_runner(key)
            self.runners[key] = (runner, *signature_io(runner))
        return self.runners[key][:2]

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        key = self._signature(x)
        if key not in self.signatures:  # a model without signatures: its one output
            self.bind(x)()
            return [_dequantized(self.it.get_tensor(self.out["index"]), self.out)]
        runner, (name, detail) = self._runner(key)
        result = runner(**{name: input_tensor(x, detail)})
        return [_dequantized(result[n], d) for n, d in self.runners[key][2]]


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """LiteRT/TFLite `benchmark_model` output -> timings in ms (the last stat line is the measured run,
    earlier ones are warm-up) and memory in MB."""
    stats = list(_STAT_LINE.finditer(text))
    timings = _TIMINGS.search(text)
    if not stats or timings is None:
        raise EdgeMlpError("benchmark_model output has no timing summary (did it fail? its output is above)")
    us = {k: float(v) for k, v in stats[-1].groupdict().items() if v is not None}
    out = {
        "runs": int(us["count"]), "mean_ms": us["avg"] / 1000, "min_ms": us["min"] / 1000, "std_ms": us["std"] / 1000,
        "median_ms": us["median"] / 1000 if "median" in us else None,
        "p5_ms": us["p5"] / 1000 if "p5" in us else None, "p95_ms": us["p95"] / 1000 if "p95" in us else None,
        "init_ms": float(timings["init"]) / 1000, "first_ms": float(timings["first"]) / 1000,
    }
    memory = _MEMORY.search(text)
    out["memory_overall_mb"] = float(memory["overall"]) if memory else None
    return out


def benchmark_model_latency(parsed: dict[str, Any]) -> Latency:
    from edge_mlp.timing import Latency

    median = parsed["median_ms"] if parsed["median_ms"] is not None else parsed["mean_ms"]
    return Latency(median_ms=median, p10_ms=None, p90_ms=None, mean_ms=parsed["mean_ms"], min_ms=parsed["min_ms"],
                   runs=parsed["runs"], p5_ms=parsed["p5_ms"], p95_ms=parsed["p95_ms"])


@register
class TFLiteConverter(Converter):
    target = "tflite"
    suffix = ".tflite"
    precisions = (Precision.FP32, Precision.INT8)
    typical_seconds = {"fp32": 12, "int8": 40}
    default_precision = Precision.INT8
    preferred_lowering = ShiftLowering.CONV
    lowering_reason = "conv: the delegate runs each shift as one depthwise conv, channels-last like its neighbours"
    norm_form = NormForm.CHANNELS_LAST
    folds_norm_affines = True
    runtime_packages = ("litert-torch", "ai-edge-litert", "torch")
    host_runtime_package = "ai-edge-litert"
    bench_backend = "litert-xnnpack"
    apps = ("android",)
    device_runner = "benchmark_model"
    int8_scheme = ("static int8: per-channel symmetric weights, per-tensor activations, int8 I/O "
                   "(see input/output quantization)")
    int8_tool = "litert-torch PT2EQuantizer"
    multi_size = "one signature per size (serving_default, serving_default_HxW), each a static graph"

    def pt2e_recipe(self, float_modules: Sequence[str] = ()) -> tuple[Any, Callable | None, str]:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

        from .pt2e import chain, mark_float, shift_convs_share_qparams, tensor_adds_int8

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        # litert's set_module_name does not match torch 2.13's module-stack keys: mark float nodes
        # as annotated up front instead, which its annotators skip.
        rewrite = chain(mark_float(float_modules) if float_modules else None, _fixed_softmax_qparams(quantizer),
                        shift_convs_share_qparams(quantizer), tensor_adds_int8(quantizer))
        return quantizer, rewrite, "litert-torch PT2EQuantizer (as converted)"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        from edge_mlp.quiet import native_stderr

        with native_stderr():  # TensorFlow's import: absl's banner, "oneDNN custom operations are on"
            import litert_torch

        model, x = request.model, request.example
        quantization = None
        if request.precision.calibrated:
            import dataclasses

            from litert_torch.quantize.quant_config import QuantConfig

            from .pt2e import quantize_request

            norms = _backbone_norms(request.model)
            if norms:
                request = dataclasses.replace(request, float_modules=(*request.float_modules, *norms))
            graph, quantizer, quantization = quantize_request(self, request, fold_quantize=False)
            if norms:
                quantization.scheme += (f"; the backbone's {len(norms)} GroupNorms stay float (their int8 form "
                                        "costs dense outputs accuracy), so a feature output fed by one is float32: "
                                        "each output's dtype and quantization are under outputs")
            with _lowering(request):
                edge_model = litert_torch.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
        else:
            # One signature per input size (serving_default, serving_default_HxW), each static.
            with _lowering(request):
                signatures = None
                for size, example in zip(request.sizes, request.examples()):
                    key = DEFAULT_SIGNATURE if signatures is None else size_entry(size, DEFAULT_SIGNATURE)
                    signatures = (litert_torch.signature(key, model, (example,)) if signatures is None
                                  else signatures.signature(key, model, (example,)))
                edge_model = signatures.convert()
        path = request.work_dir / f"{request.stem}{self.suffix}"
        with request.stage("save"), native_stderr():  # the MLIR converter runs here
            edge_model.export(str(path))
            islands = float_islands_in_delegate(path) if request.precision.calibrated else {}
        if islands:
            quantization.scheme += ("; " + ", ".join(f"{n} {op}" for op, n in islands.items())
                                    + " run in float inside the XNNPACK delegate (DEQUANTIZE / op / QUANTIZE: "
                                    "its int8 forms would run outside it)")
        raw = _interpreter(path, delegates=False)
        delegated = _interpreter(path, delegates=True)
        raw_ops = op_histogram([d["op_name"] for d in raw._get_ops_details()])
        from edge_mlp.arm64.inroot import executed_ops  # standalone: it also runs inside the arm64 root

        left = op_histogram(executed_ops(delegated))
        outside = {op: n for op, n in left.items() if op != "DELEGATE"}
        total = sum(raw_ops.values())
        coverage = {
            "delegate": "XNNPACK (LiteRT default)",
            "op_histogram": raw_ops,
            "ops_total": total,
            "ops_delegated": total - sum(outside.values()),
            "delegate_partitions": left.get("DELEGATE", 0),
            "non_delegated_ops": outside,
            "transpose_ops": raw_ops.get("TRANSPOSE", 0),
            "float_islands_in_delegate": islands,
        }
        (_, inp), outs = signature_io(raw.get_signature_runner(DEFAULT_SIGNATURE))
        layouts = [o.layout for o in request.output_specs()]
        return ConversionOutput(
            path=path,
            input=_spec(inp, "NCHW"),
            outputs=[_spec(d, layout) for (_, d), layout in zip(outs, layouts)],
            quantization=quantization,
            coverage=coverage,
            entry_points=[DEFAULT_SIGNATURE] + [size_entry(s, DEFAULT_SIGNATURE) for s in request.sizes[1:]],
        )

    def coverage_summary(self, coverage: dict) -> str:
        return (f"{coverage['ops_delegated']}/{coverage['ops_total']} ops delegated, "
                f"{coverage['transpose_ops']} TRANSPOSE")

    def load(self, artifact: Path, threads: int | None = None, **options: Any) -> HostModel:
        return _Interpreter(artifact, threads)

    def profile(self, artifact: Path, x: np.ndarray, threads: int, runs: int) -> OpProfile:
        """LiteRT's op profiler (edge_mlp.converters.litert_profiler): XNNPACK kernels inside the
        delegate, builtin ops outside it."""
        from edge_mlp.timing import OpProfile

        from .litert_profiler import profile_runs

        data = input_tensor(x, _interpreter(artifact, delegates=False).get_input_details()[0])
        per_run, totals = profile_runs(artifact, data, threads, runs)
        return OpProfile.from_runs("LiteRT profiler (C API): XNNPACK kernels in the delegate, builtin ops outside",
                                   per_run, totals)

    def run_on_device(self, phone: Shell, model_path: str, runner_path: str, threads: int, warmup: int,
                      runs: int) -> tuple[Latency, float | None]:
        parsed = parse_benchmark_model(phone.shell(
            f"{runner_path} --graph={model_path} --num_threads={threads} --warmup_runs={warmup} --num_runs={runs} "
            "--use_xnnpack=true --report_peak_memory_footprint=true"))
        return benchmark_model_latency(parsed), parsed["memory_overall_mb"]
