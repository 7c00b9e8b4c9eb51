"""Latency figures of one backend: what `edge-mlp bench` measures here and what the targets' own
on-device benchmark tools report (a leaf module both read)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence


@dataclass
class Latency:
    median_ms: float
    p10_ms: float | None  # None where a device tool does not report it (see p5/p95)
    p90_ms: float | None
    mean_ms: float
    min_ms: float
    runs: int
    p5_ms: float | None = None  # LiteRT benchmark_model reports p5/median/p95
    p95_ms: float | None = None

    @classmethod
    def from_samples(cls, ms: Sequence[float], runs: int | None = None) -> Latency:
        """Percentiles of per-run times (numpy's linear interpolation); `runs` if each sample is a mean."""
        ordered = sorted(ms)
        deciles = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) > 1 else ordered * 9
        return cls(median_ms=statistics.median(ordered), p10_ms=deciles[0], p90_ms=deciles[-1],
                   mean_ms=statistics.fmean(ordered), min_ms=ordered[0], runs=runs or len(ordered))
