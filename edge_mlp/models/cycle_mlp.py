"""CycleMLP (Chen et al., "CycleMLP: A MLP-like Architecture for Dense Prediction", ICLR 2022).

Module and parameter names follow ShoufaChen/CycleMLP `cycle_mlp.py` (CycleNet), so its checkpoints
load with strict=True. CycleFC runs without `deform_conv2d` (see `edge_mlp.ops.cycle_fc`), and the
blocks stay channels-last (B, H, W, C) as in the official model, so any input size works.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..ops.cycle_fc import CycleFC
from ..ops.export_forms import LayerNorm, mean_hw_nhwc
from ._layers import drop_path_or_identity
from ._registry import DataConfig, FeatureInfo, IMAGENET_MEAN, IMAGENET_STD, InputSizes, register_family


class Mlp(nn.Module):
    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class CycleMLP(nn.Module):
    """Token mixing: two CycleFCs (along W and H) and a channel FC, re-weighted per channel."""

    def __init__(self, dim: int, qkv_bias: bool = False, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.mlp_c = nn.Linear(dim, dim, bias=qkv_bias)
        self.sfc_h = CycleFC(dim, dim, (1, 3), 1, 0)
        self.sfc_w = CycleFC(dim, dim, (3, 1), 1, 0)
        self.reweight = Mlp(dim, dim // 4, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _, c = x.shape
        h = self.sfc_h.forward_nhwc(x)
        w = self.sfc_w.forward_nhwc(x)
        c_ = self.mlp_c(x)
        a = mean_hw_nhwc(h + w + c_)
        # Softmax over the three branch weights of each channel. The official code permutes them to
        # the front and reduces over dim 0; the last axis is the same math and is the only softmax
        # axis mobile runtimes (TFLite) support natively.
        a = self.reweight(a).reshape(b, 1, 1, c, 3).softmax(dim=-1)
        x = h * _branch(a, 0) + w * _branch(a, 1) + c_ * _branch(a, 2)
        return self.proj_drop(self.proj(x))


def _branch(a: torch.Tensor, i: int) -> torch.Tensor:
    """a[..., i] as a stride-1 slice + reshape (XNNPACK has no select)."""
    return a.narrow(-1, i, 1).reshape(a.shape[:-1])


class CycleBlock(nn.Module):
    # edge_mlp.ops.fold. Not norm1: its CycleFCs zero-fill shifted-in borders, where beta is not 0.
    NORM_CONSUMERS = {"norm2": "mlp.fc1"}

    def __init__(
        self, dim: int, mlp_ratio: float = 4.0, qkv_bias: bool = False, drop_path: float = 0.0,
        skip_lam: float = 1.0,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = CycleMLP(dim, qkv_bias=qkv_bias)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.skip_lam = skip_lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x))) / self.skip_lam
        return x + self.drop_path(self.mlp(self.norm2(x))) / self.skip_lam


class PatchEmbedOverlapping(nn.Module):
    def __init__(self, patch_size: int, stride: int, padding: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, padding)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """3x3 stride-2 convolution between stages (channels-last in and out)."""

    def __init__(self, in_embed_dim: int, out_embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_embed_dim, out_embed_dim, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class CycleNet(nn.Module):
    """CycleMLP classifier (the official `CycleNet`), or with `features_only` a backbone returning
    the chosen stages' maps (NCHW, raw stage outputs as the official `fork_feat` detection model
    takes them; no final norm or head, so a classifier checkpoint loads without those keys)."""

    NORM_CONSUMERS = {"norm": "head"}  # edge_mlp.ops.fold: the spatial mean between is per channel

    def __init__(
        self,
        layers: Sequence[int],
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 320, 512),
        transitions: Sequence[bool] = (True, True, True, True),
        mlp_ratios: Sequence[float] = (4, 4, 4, 4),
        skip_lam: float = 1.0,
        qkv_bias: bool = False,
        drop_path_rate: float = 0.0,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not (len(layers) == len(embed_dims) == len(mlp_ratios)) or len(transitions) < len(layers) - 1:
            raise ValueError("layers, embed_dims and mlp_ratios need one entry per stage")
        self.img_size = img_size  # only recorded: CycleMLP takes any input size
        self.num_classes = num_classes
        self.patch_embed = PatchEmbedOverlapping(7, 4, 2, in_chans, embed_dims[0])
        total = sum(layers)
        network: list[nn.Module] = []
        self._stage_ends: list[int] = []  # network index of each stage's last block group
        for i, depth in enumerate(layers):
            network.append(nn.Sequential(*[
                CycleBlock(
                    embed_dims[i], mlp_ratios[i], qkv_bias,
                    drop_path_rate * (j + sum(layers[:i])) / max(total - 1, 1), skip_lam,
                )
                for j in range(depth)
            ]))
            self._stage_ends.append(len(network) - 1)
            if i == len(layers) - 1:
                break
            if transitions[i] or embed_dims[i] != embed_dims[i + 1]:
                if not transitions[i]:
                    # The official model asserts here too (Downsample only supports patch 2).
                    raise ValueError("a stage change without a transition is not supported")
                network.append(Downsample(embed_dims[i], embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        self.features_only = features_only
        if features_only:
            every = feature_info_of(embed_dims, self._stage_ends)
            self.out_indices = [i for i in range(len(every)) if out_indices is None or i in out_indices]
            self.feature_info = [every[i] for i in self.out_indices]
        else:
            self.norm = LayerNorm(embed_dims[-1])
            self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        wanted = {self._stage_ends[i] for i in self.out_indices}
        outs = []
        for idx, block in enumerate(self.network[: max(wanted) + 1]):
            x = block(x)
            if idx in wanted:
                outs.append(x.permute(0, 3, 1, 2))
        return tuple(outs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        for block in self.network:
            x = block(x)
        return mean_hw_nhwc(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.features_only:
            return self.forward_pyramid(x)
        return self.head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, CycleFC)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _cfg(crop_pct: float) -> DataConfig:
    return DataConfig(mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=crop_pct, interpolation="bicubic")


_STAGE_DEFAULTS = dict(transitions=(True, True, True, True), embed_dims=(64, 128, 320, 512))

def _input_sizes(kwargs: Mapping[str, Any]) -> InputSizes:
    """Every stride rounds up (padded convs), so any size works once the 7x7 stride-4 stem (padding
    2) has one output pixel: 3 and more."""
    return InputSizes(step=1, minimum=3, why="overlapping stride-4 stem, padded stride-2 downsamples")


def feature_info_of(embed_dims: Sequence[int], stage_ends: Sequence[int]) -> list[FeatureInfo]:
    """Stride 4 after the stem, doubled by each Downsample before a stage (one per stage change)."""
    strides, stride = [], 4
    for i, end in enumerate(stage_ends):
        if i and end - stage_ends[i - 1] == 2:  # a Downsample sits between the two stages
            stride *= 2
        strides.append(stride)
    return [FeatureInfo(i, int(embed_dims[i]), strides[i], f"network.{end}") for i, end in enumerate(stage_ends)]


def _feature_info(kwargs: Mapping[str, Any]) -> list[FeatureInfo]:
    layers, dims, transitions = kwargs["layers"], kwargs["embed_dims"], kwargs["transitions"]
    ends, index = [], -1
    for i in range(len(layers)):
        index += 1
        ends.append(index)
        if i < len(layers) - 1 and (transitions[i] or dims[i] != dims[i + 1]):
            index += 1
    return feature_info_of(dims, ends)


register_family(
    family="cycle_mlp",
    input_sizes=_input_sizes,
    feature_info=_feature_info,
    builder=CycleNet,
    overrides=(
        "layers", "embed_dims", "mlp_ratios", "transitions", "num_classes", "img_size",
        "in_chans", "drop_path_rate", "features_only", "out_indices",
    ),
    source="ShoufaChen/CycleMLP cycle_mlp.py",
    variants={
        "cycle_mlp_b1": (dict(_STAGE_DEFAULTS, layers=(2, 2, 4, 2), mlp_ratios=(4, 4, 4, 4)),
                         _cfg(0.9), "CycleMLP-B1 (official)"),
        "cycle_mlp_b2": (dict(_STAGE_DEFAULTS, layers=(2, 3, 10, 3), mlp_ratios=(4, 4, 4, 4)),
                         _cfg(0.9), "CycleMLP-B2 (official)"),
        "cycle_mlp_b3": (dict(_STAGE_DEFAULTS, layers=(3, 4, 18, 3), mlp_ratios=(8, 8, 4, 4)),
                         _cfg(0.9), "CycleMLP-B3 (official)"),
        "cycle_mlp_b4": (dict(_STAGE_DEFAULTS, layers=(3, 8, 27, 3), mlp_ratios=(8, 8, 4, 4)),
                         _cfg(0.875), "CycleMLP-B4 (official)"),
        "cycle_mlp_b5": (dict(_STAGE_DEFAULTS, layers=(3, 4, 24, 3), mlp_ratios=(4, 4, 4, 4),
                              embed_dims=(96, 192, 384, 768)), _cfg(0.875), "CycleMLP-B5 (official)"),
        "cycle_mlp_mobile": (dict(_STAGE_DEFAULTS, layers=(2, 2, 4, 2), mlp_ratios=(4, 4, 4, 4),
                                  embed_dims=(32, 64, 160, 256)), _cfg(0.9),
                             "edge-mlp mobile: CycleMLP-B1 at half width"),
    },
    official=("cycle_mlp_b1", "cycle_mlp_b2", "cycle_mlp_b3", "cycle_mlp_b4", "cycle_mlp_b5"),
    has_shift=True,
)
