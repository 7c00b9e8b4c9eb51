"""Parameter and MAC counts, computed on the 'meta' device so even the largest model costs ~0 s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import ModelConfig, build, resolve_config


@dataclass(frozen=True)
class ModelStats:
    params: int
    macs: int  # multiply-accumulates of conv / linear / matmul for one image
    input_size: tuple[int, int, int]

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def model_stats(name: str, **overrides: Any) -> ModelStats:
    return config_stats(resolve_config(name, **overrides))


def config_stats(config: ModelConfig) -> ModelStats:
    with torch.device("meta"):
        model = build(config).eval()
        x = torch.empty(1, *config.input_size)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return ModelStats(params=params, macs=counter.get_total_flops() // 2, input_size=config.input_size)
