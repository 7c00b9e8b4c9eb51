"""PT2E static quantization shared by the targets that use it: export, prepare, calibrate, convert."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn as nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

from .base import StageTimer


def quantize_pt2e(
    model: nn.Module,
    example: torch.Tensor,
    quantizer: Any,
    calibration: Sequence[torch.Tensor],
    stage: StageTimer,
    fold_quantize: bool = True,
    rewrite: Callable[[torch.fx.GraphModule], None] | None = None,
) -> torch.fx.GraphModule:
    if not calibration:
        raise ValueError("int8 quantization needs calibration data")
    with stage("export"):
        graph = torch.export.export(model, (example,)).module()
        if rewrite is not None:  # target-specific graph fix-ups before annotation
            rewrite(graph)
    with stage("quantize"):
        prepared = prepare_pt2e(graph, quantizer)
    with stage("calibrate"), torch.no_grad():
        for batch in calibration:
            prepared(batch)
    with stage("quantize"):
        return convert_pt2e(prepared, fold_quantize=fold_quantize)


def quantize_request(converter: Any, request: Any, fold_quantize: bool = True) -> tuple[torch.fx.GraphModule, Any]:
    """The request's model through the converter's own PT2E recipe: (quantized graph, quantizer)."""
    quantizer, rewrite, _ = converter.pt2e_recipe(request.float_modules)
    graph = quantize_pt2e(request.model, request.example, quantizer, request.calibration, request.stage,
                          fold_quantize=fold_quantize, rewrite=rewrite)
    return graph, quantizer


def op_histogram(names: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def mark_float(modules: Sequence[str]) -> Callable[[torch.fx.GraphModule], None]:
    """A pre-annotation rewrite that keeps nodes inside `modules` in float: they are marked as
    annotated with no quantization specs, and PT2E annotators skip annotated nodes."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    from .base import in_modules

    def rewrite(graph: torch.fx.GraphModule) -> None:
        for node in graph.graph.nodes:
            if node.op == "call_function" and in_modules(node, modules):
                node.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)

    return rewrite


def chain(*rewrites: Callable[[torch.fx.GraphModule], None] | None) -> Callable[[torch.fx.GraphModule], None]:
    def rewrite(graph: torch.fx.GraphModule) -> None:
        for r in rewrites:
            if r is not None:
                r(graph)

    return rewrite
