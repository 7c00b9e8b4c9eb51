"""Norms, means and space-to-depth in the primitive forms a target's delegate runs (`NormForm`).

XNNPACK (ExecuTorch 1.5) has no layer_norm / group_norm kernel, averages only 4-D tensors over
their two innermost axes, and slices only with stride 1. Left as they are, these ops stay outside
the delegate and cut the graph into many partitions, each crossing back to portable CPU kernels.
LiteRT's converter runs NCHW graphs channels-last by a layout pass that stops at every reshape,
inserting TRANSPOSE pairs. While a target exports, the modules below compute the same math in the
form it asks for (`ExportForms.norms`): `xnnpack` (ExecuTorch) from mean-over-(2, 3), sub, mul,
rsqrt, reshapes and permutes; `channels_last` (LiteRT) from 4-D ops only, no reshape of an
activation. Otherwise (eager PyTorch, other targets) they run the stock kernels, so PyTorch outputs
stay bit-identical to the official models; the export forms differ only by float rounding (the
space-to-depth forms not at all). Parameter names are nn.LayerNorm's / nn.GroupNorm's, so official
checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..options import NormForm, current_forms


def norm_form() -> NormForm:
    """The form norms take now: the target's (`ExportForms.norms`) while torch.export traces,
    PyTorch's own kernels otherwise."""
    return current_forms().norms if torch.compiler.is_exporting() else NormForm.STOCK


def exporting() -> bool:
    """Whether the XNNPACK delegate forms apply (ExecuTorch export)."""
    return norm_form() is NormForm.XNNPACK


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
        form = norm_form()
        if form is NormForm.STOCK or self.num_groups != 1 or x.ndim != 4:
            return super().forward(x)
        c = x.shape[1]
        if form is NormForm.XNNPACK:
            # Mean over (C, H, W) in two steps, the second over the tiny (B, C, 1, 1): ExecuTorch's
            # XNNPACK averages only the two innermost axes of an NCHW tensor, and reduced to a single
            # value on one thread (11 of 37 ms of as_mlp_mobile fp32 at 224). The second step is a
            # 1x1 conv, one XNNPACK kernel that runs channels-last like the first mean; averaging
            # by reshape and mean took 4 kernels (transpose, reshape, transpose, mean), and adding
            # eps one more. ExecuTorch's runtime spends time around every XNNPACK kernel it runs
            # (benchmarks/thread_scaling.py); as_mlp_mobile at 224 has 490 of its 1,209 int8
            # kernels (464 of 1,076 fp32) fewer. c can differ from num_channels (a fused
            # PatchMerging normalizes its input); kernel and eps become constants of the program
            # (the converter folds them).
            kernel = torch.full((1, c, 1, 1), 1.0 / c, dtype=x.dtype)
            eps = torch.full((1,), self.eps, dtype=x.dtype)

            def mean_chw(t: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
                return F.conv2d(t.mean((2, 3), keepdim=True), kernel, bias)

            centered = x - mean_chw(x)
            scale = torch.rsqrt(mean_chw(centered * centered, eps))
        else:
            # One MEAN over (C, H, W), 4-D and layout-free for litert's channels-last pass: in NHWC
            # the three axes are one contiguous run, and as_mlp_mobile at 224 ran 2-6 % faster on
            # LiteRT than with a per-channel mean first (fp32 and int8, two A/Bs of 400 rounds).
            centered = x - x.mean((1, 2, 3), keepdim=True)
            scale = torch.rsqrt((centered * centered).mean((1, 2, 3), keepdim=True) + self.eps)
        if self.weight is not None:  # None once folded into the next layer (edge_mlp.ops.fold)
            # gamma joins the (B, 1, 1, 1) scale first: one full-tensor multiply instead of two
            scale = scale * self.weight.reshape(1, c, 1, 1)
        y = centered * scale
        return y + self.bias.reshape(1, c, 1, 1) if self.bias is not None else y


def space_to_depth_kernels(channels: int) -> torch.Tensor:
    """(4, C, 1, 2, 2): kernel k picks pixel (dh, dw) = (k % 2, k // 2) of each 2x2 cell, so a
    stride-2 depthwise conv with it is the official slice `x[:, :, dh::2, dw::2]`."""
    kernels = torch.zeros(4, channels, 1, 2, 2)
    for k in range(4):
        kernels[k, :, 0, k % 2, k // 2] = 1.0
    return kernels


def space_to_depth(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """AS-MLP's 2x2 space-to-depth (channel = (dw * 2 + dh) * C + c) of an NCHW tensor.

    Stock and XNNPACK forms: strided slices / one reshape-permute. Channels-last form: four
    stride-2 depthwise convs with one-hot kernels and a concat, which LiteRT's XNNPACK delegate
    runs in NHWC (it takes no stride-2 slice, and a 6-D permute would pin the graph to NCHW).
    Exact for finite inputs: x * 1 + 0 + 0 + 0 == x.
    """
    form = norm_form()
    if form is NormForm.CHANNELS_LAST:
        c = x.shape[1]
        return torch.cat([F.conv2d(x, kernels[k].to(x.dtype), stride=2, groups=c) for k in range(4)], 1)
    b, c, h, w = x.shape
    if form is NormForm.XNNPACK:  # the same values in the same channel order as one reshape/permute
        return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 5, 3, 1, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
    return torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], 1)
