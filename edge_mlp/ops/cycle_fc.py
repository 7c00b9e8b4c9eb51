"""CycleMLP's CycleFC without `deform_conv2d`.

The official CycleFC calls torchvision's `deform_conv2d` with a 1x1 weight and a constant offset
per input channel: channel c is sampled ((c + k//2) mod k) - k//2 pixels away along one axis, with
zeros outside the image. That is a per-channel integer shift followed by a 1x1 linear layer, which
is what this module computes, with the official parameter names and shapes (`weight` [O, C/g, 1, 1],
`bias` [O], buffer `offset` [1, 2C, 1, 1]) so official state dicts load with strict=True.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from .shift import one_hot_kernel, periodic_channel_shift, periodic_groups


def cycle_shifts(channels: int, kernel_length: int) -> list[int]:
    """Per-channel shift of the official `gen_offset` along the kernel's long side."""
    return [(c + kernel_length // 2) % kernel_length - kernel_length // 2 for c in range(channels)]


def official_offset(channels: int, kernel_size: tuple[int, int]) -> torch.Tensor:
    """The official `offset` buffer: (dy, dx) per input channel, interleaved."""
    kh, kw = kernel_size
    offset = torch.zeros(1, 2 * channels, 1, 1)
    if kh == 1:
        offset[0, 1::2, 0, 0] = torch.tensor(cycle_shifts(channels, kw), dtype=torch.float32)
    else:
        offset[0, 0::2, 0, 0] = torch.tensor(cycle_shifts(channels, kh), dtype=torch.float32)
    return offset


class CycleFC(nn.Module):
    """Cycle fully-connected layer: per-channel axial shift, then a 1x1 projection."""

    # Buffers a checkpoint may omit: they are recomputed from the shape.
    derived_buffers: tuple[str, ...] = ("offset",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        if stride != 1 or padding != 0:
            raise ValueError("CycleFC supports stride 1 and padding 0 only (as the official one)")
        kernel_size = _pair(kernel_size)
        if kernel_size[0] != 1 and kernel_size[1] != 1:
            raise ValueError(f"CycleFC kernel must be 1xK or Kx1, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 1, 1))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("offset", official_offset(in_channels, kernel_size))

        # (1, k) moves along W, (k, 1) along H: the axis as seen in NCHW.
        self.shift_axis = 3 if kernel_size[0] == 1 else 2
        # The shift of channel c depends on c mod k only (the official cycle pattern).
        k = max(kernel_size)
        self._residue_shifts = cycle_shifts(k, k)
        # The `conv` lowering's depthwise weight; not in the state dict (official checkpoints load).
        kernel = one_hot_kernel(periodic_groups(in_channels, self._residue_shifts))
        self.register_buffer("shift_kernel", kernel, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        if self.bias is not None:
            bound = 1 / self.weight[0].numel() ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def shift(self, x: torch.Tensor, channel_dim: int, axis: int) -> torch.Tensor:
        """Apply the per-channel cycle shift of the input (before the projection)."""
        return periodic_channel_shift(x, self._residue_shifts, axis, channel_dim, kernel=self.shift_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW in, NCHW out, as the official module."""
        return F.conv2d(self.shift(x, 1, self.shift_axis), self.weight, self.bias, groups=self.groups)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """NHWC in and out: the layout CycleMLP blocks work in, so no permutes are needed."""
        if self.groups != 1:
            return self(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.shift(x, 3, self.shift_axis - 1)
        # 2-D matmul: a rank-4 linear with a reshaped weight lowers to an invalid TFLite batch_matmul.
        y = F.linear(x.reshape(-1, self.in_channels), self.weight.flatten(1), self.bias)
        return y.reshape(*x.shape[:-1], self.out_channels)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, local_metadata: dict, strict: bool,
        missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str],
    ) -> None:
        # The offset is a pure function of the shape: accept checkpoints without it, and refuse
        # any that differ, since the shift here is derived from the canonical offsets.
        key = prefix + "offset"
        if key not in state_dict:
            state_dict[key] = self.offset.detach().clone()
        elif (
            not self.offset.is_meta
            and state_dict[key].shape == self.offset.shape
            and not torch.equal(state_dict[key].to(self.offset.dtype).cpu(), self.offset.cpu())
        ):
            error_msgs.append(
                f"{key}: offsets differ from the official CycleFC offsets for kernel "
                f"{self.kernel_size}; only the canonical cycle pattern is supported"
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        )
