"""Where does int8 error come from? Per-block SQNR of the PT2E-simulated int8 model vs fp32.

The quantized model is the same PT2E graph the converters lower (same quantizer, same calibration),
run in PyTorch with fake int8 arithmetic (quantize/dequantize). Each block's output is taken from
the node that ends it in the exported graph (via its `nn_module_stack`), after its output Q/DQ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

# Classes whose output is one step of the network: stems, blocks, and down-sampling stages.
BLOCK_CLASSES = frozenset({
    "PatchEmbed", "PatchEmbedOverlapping", "AxialShiftedBlock", "PatchMerging", "CycleBlock",
    "Downsample", "MixerBlock",
})
_QUANTIZE = "quantize_per_tensor"
_DEQUANTIZE = "dequantize_per_tensor"


@dataclass
class BlockSqnr:
    block: str
    kind: str
    sqnr_db: float  # 10 log10(signal / noise); higher is better, > 30 dB is near-lossless


def block_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m).__name__ in BLOCK_CLASSES]


def _op_name(node: torch.fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))


def _block_output_nodes(graph: torch.fx.GraphModule, blocks: Sequence[str]) -> dict[str, torch.fx.Node]:
    wanted = set(blocks)
    last: dict[str, torch.fx.Node] = {}
    for node in graph.graph.nodes:
        for path, _ in (node.meta.get("nn_module_stack") or {}).values():
            if path in wanted:
                last[path] = node
    for block, node in last.items():  # step over the block's output quantize -> dequantize pair
        users = list(node.users)
        if len(users) == 1 and _QUANTIZE in _op_name(users[0]):
            dq = list(users[0].users)
            if len(dq) == 1 and _DEQUANTIZE in _op_name(dq[0]):
                last[block] = dq[0]
    return last


def per_block_sqnr(
    model: nn.Module,
    quantize: Callable[[nn.Module, torch.Tensor], torch.fx.GraphModule],
    inputs: Sequence[torch.Tensor],
) -> list[BlockSqnr]:
    """`quantize(model, example)` returns the converted PT2E graph; worst block first."""
    blocks = block_names(model)
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    quantized = quantize(model, inputs[0])
    nodes = _block_output_nodes(quantized, blocks)
    signal = {b: 0.0 for b in nodes}
    noise = {b: 0.0 for b in nodes}
    reference: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(b).register_forward_hook(
        lambda _m, _i, out, b=b: reference.__setitem__(b, out.detach())) for b in nodes]
    try:
        for x in inputs:
            with torch.no_grad():
                model(x)
                captured = _run_capturing(quantized, x, {node: b for b, node in nodes.items()})
            for b, ref in reference.items():
                signal[b] += float(ref.double().pow(2).sum())
                noise[b] += float((ref.double() - captured[b].double()).pow(2).sum())
    finally:
        for h in hooks:
            h.remove()
    results = [
        BlockSqnr(b, kinds[b], 10 * math.log10(signal[b] / noise[b]) if noise[b] > 0 else math.inf)
        for b in blocks if b in nodes
    ]
    return sorted(results, key=lambda r: r.sqnr_db)


def target_block_sqnr(
    converter: Any, model: nn.Module, calibration: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor],
) -> tuple[list[BlockSqnr], str]:
    """`per_block_sqnr` with the converter's own PT2E recipe; also returns the recipe's note."""
    from contextlib import nullcontext

    from edge_mlp.converters.pt2e import quantize_pt2e

    quantizer, rewrite, note = converter.pt2e_recipe()

    def quantize(m: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
        return quantize_pt2e(m, example, quantizer, calibration, lambda _: nullcontext(), rewrite=rewrite)

    return per_block_sqnr(model, quantize, inputs), note


def _run_capturing(graph: torch.fx.GraphModule, x: torch.Tensor, watch: dict[torch.fx.Node, str]) -> dict[str, Any]:
    captured: dict[str, Any] = {}

    class Capture(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            if n in watch:
                captured[watch[n]] = out
            return out

    Capture(graph).run(x)
    return captured
