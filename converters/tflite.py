"""TFLite / LiteRT `.tflite` via litert-torch (fp32, or int8 via its PT2EQuantizer)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from edge_mlp.errors import EdgeMlpError
from edge_mlp.manifest import QuantizationInfo, QuantParams, TensorSpec
from edge_mlp.preprocess import quantize_input

from ._pt2e import chain, mark_float, op_histogram, quantize_request
from .base import ConversionOutput, ConversionRequest, Converter, register


def _interpreter(path: Path, delegates: bool = True, threads: int | None = None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver, num_threads=threads)
    it.allocate_tensors()
    return it


def _spec(detail: dict, layout: str) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    quant = QuantParams(float(scale), int(zero_point)) if dtype in ("int8", "uint8") else None
    return TensorSpec(detail["name"], [int(s) for s in detail["shape"]], dtype, layout, quant)


_RESHAPES = (torch.ops.aten.reshape.default, torch.ops.aten.view.default)


def _fixed_softmax_qparams(quantizer) -> Callable[[torch.fx.GraphModule], None]:
    """Let litert's quantizer give every softmax TFLite's fixed int8 output params (1/256, -128).

    Its annotator does so only for `aten._softmax` whose input is an already-annotated op output.
    CycleMLP's gate reshapes a linear output right before its softmax, and the reshape would only
    be annotated later (by propagation), so the softmax got observed params and the TFLite runtime
    rejected it. We spell softmax as `_softmax` and annotate the reshape as sharing its input's
    params, as propagation would.
    """
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    act_qspec = quantizer.global_config.input_activation

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
            if source.op == "call_function" and source.target in _RESHAPES:
                producer = source.args[0]
                source.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={producer: act_qspec},
                    output_qspec=SharedQuantizationSpec((producer, source)),
                    _annotated=True,
                )
        graph.recompile()

    return rewrite


def input_tensor(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A float32 NCHW batch as the interpreter's input: quantized with its params for int8 I/O."""
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


def _executed_ops(it) -> list[str]:
    """Op names the delegated interpreter actually runs.

    The interpreter lists the original nodes plus appended DELEGATE nodes; the ones it executes are
    those needed to produce the outputs when each DELEGATE node produces its own outputs.
    """
    ops = it._get_ops_details()
    producer: dict[int, dict] = {}
    for op in ops:  # DELEGATE nodes come last, so they take over the tensors they produce
        for t in op["outputs"]:
            producer[int(t)] = op
    needed = [int(d["index"]) for d in it.get_output_details()]
    seen: set[int] = set()
    executed = []
    while needed:
        op = producer.get(needed.pop())
        if op is None or op["index"] in seen:
            continue
        seen.add(op["index"])
        executed.append(op["op_name"])
        needed.extend(int(t) for t in op["inputs"] if t >= 0)
    return executed


@register
class TFLiteConverter(Converter):
    target = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "int8")
    default_precision = "int8"
    preferred_lowering = "roll"
    lowering_reason = (
        "roll: fewer layout ops in the .tflite (probe: 12 vs 22 TRANSPOSE for the slice form)"
    )
    runtime_packages = ("litert-torch", "ai-edge-litert", "torch")
    host_runtime_package = "ai-edge-litert"

    def pt2e_recipe(self, float_modules: Sequence[str] = ()) -> tuple[Any, Callable | None, str]:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        # litert's set_module_name does not match torch 2.13's module-stack keys: mark float nodes
        # as annotated up front instead, which its annotators skip.
        rewrite = chain(mark_float(float_modules) if float_modules else None, _fixed_softmax_qparams(quantizer))
        return quantizer, rewrite, "litert-torch PT2EQuantizer (as converted)"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import litert_torch

        model, x = request.model, request.example
        quantization = None
        if request.precision == "int8":
            from litert_torch.quantize.quant_config import QuantConfig

            graph, quantizer = quantize_request(self, request, fold_quantize=False)
            with request.stage("lower"), _clear_errors(request):
                edge_model = litert_torch.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            quantization = QuantizationInfo(
                scheme="static int8: per-channel symmetric weights, per-tensor activations, int8 I/O "
                       "(see input/output quantization)",
                tool="litert-torch PT2EQuantizer",
            )
        else:
            with request.stage("lower"), _clear_errors(request):
                edge_model = litert_torch.convert(model, (x,))
        path = request.work_dir / f"{request.stem}{self.suffix}"
        with request.stage("save"):
            edge_model.export(str(path))
        raw = _interpreter(path, delegates=False)
        delegated = _interpreter(path, delegates=True)
        raw_ops = op_histogram([d["op_name"] for d in raw._get_ops_details()])
        left = op_histogram(_executed_ops(delegated))
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
        }
        return ConversionOutput(
            path=path,
            input=_spec(raw.get_input_details()[0], "NCHW"),
            output=_spec(raw.get_output_details()[0], "NC"),
            quantization=quantization,
            coverage=coverage,
        )

    def coverage_summary(self, coverage: dict) -> str:
        return (f"{coverage['ops_delegated']}/{coverage['ops_total']} ops delegated, "
                f"{coverage['transpose_ops']} TRANSPOSE")

    def load(self, artifact: Path, **options: Any) -> Callable[[np.ndarray], np.ndarray]:
        it = _interpreter(artifact)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]

        def run(x: np.ndarray) -> np.ndarray:
            it.set_tensor(inp["index"], input_tensor(x, inp))
            it.invoke()
            y = it.get_tensor(out["index"])
            if np.dtype(out["dtype"]) != np.float32:
                scale, zero_point = out["quantization"]
                y = (y.astype(np.float32) - zero_point) * scale
            return y.astype(np.float32)

        return run
