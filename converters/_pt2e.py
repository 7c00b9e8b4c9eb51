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


def op_histogram(names: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
