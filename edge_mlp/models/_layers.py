"""Small layers shared by the model families (parameter-free, so they never touch state dicts)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn


def to_2tuple(value: Any) -> tuple[Any, Any]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected one value or two, got {value!r}")
        return tuple(value)  # type: ignore[return-value]
    return (value, value)


class DropPath(nn.Module):
    """Stochastic depth per sample; the identity in eval mode (and in every exported graph)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def drop_path_or_identity(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()
