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


@dataclass
class OpTime:
    """One row of a per-op profile: the time per inference spent in ops (or kernels) of one name."""

    op: str
    calls: int  # per inference
    ms: float  # median over the profiled runs of the run's summed time in this op
    share: float  # of the summed op time of the run (ops only: not the runtime's own overhead)


@dataclass
class OpProfile:
    """What `edge-mlp bench --profile` records per artifact."""

    tool: str  # which profiler, and what its rows are
    runs: int
    total_ms: float | None  # median whole-inference time under the profiler (it adds overhead)
    ops: list[OpTime]

    @classmethod
    def from_runs(cls, tool: str, runs: Sequence[Sequence[tuple[str, float]]],
                  totals_ms: Sequence[float] = ()) -> OpProfile:
        """`runs`: per profiled inference, its (op name, ms) events."""
        names: dict[str, list[float]] = {}
        calls: dict[str, int] = {}
        for i, events in enumerate(runs):
            for name, _ in events:
                names.setdefault(name, [0.0] * len(runs))
            counts: dict[str, int] = {}
            for name, ms in events:
                names[name][i] += ms
                counts[name] = counts.get(name, 0) + 1
            for name, n in counts.items():
                calls[name] = max(calls.get(name, 0), n)
        medians = {name: statistics.median(per_run) for name, per_run in names.items()}
        total = sum(medians.values()) or 1.0
        ops = [OpTime(name, calls[name], round(ms, 4), round(ms / total, 4))
               for name, ms in sorted(medians.items(), key=lambda kv: -kv[1])]
        return cls(tool, len(runs), round(statistics.median(totals_ms), 4) if totals_ms else None, ops)
