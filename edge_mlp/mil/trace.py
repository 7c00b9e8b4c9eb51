"""Localize where a Core ML program's numbers leave PyTorch's: per-op outputs side by side.

coremltools names each MIL op after the exported PyTorch node it came from (plus suffixes such as
`_cast_fp16`), so the interpreter's trace can be matched to the outputs of the same graph
`torch.export` gives the converter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..fileio import atomic_output
from .interpreter import TracedOp

_CAST_SUFFIX = re.compile(r"(_cast_(fp16|fp32|uint16|int16|int32|uint8|int8))+$")

# A MIL op matches a PyTorch node only if the name *and* the kind agree: coremltools also names
# ops it creates itself ("add_0", fused "add_1" that is really a batch_norm), which can collide.
_ATEN_OPS: dict[str, set[str]] = {
    "add": {"add"}, "sub": {"sub", "rsub"}, "mul": {"mul"}, "real_div": {"div"}, "pow": {"pow"},
    "square": {"pow", "square"}, "sqrt": {"sqrt"}, "rsqrt": {"rsqrt"}, "conv": {"convolution", "conv2d"},
    "linear": {"linear", "addmm", "mm"}, "matmul": {"matmul", "bmm", "mm"}, "reduce_mean": {"mean"},
    "reduce_sum": {"sum"}, "layer_norm": {"native_layer_norm", "layer_norm"}, "gelu": {"gelu"},
    "softmax": {"_softmax", "softmax"}, "sigmoid": {"sigmoid"}, "relu": {"relu"},
    "transpose": {"permute", "transpose", "t"}, "reshape": {"view", "reshape", "_unsafe_view"},
    "expand_dims": {"unsqueeze"}, "squeeze": {"squeeze"}, "concat": {"cat"}, "split": {"split", "split_with_sizes"},
    "slice_by_index": {"slice", "select"}, "pad": {"constant_pad_nd", "pad"}, "gather": {"index_select", "index"},
    "tile": {"repeat"}, "avg_pool": {"avg_pool2d"}, "batch_norm": {"_native_batch_norm_legit_no_training"},
}


@dataclass(frozen=True)
class TraceRow:
    index: int  # position among the program's runtime ops
    mil_name: str
    op_type: str
    torch_node: str | None  # None: no PyTorch node of that name and shape
    shape: tuple[int, ...]
    max_abs_diff: float | None
    rel_diff: float | None  # max |diff| / max |PyTorch value|


def torch_node_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (aten op, output) of every tensor-valued node in the graph the converter exports."""
    program = torch.export.export(model.eval(), (x,)).run_decompositions({})
    outputs: dict[str, tuple[str, np.ndarray]] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            value = super().run_node(n)
            if n.op == "call_function" and isinstance(value, torch.Tensor):
                aten = getattr(n.target, "__name__", str(n.target)).split(".")[0]
                outputs[n.name] = (aten, value.detach().float().numpy())
            return value

    module = program.module()
    with torch.no_grad():
        Recorder(module).run(x)
    return outputs


def match_trace(traced: list[TracedOp], reference: dict[str, tuple[str, np.ndarray]]) -> list[TraceRow]:
    rows = []
    for i, op in enumerate(traced):
        value = np.asarray(op.outputs[0], dtype=np.float64)
        node = _CAST_SUFFIX.sub("", op.name)
        aten, ref = reference.get(node, ("", None))
        if ref is None or ref.shape != value.shape or aten not in _ATEN_OPS.get(op.op_type, ()):
            rows.append(TraceRow(i, op.name, op.op_type, None, value.shape, None, None))
            continue
        diff = float(np.abs(value - ref).max()) if value.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        rows.append(TraceRow(i, op.name, op.op_type, node, value.shape, diff, diff / scale if scale else diff))
    return rows


def first_divergence(rows: list[TraceRow], threshold: float) -> TraceRow | None:
    """The earliest matched op whose relative difference exceeds `threshold`."""
    return next((r for r in rows if r.rel_diff is not None and r.rel_diff > threshold), None)


def write_trace(path: str | Path, traced: list[TracedOp]) -> None:
    """All op outputs in one .npz, keys `NNNN_<op type>_<mil name>` in program order."""
    arrays = {f"{i:04d}_{op.op_type}_{op.name}": np.asarray(op.outputs[0]) for i, op in enumerate(traced)}
    with atomic_output(path) as tmp:
        np.savez_compressed(tmp, **arrays)
