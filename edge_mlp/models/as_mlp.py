"""AS-MLP (Lian et al., "AS-MLP: An Axial Shifted MLP Architecture for Vision", ICLR 2022).

Module and parameter names follow svip-lab/AS-MLP `models/as_mlp.py`, so its checkpoints load with
strict=True. The CuPy shift kernel is replaced by `edge_mlp.ops.axial_shift` (bit-identical).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.export_forms import GroupNorm1, norm_form, space_to_depth, space_to_depth_kernels
from ..ops.shift import axial_shift, axial_shift_groups, one_hot_kernel
from ..options import NormForm
from ._layers import drop_path_or_identity, to_2tuple
from ._registry import DataConfig, FeatureInfo, IMAGENET_MEAN, IMAGENET_STD, InputSizes, register_family


def MyNorm(dim: int) -> nn.GroupNorm:  # noqa: N802 - the official name
    """GroupNorm with one group: LayerNorm over (C, H, W), the official AS-MLP norm (exported as
    delegable primitives, see edge_mlp.ops.export_forms)."""
    return GroupNorm1(1, dim)


class Mlp(nn.Module):
    """Channel MLP as two 1x1 convolutions (the official layout)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Shift(nn.Module):
    """Parameter-free wrapper so the shift shows up as a module (as in the official model)."""

    def __init__(self, shift_size: int, dim: int, channels: int) -> None:
        super().__init__()
        if shift_size < 1 or shift_size % 2 == 0:
            raise ValueError(f"shift_size must be a positive odd integer, got {shift_size}")
        self.shift_size = shift_size
        self.dim = dim
        # The `conv` lowering's depthwise weight; not in the state dict (official checkpoints load).
        kernel = one_hot_kernel(axial_shift_groups(channels, shift_size))
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return axial_shift(x, self.shift_size, self.dim, kernel=self.kernel)  # lowered as the export forms say

    def extra_repr(self) -> str:
        return f"shift_size={self.shift_size}, dim={self.dim}"


