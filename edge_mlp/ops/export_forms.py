"""Norms, means and space-to-depth in the primitive form the XNNPACK delegate runs.

XNNPACK (ExecuTorch 1.5) has no layer_norm / group_norm kernel, averages only 4-D tensors over
their two innermost axes, and slices only with stride 1. Left as they are, these ops stay outside
the delegate and cut the graph into many partitions, each crossing back to portable CPU kernels.
While a target that asks for them (`ExportForms.delegate_norms`, ExecuTorch) exports, the modules below
compute the same math from mean-over-(2, 3), sub, mul, rsqrt, reshapes and permutes. Otherwise
(eager PyTorch, other targets) they run the stock kernels, so PyTorch outputs stay bit-identical to
the official models; the delegate form differs only by float rounding. Parameter names are
nn.LayerNorm's / nn.GroupNorm's, so official checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..options import current_forms


def exporting() -> bool:
    """Whether the delegate forms apply: asked for by the target, and torch.export is tracing."""
    return current_forms().delegate_norms and torch.compiler.is_exporting()


def _normalize_rows(x4: torch.Tensor, eps: float) -> torch.Tensor:
    """(A, B, R, S) -> each [a, b] slab normalized over its R x S elements (biased variance)."""
    centered = x4 - x4.mean((2, 3), keepdim=True)
    variance = (centered * centered).mean((2, 3), keepdim=True)
    return centered * torch.rsqrt(variance + eps)


def mean_hw_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C): mean over the spatial axes of a channels-last tensor."""
    if not exporting():
        return x.mean(dim=(1, 2))
    b, _, _, c = x.shape
    return x.permute(0, 3, 1, 2).mean((2, 3), keepdim=True).reshape(b, c)


def mean_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C) -> (B, C): mean over the token axis."""
    if not exporting():
        return x.mean(dim=1)
    b, n, c = x.shape
    return x.transpose(1, 2).reshape(b, c, n, 1).mean((2, 3), keepdim=True).reshape(b, c)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last axis; exports as 4-D means."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not exporting() or len(self.normalized_shape) != 1:
            return super().forward(x)
        shape = x.shape
        y = _normalize_rows(x.reshape(1, -1, 1, shape[-1]), self.eps).reshape(shape)
        if self.weight is not None:
            y = y * self.weight
        return y + self.bias if self.bias is not None else y


class GroupNorm1(nn.GroupNorm):
    """nn.GroupNorm with one group (a LayerNorm over C, H, W), NCHW; exports as 4-D means."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not exporting() or self.num_groups != 1 or x.ndim != 4:
            return super().forward(x)
        b, c, h, w = x.shape
        y = _normalize_rows(x.reshape(b, 1, c, h * w), self.eps).reshape(b, c, h, w)
        if self.affine:
            y = y * self.weight.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)
        return y
