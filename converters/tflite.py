"""TFLite / LiteRT `.tflite` via litert-torch (fp32, or int8 via its PT2EQuantizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mlp.manifest import QuantizationInfo, QuantParams, TensorSpec

from ._pt2e import op_histogram, quantize_pt2e
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

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import litert_torch

        model, x = request.model, request.example
        quantization = None
        if request.precision == "int8":
            from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
            from litert_torch.quantize.quant_config import QuantConfig

            quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            graph = quantize_pt2e(model, x, quantizer, request.calibration, request.stage, fold_quantize=False)
            with request.stage("lower"):
                edge_model = litert_torch.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            quantization = QuantizationInfo(
                scheme="static int8: per-channel symmetric weights, per-tensor activations, int8 I/O "
                       "(see input/output quantization)",
                tool="litert-torch PT2EQuantizer",
            )
        else:
            with request.stage("lower"):
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

    def run(self, artifact: Path, x: np.ndarray) -> np.ndarray:
        it = _interpreter(artifact)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        x = np.ascontiguousarray(x, np.float32)
        if np.dtype(inp["dtype"]) != np.float32:
            scale, zero_point = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])
        if np.dtype(out["dtype"]) != np.float32:
            scale, zero_point = out["quantization"]
            y = (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)
