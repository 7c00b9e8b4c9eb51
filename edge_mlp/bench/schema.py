"""The one schema of benchmark results: `edge-mlp bench`, the device harness and the sample apps'
benchmark modes all write it, and the README table and plot are generated from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..converters import all_converters
from ..timing import Latency

# 2: results gained `eager_baseline_lowering`, `fp32_baseline_lowering` and `profile`; version-1 files
# still validate.
BENCH_SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)

EAGER = "eager"
# Backend names, one per runtime (the runtime's own name, not our target's), keyed by target.
BACKENDS = {EAGER: "pytorch-eager", **{c.target: c.bench_backend for c in all_converters()}}


@dataclass
class BenchResult:
    model: str
    backend: str  # a value of BACKENDS
    precision: str  # fp32 | fp16 | int8 | w8
    shift_lowering: str  # slice | roll | identity (ablation) | none
    latency: Latency
    throughput_ips: float  # images per second at batch 1 (1000 / median)
    macs: int
    gflops: float  # 2 x MACs / median latency
    pct_of_gemm_peak: float | None  # gflops / the fp32 GEMM peak measured in the same run
    artifact: str | None = None
    size_bytes: int | None = None
    load_rss_mb: float | None = None  # resident memory added by loading the model + warm-up
    speedup_vs_eager_fp32: float | None = None  # fastest exact eager fp32 lowering's median / this median
    eager_baseline_lowering: str | None = None  # which eager lowering that was (schema 2)
    speedup_vs_fp32: float | None = None  # same backend: fp32 median / this median
    # The fp32 row that was: the same lowering, else the backend's only fp32 row (schema 2).
    fp32_baseline_lowering: str | None = None
    delegation: dict[str, Any] | None = None  # from the artifact's manifest coverage
    profile: dict[str, Any] | None = None  # `bench --profile`: edge_mlp.timing.OpProfile as a dict (schema 2)
    source: str = "host"  # host | android:<serial> | ios:<device>


@dataclass
class ShiftCost:
    model: str
    backend: str
    precision: str
    lowering: str  # slice | roll
    median_ms: float
    identity_median_ms: float

    @property
    def fraction(self) -> float:
        """Share of the latency the shift takes: (with - without) / with."""
        return (self.median_ms - self.identity_median_ms) / self.median_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": round(self.fraction, 4)}


@dataclass
class Machine:
    description: str  # CPU model, cores
    platform: str
    threads: int
    gemm_peak_gflops: float | None  # fp32 GEMM, same threads, same process
    gemm: str  # what the peak measured
    process_peak_rss_mb: float | None  # host: the benchmark process; device runs: None


@dataclass
class BenchReport:
    machine: Machine
    settings: dict[str, Any]
    results: list[BenchResult] = field(default_factory=list)
    shift_costs: list[ShiftCost] = field(default_factory=list)
    schema_version: int = BENCH_SCHEMA_VERSION
    edge_mlp_version: str = ""
    tool: str = "edge-mlp bench"  # the sample apps write "edge-mlp android app" / "edge-mlp ios app"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "tool": self.tool, "edge_mlp_version": self.edge_mlp_version,
            "machine": asdict(self.machine), "settings": self.settings,
            "results": [asdict(r) for r in self.results], "shift_costs": [s.to_dict() for s in self.shift_costs],
        }


def validate(data: dict[str, Any]) -> list[str]:
    """Problems with a bench JSON document (empty when valid): schema, positivity, consistency."""
    problems = []
    if data.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        problems.append(f"schema_version {data.get('schema_version')!r} is not one of {READABLE_SCHEMA_VERSIONS}")
    for i, r in enumerate(data.get("results", [])):
        where = f"results[{i}] {r.get('model')}/{r.get('backend')}/{r.get('precision')}"
        lat = r["latency"]
        if r["backend"] not in BACKENDS.values():
            problems.append(f"{where}: unknown backend")
        order = [lat["min_ms"], lat["p5_ms"], lat["p10_ms"], lat["median_ms"], lat["p90_ms"], lat["p95_ms"]]
        order = [v for v in order if v is not None]
        if not (0 < order[0] and order == sorted(order)):
            problems.append(f"{where}: latency order min <= p5 <= p10 <= median <= p90 <= p95 broken or not positive")
        if r.get("source", "host") == "host" and (lat["p10_ms"] is None or lat["p90_ms"] is None):
            problems.append(f"{where}: host results need p10 and p90")
        if lat["runs"] < 1 or r["macs"] <= 0:
            problems.append(f"{where}: runs / macs must be positive")
        if abs(r["throughput_ips"] - 1000.0 / lat["median_ms"]) > 1e-6 * r["throughput_ips"] + 1e-9:
            problems.append(f"{where}: throughput is not 1000 / median")
        if abs(r["gflops"] - 2 * r["macs"] / (lat["median_ms"] * 1e6)) > 1e-6 * r["gflops"] + 1e-9:
            problems.append(f"{where}: gflops is not 2 x MACs / median")
        for key in ("size_bytes", "speedup_vs_eager_fp32", "speedup_vs_fp32", "pct_of_gemm_peak"):
            if r.get(key) is not None and r[key] <= 0:  # load_rss_mb may be <= 0 (freed memory)
                problems.append(f"{where}: {key} must be positive")
    return problems
