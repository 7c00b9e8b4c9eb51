"""MLP-Mixer (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021).

Module and parameter names follow timm's `mlp_mixer.py` (`MlpMixer`), so timm checkpoints load
with strict=True. The token MLP is tied to the number of patches, so the input size is fixed.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..ops.export_forms import LayerNorm as ExportLayerNorm
from ..ops.export_forms import mean_tokens
from ._layers import drop_path_or_identity, to_2tuple
from ._registry import DataConfig, FeatureInfo, InputSizes, register_family

LayerNorm = partial(ExportLayerNorm, eps=1e-6)


class Mlp(nn.Module):
    """timm's Mlp (fc1 -> GELU -> fc2); `drop1`/`norm`/`drop2` carry no parameters."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class MixerBlock(nn.Module):
    # edge_mlp.ops.fold. Not norm1: the token MLP mixes tokens, not the normed channels.
    NORM_CONSUMERS = {"norm2": "mlp_channels.fc1"}

    def __init__(
        self, dim: int, seq_len: int, mlp_ratio: tuple[float, float] = (0.5, 4.0),
        drop: float = 0.0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        tokens_dim, channels_dim = (int(r * dim) for r in to_2tuple(mlp_ratio))
        self.norm1 = LayerNorm(dim)
        self.mlp_tokens = Mlp(seq_len, tokens_dim, drop)
        self.drop_path = drop_path_or_identity(drop_path)
        self.norm2 = LayerNorm(dim)
        self.mlp_channels = Mlp(dim, channels_dim, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> (B, N, C) tokens."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        if self.num_patches == 0:
            raise ValueError(f"img_size {img_size} is smaller than patch_size {patch_size}")
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(
                f"MLP-Mixer was built for {self.img_size[0]}x{self.img_size[1]} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}: rebuild it with img_size={x.shape[-1]}"
            )
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class MlpMixer(nn.Module):
    NORM_CONSUMERS = {"norm": "head"}  # edge_mlp.ops.fold: the token mean between is per channel

    def __init__(
        self,
        num_classes: int = 1000,
        img_size: int = 224,
        in_chans: int = 3,
        patch_size: int = 16,
        num_blocks: int = 8,
        embed_dim: int = 512,
        mlp_ratio: float | tuple[float, float] = (0.5, 4.0),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        features_only: bool = False,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.stem = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.blocks = nn.Sequential(*[
            MixerBlock(embed_dim, self.stem.num_patches, to_2tuple(mlp_ratio), drop_rate, drop_path_rate)
            for _ in range(num_blocks)
        ])
        self.norm = LayerNorm(embed_dim)
        self.features_only = features_only
        if features_only:  # one scale: the normed token map as a grid (out_indices can only be (0,))
            self.out_indices = [0]
            self.feature_info = feature_info_of(embed_dim, patch_size)
        else:
            self.head_drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tokens = self.forward_features(x)
        gh, gw = self.stem.grid_size
        return (tokens.reshape(tokens.shape[0], gh, gw, tokens.shape[-1]).permute(0, 3, 1, 2),)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.features_only:
            return self.forward_pyramid(x)
        return self.head(self.head_drop(mean_tokens(self.forward_features(x))))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# timm's Mixer configs: inputs scaled to [-1, 1].
_MIXER_DATA = DataConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.875, interpolation="bicubic")

def _input_sizes(kwargs: Mapping[str, Any]) -> InputSizes:
    """Whole patches only (a remainder would be dropped silently); the token MLP is sized by the
    number of patches, so each size is its own model."""
    patch = int(kwargs["patch_size"])
    return InputSizes(step=patch, minimum=patch, why=f"whole {patch}x{patch} patches; each size is its own model",
                      fixed=True)


def feature_info_of(embed_dim: int, patch_size: int) -> list[FeatureInfo]:
    return [FeatureInfo(0, int(embed_dim), int(patch_size), "norm")]


def _feature_info(kwargs: Mapping[str, Any]) -> list[FeatureInfo]:
    return feature_info_of(int(kwargs["embed_dim"]), int(kwargs["patch_size"]))


register_family(
    family="mlp_mixer",
    input_sizes=_input_sizes,
    feature_info=_feature_info,
    builder=MlpMixer,
    overrides=(
        "img_size", "patch_size", "num_blocks", "embed_dim", "mlp_ratio", "num_classes",
        "in_chans", "drop_rate", "drop_path_rate", "features_only", "out_indices",
    ),
    source="timm timm/models/mlp_mixer.py",
    variants={
        "mixer_s32": (dict(patch_size=32, num_blocks=8, embed_dim=512), _MIXER_DATA, "Mixer-S/32 (timm)"),
        "mixer_s16": (dict(patch_size=16, num_blocks=8, embed_dim=512), _MIXER_DATA, "Mixer-S/16 (timm)"),
        "mixer_b32": (dict(patch_size=32, num_blocks=12, embed_dim=768), _MIXER_DATA, "Mixer-B/32 (timm)"),
        "mixer_b16": (dict(patch_size=16, num_blocks=12, embed_dim=768), _MIXER_DATA, "Mixer-B/16 (timm)"),
        "mixer_mobile": (dict(patch_size=16, num_blocks=8, embed_dim=256, mlp_ratio=(0.5, 4.0)),
                         _MIXER_DATA, "edge-mlp mobile: Mixer-S/16 at half width"),
    },
    official=("mixer_s32", "mixer_s16", "mixer_b32", "mixer_b16"),
)
