"""Spatial channel shifts lowered to pad/slice/cat, pad/roll/crop, or one depthwise convolution.

AS-MLP's official shift is a CuPy CUDA kernel and CycleMLP's CycleFC is `deform_conv2d` with constant
integer offsets. Both only *move* each channel by a whole number of pixels along one axis and fill
zeros where the source falls outside the image. Expressing that with pad + slice (or pad + roll)
keeps the result bit-identical while using ops every mobile backend (XNNPACK, Core ML, TFLite,
ONNX) supports. The `conv` lowering is one depthwise convolution whose per-channel 1xk (or kx1)
kernel holds a single 1 at that channel's offset, zero padding giving the zero fill: the delegates
run it as one op. For finite inputs it is exact too (x * 1 + 0 + ... + 0 == x; only the sign of a
-0.0 input may become +0.0).

Convention (the official kernel's): a channel with shift ``s`` along axis ``dim`` gives
``out[..., i, ...] = x[..., i + s, ...]`` and zero where ``i + s`` is outside ``[0, size)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..options import ShiftLowering, current_forms

LOWERINGS: tuple[ShiftLowering, ...] = ShiftLowering.exact()

# (first channel, end channel, shift) for a contiguous run of channels moved together.
ChannelGroup = tuple[int, int, int]


def axial_shift_groups(channels: int, shift_size: int) -> list[ChannelGroup]:
    """Channel groups of the official AS-MLP shift.

    The kernel groups channels as `torch.chunk(x, shift_size, 1)` does: chunks of
    ceil(C / k) channels (so possibly fewer than k chunks), chunk g moved by k//2 - g.
    """
    if shift_size < 1 or shift_size % 2 == 0:
        raise ValueError(f"shift_size must be a positive odd integer, got {shift_size}")
    if shift_size == 1 or channels == 0:
        return [(0, channels, 0)]
    size = math.ceil(channels / shift_size)
    return [
        (start, min(start + size, channels), shift_size // 2 - g)
        for g, start in enumerate(range(0, channels, size))
    ]


def one_hot_kernel(groups: Sequence[ChannelGroup]) -> torch.Tensor:
    """(C, 1, 2p + 1) depthwise kernel of the `conv` lowering: channel c's single 1 at tap s + p,
    p the largest |shift|; cross-correlation then reads x[i + s]."""
    channels = max((end for _, end, _ in groups), default=0)
    pad = max((abs(s) for _, _, s in groups), default=0)
    kernel = torch.zeros(channels, 1, 2 * pad + 1)
    for start, end, s in groups:
        kernel[start:end, 0, s + pad] = 1.0
    return kernel


def _conv_shift(x: torch.Tensor, kernel: torch.Tensor, dim: int, channel_dim: int) -> torch.Tensor:
    """The shift as one depthwise conv2d over a 4-D tensor (moved to NCHW and back if need be)."""
    if x.ndim != 4:
        raise ValueError(f"the conv shift lowering takes 4-D tensors, got shape {tuple(x.shape)}")
    order = [0, channel_dim] + [d for d in range(1, 4) if d != channel_dim]
    nchw = x.permute(order) if order != [0, 1, 2, 3] else x
    axis = order.index(dim)  # 2 (H) or 3 (W) in NCHW
    channels, _, taps = kernel.shape
    pad = taps // 2
    weight = kernel.to(x.dtype).reshape(channels, 1, taps, 1) if axis == 2 else \
        kernel.to(x.dtype).reshape(channels, 1, 1, taps)
    y = F.conv2d(nchw, weight, padding=(pad, 0) if axis == 2 else (0, pad), groups=channels)
    if order == [0, 1, 2, 3]:
        return y
    inverse = [order.index(d) for d in range(4)]
    return y.permute(inverse)


def _pad_axis(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    # F.pad lists (before, after) pairs from the last axis backwards.
    spec = [0, 0] * (x.ndim - dim - 1) + [pad, pad]
    return F.pad(x, spec)


def shift_channel_groups(
    x: torch.Tensor,
    groups: Sequence[ChannelGroup],
    dim: int,
    channel_dim: int = 1,
    lowering: ShiftLowering | None = None,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Move each contiguous channel group by its own shift along `dim`, zero-filling.

    `lowering` None: the one of the current export forms (`edge_mlp.options.using_forms`).
    `kernel`: the groups' `one_hot_kernel`, precomputed by a module that owns it (a buffer exports
    as a constant weight, which the int8 quantizers need); made here when not given."""
    if lowering is None:
        lowering = current_forms().shift
    elif lowering not in ShiftLowering.__members__.values():
        raise ValueError(f"shift lowering must be one of {', '.join(ShiftLowering)}, got {lowering!r}")
    lowering = ShiftLowering(lowering)
    dim = dim % x.ndim
    channel_dim = channel_dim % x.ndim
    if dim == channel_dim:
        raise ValueError("the shift axis must differ from the channel axis")
    pad = max((abs(s) for _, _, s in groups), default=0)
    if pad == 0 or lowering is ShiftLowering.IDENTITY:
        return x
    if lowering is ShiftLowering.CONV:
        return _conv_shift(x, kernel if kernel is not None else one_hot_kernel(groups), dim, channel_dim)
    length = x.shape[dim]
    padded = _pad_axis(x, dim, pad)
    if lowering is ShiftLowering.SLICE:
        parts = [
            padded.narrow(channel_dim, start, end - start).narrow(dim, pad + s, length)
            for start, end, s in groups
        ]
        return torch.cat(parts, channel_dim)
    parts = [
        torch.roll(padded.narrow(channel_dim, start, end - start), -s, dims=dim)
        for start, end, s in groups
    ]
    # |s| <= pad, so nothing wraps into the kept window: the crop sees zeros only.
    return torch.cat(parts, channel_dim).narrow(dim, pad, length)


