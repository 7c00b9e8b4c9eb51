"""Parameter and MAC counts, computed on the 'meta' device (no weights are allocated).

A meta forward pass still costs about half a second per model in torch's Python reference
kernels, so `edge-mlp list` reads the registered variants' figures from a table generated from
the registry (`make zoo-stats`; a test keeps it current). Any other config is counted live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import ModelConfig, build, list_models, resolve_config

ZOO_STATS = Path(__file__).parent / "assets" / "zoo_stats.json"


@dataclass(frozen=True)
class ModelStats:
    params: int
    macs: int  # multiply-accumulates of conv / linear / matmul for one image
    input_size: tuple[int, int, int]

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def model_stats(name: str, **overrides: Any) -> ModelStats:
    config = resolve_config(name, **overrides)
    return _recorded(config) or config_stats(config)


def config_stats(config: ModelConfig) -> ModelStats:
    with torch.device("meta"):
        model = build(config).eval()
        x = torch.empty(1, *config.input_size)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return ModelStats(params=params, macs=counter.get_total_flops() // 2, input_size=config.input_size)


@cache
def _table() -> dict[str, Any]:
    try:
        return json.loads(ZOO_STATS.read_text())
    except (OSError, ValueError):
        return {}


def _recorded(config: ModelConfig) -> ModelStats | None:
    """The table's figures, if it holds exactly this config (else it is stale or an override)."""
    row = _table().get(config.name)
    if row is None or row["config"] != json.loads(json.dumps(config.to_dict())):
        return None
    return ModelStats(params=row["params"], macs=row["macs"], input_size=config.input_size)


def zoo_stats_table() -> dict[str, Any]:
    """Live figures of every registered variant at its default config."""
    table = {}
    for name in list_models():
        config = resolve_config(name)
        stats = config_stats(config)
        table[name] = {"params": stats.params, "macs": stats.macs, "config": config.to_dict()}
    return table


if __name__ == "__main__":
    ZOO_STATS.write_text(json.dumps(zoo_stats_table(), indent=1) + "\n")
    print(f"wrote {ZOO_STATS}")