class AxialShift(nn.Module):
    NORM_CONSUMERS = {"norm2": "conv3"}  # edge_mlp.ops.fold: norm1 feeds a GELU, not foldable

    def __init__(self, dim: int, shift_size: int, as_bias: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.shift_size = shift_size
        self.conv1 = nn.Conv2d(dim, dim, 1, 1, 0, bias=as_bias)
        self.conv2_1 = nn.Conv2d(dim, dim, 1, 1, 0, bias=as_bias)
        self.conv2_2 = nn.Conv2d(dim, dim, 1, 1, 0, bias=as_bias)
        self.conv3 = nn.Conv2d(dim, dim, 1, 1, 0, bias=as_bias)
        self.actn = nn.GELU()
        self.norm1 = MyNorm(dim)
        self.norm2 = MyNorm(dim)
        self.shift_dim2 = Shift(shift_size, 2, dim)
        self.shift_dim3 = Shift(shift_size, 3, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.actn(self.norm1(self.conv1(x)))
        x_lr = self.actn(self.conv2_1(self.shift_dim3(x)))
        x_td = self.actn(self.conv2_2(self.shift_dim2(x)))
        return self.conv3(self.norm2(x_lr + x_td))


class AxialShiftedBlock(nn.Module):
    NORM_CONSUMERS = {"norm1": "axial_shift.conv1", "norm2": "mlp.fc1"}  # edge_mlp.ops.fold

    def __init__(
        self,
        dim: int,
        shift_size: int,
        mlp_ratio: float = 4.0,
        as_bias: bool = True,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = MyNorm(dim)
        self.axial_shift = AxialShift(dim, shift_size, as_bias)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = MyNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.axial_shift(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 space-to-depth, norm, 1x1 reduction to 2C channels."""

    NORM_CONSUMERS = {"norm": "reduction"}  # edge_mlp.ops.fold (the folded reduction gains a bias)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Conv2d(4 * dim, 2 * dim, 1, 1, bias=False)
        self.norm = MyNorm(4 * dim)
        # The channels-last export form's one-hot kernels; not in the state dict.
        self.register_buffer("space_to_depth_kernel", space_to_depth_kernels(dim), persistent=False)

    def forward(self, x: torch.Tensor, input_is_output: bool = False) -> torch.Tensor:
        """`input_is_output`: x is also returned (a backbone's feature map). ExecuTorch 1.5's
        XNNPACK layout pass then leaves that int8 output channels-last when all of x's consumers
        run NHWC, as in the fused form, and the program fails at run time ("Attempted to resize a
        static tensor"); the space-to-depth form keeps x NCHW, so such a merge is not fused there."""
        _, _, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"PatchMerging needs an even feature map, got {h}x{w}")
        form = norm_form()
        folded = self.norm.weight is None and self.norm.bias is None
        if folded and form is not NormForm.STOCK and not (input_is_output and form is NormForm.XNNPACK):
            return self._forward_fused(x)
        x = space_to_depth(x, self.space_to_depth_kernel)
        return self.reduction(self.norm(x))

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The delegate export of a folded PatchMerging: no space-to-depth at all. The norm's one
        group spans all of (4C, H/2, W/2), the same elements as x, so normalizing x gives the same
        statistics; and a 1x1 conv after a 2x2 space-to-depth is a 2x2 stride-2 conv whose kernel
        holds the 1x1 weights of channel (dw * 2 + dh) * C + c at [c, dh, dw]. Equal up to float
        summation order; saves ExecuTorch's layout transposes (reshape / permute) and LiteRT's four
        one-hot convs and concat per merge."""
        weight = self.reduction.weight  # (2C, 4C, 1, 1), input channel (dw * 2 + dh) * C + c
        out_channels, c = weight.shape[0], x.shape[1]
        kernel = weight.reshape(out_channels, 2, 2, c).permute(0, 3, 2, 1)  # [o, c, dh, dw]
        return F.conv2d(self.norm(x), kernel, self.reduction.bias, stride=2)


class BasicLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        shift_size: int,
        mlp_ratio: float,
        as_bias: bool,
        drop: float,
        drop_path: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            AxialShiftedBlock(dim, shift_size, mlp_ratio, as_bias, drop, drop_path[i])
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stage(x)[1]

    def forward_stage(self, x: torch.Tensor, returned: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(the stage's output before its PatchMerging: the feature map a detector takes, the next
        stage's input); `returned`: the caller returns the first one too."""
        for blk in self.blocks:
            x = blk(x)
        return x, (self.downsample(x, input_is_output=returned) if self.downsample is not None else x)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, norm: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = MyNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x) if self.norm is not None else x


class AS_MLP(nn.Module):  # noqa: N801 - the official class name
    """AS-MLP classifier, or with `features_only` a backbone returning the chosen stages' maps
    (NCHW, before each PatchMerging, as the official detection backbone takes them; no final norm
    or head, so a classifier checkpoint loads without those keys). Inputs of any size divisible by
    patch_size * 2**(stages-1) work."""

    NORM_CONSUMERS = {"norm": "head"}  # edge_mlp.ops.fold: the average pool between is per channel

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        shift_size: int = 5,
        mlp_ratio: float = 4.0,
        as_bias: bool = True,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.num_classes = num_classes
        self.num_layers = len(depths)
        self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        n = sum(depths)
        # Stochastic-depth decay rule (linspace), in plain Python so building on 'meta' works.
        dpr = [drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
        self.layers = nn.ModuleList(
            BasicLayer(
                dim=int(embed_dim * 2**i),
                depth=depths[i],
                shift_size=shift_size,
                mlp_ratio=mlp_ratio,
                as_bias=as_bias,
                drop=drop_rate,
                drop_path=dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=i < self.num_layers - 1,
            )
            for i in range(self.num_layers)
        )
        self.features_only = features_only
        if features_only:
            every = feature_info_of(embed_dim, len(depths), patch_size)
            self.out_indices = [i for i in range(len(every)) if out_indices is None or i in out_indices]
            self.feature_info = [every[i] for i in self.out_indices]
        else:
            self.norm = MyNorm(self.num_features)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.pos_drop(self.patch_embed(x))
        outs = []
        for i, layer in enumerate(self.layers[: self.out_indices[-1] + 1]):
            returned = i in self.out_indices
            out, x = layer.forward_stage(x, returned=returned)
            if returned:
                outs.append(out)
        return tuple(outs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)
        return torch.flatten(self.avgpool(self.norm(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.features_only:
            return self.forward_pyramid(x)
        return self.head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


_IMAGENET = DataConfig(mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, interpolation="bicubic")

def _input_sizes(kwargs: Mapping[str, Any]) -> InputSizes:
    """The patch embedding strides by patch_size and each of the stages after the first halves the
    map in a PatchMerging that needs an even map: sizes divisible by patch * 2**(stages-1)."""
    merges = len(kwargs["depths"]) - 1
    step = int(kwargs["patch_size"]) * 2**merges
    return InputSizes(step=step, minimum=step, why=f"patch {kwargs['patch_size']}, then {merges} patch merge{'s' * (merges != 1)} halving the map")


def feature_info_of(embed_dim: int, stages: int, patch_size: int) -> list[FeatureInfo]:
    return [FeatureInfo(i, int(embed_dim * 2**i), int(patch_size) * 2**i, f"layers.{i}") for i in range(stages)]


def _feature_info(kwargs: Mapping[str, Any]) -> list[FeatureInfo]:
    return feature_info_of(int(kwargs["embed_dim"]), len(kwargs["depths"]), int(kwargs["patch_size"]))


register_family(
    family="as_mlp",
    input_sizes=_input_sizes,
    feature_info=_feature_info,
    builder=AS_MLP,
    overrides=(
        "img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depths",
        "shift_size", "mlp_ratio", "drop_rate", "drop_path_rate", "features_only", "out_indices",
    ),
    source="svip-lab/AS-MLP models/as_mlp.py",
    variants={
        "as_mlp_tiny": (dict(embed_dim=96, depths=(2, 2, 6, 2), drop_path_rate=0.2), _IMAGENET,
                        "AS-MLP-T (official)"),
        "as_mlp_small": (dict(embed_dim=96, depths=(2, 2, 18, 2), drop_path_rate=0.3), _IMAGENET,
                         "AS-MLP-S (official)"),
        "as_mlp_base": (dict(embed_dim=128, depths=(2, 2, 18, 2), drop_path_rate=0.5), _IMAGENET,
                        "AS-MLP-B (official)"),
        "as_mlp_mobile": (dict(embed_dim=48, depths=(2, 2, 6, 2), drop_path_rate=0.1), _IMAGENET,
                          "edge-mlp mobile: AS-MLP-T at half width"),
    },
    official=("as_mlp_tiny", "as_mlp_small", "as_mlp_base"),
    has_shift=True,
)