def periodic_groups(channels: int, residue_shifts: Sequence[int]) -> list[ChannelGroup]:
    """One group per channel: channel c moves by `residue_shifts[c % k]`."""
    k = len(residue_shifts)
    return [(c, c + 1, residue_shifts[c % k]) for c in range(channels)]


def periodic_channel_shift(
    x: torch.Tensor, residue_shifts: Sequence[int], dim: int, channel_dim: int,
    lowering: ShiftLowering | None = None, kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shift channel c by `residue_shifts[c % k]` along `dim`, zero-filling.

    CycleFC's channels with equal shifts are interleaved (period k). Splitting the channel axis
    into (C/k, k) makes each residue class one stride-1 slice, so the shift is k slices instead of
    channel gathers (index_select), which mobile delegates such as XNNPACK do not run; channels
    beyond the last whole period are shifted on their own. Pure data movement: bit-identical to
    shifting channel by channel.
    """
    k = len(residue_shifts)
    dim, channel_dim = dim % x.ndim, channel_dim % x.ndim
    channels = x.shape[channel_dim]
    if (lowering or current_forms().shift) is ShiftLowering.CONV:  # one depthwise conv, any period
        groups = periodic_groups(channels, residue_shifts)
        return shift_channel_groups(x, groups, dim, channel_dim, ShiftLowering.CONV,
                                    kernel if kernel is not None else one_hot_kernel(groups))
    whole = channels - channels % k
    parts = []
    if whole:
        main = x.narrow(channel_dim, 0, whole) if whole < channels else x
        shape = main.shape
        split = (*shape[:channel_dim], whole // k, k, *shape[channel_dim + 1 :])
        axis = dim + 1 if dim > channel_dim else dim
        groups = [(j, j + 1, s) for j, s in enumerate(residue_shifts)]
        parts.append(shift_channel_groups(main.reshape(split), groups, axis, channel_dim + 1, lowering).reshape(shape))
    if whole < channels:  # the last channels % k channels: residues 0, 1, ... in order
        tail = x.narrow(channel_dim, whole, channels - whole)
        groups = [(j, j + 1, residue_shifts[j]) for j in range(channels - whole)]
        parts.append(shift_channel_groups(tail, groups, dim, channel_dim, lowering))
    return torch.cat(parts, channel_dim) if len(parts) > 1 else parts[0]


def axial_shift(
    x: torch.Tensor, shift_size: int, dim: int, lowering: ShiftLowering | None = None,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """The official AS-MLP shift of an NCHW tensor along H (dim=2) or W (dim=3)."""
    if x.ndim != 4:
        raise ValueError(f"axial_shift expects an NCHW tensor, got shape {tuple(x.shape)}")
    if dim not in (2, 3, -1, -2):
        raise ValueError(f"axial_shift shifts along H (2) or W (3), got dim={dim}")
    return shift_channel_groups(x, axial_shift_groups(x.shape[1], shift_size), dim, 1, lowering, kernel)
