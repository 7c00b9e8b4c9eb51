"""Bench results as JSON, CSV, a markdown table and a PNG plot, all from one `BenchReport` dict."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ..fileio import atomic_output, write_text_atomic
from .schema import BACKENDS

CSV_COLUMNS = (
    "model", "backend", "precision", "shift_lowering", "median_ms", "p10_ms", "p90_ms", "throughput_ips",
    "speedup_vs_eager_fp32", "speedup_vs_fp32", "gflops", "pct_of_gemm_peak", "macs", "size_bytes",
    "load_rss_mb", "artifact",
)
_ORDER = list(BACKENDS.values())


def sorted_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(data["results"], key=lambda r: (r["model"], _ORDER.index(r["backend"]), r["precision"] != "fp32",
                                                    r["precision"], r["shift_lowering"]))


def flat(row: dict[str, Any]) -> dict[str, Any]:
    lat = row["latency"]
    return {**{k: row.get(k) for k in CSV_COLUMNS}, "median_ms": lat["median_ms"], "p10_ms": lat["p10_ms"],
            "p90_ms": lat["p90_ms"]}


# What each output option writes, by suffix: checked before a run (edge_mlp.fileio.check_output_file).
OUTPUT_SUFFIXES = {"json": (".json",), "csv": (".csv",), "plot": (".png", ".svg", ".pdf")}


def write_json(data: dict[str, Any], path: str | Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_csv(data: dict[str, Any], path: str | Path) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in sorted_rows(data):
            writer.writerow(flat(row))


def _x(value: float | None, fmt: str = "{:.2f}x") -> str:
    return "" if value is None else fmt.format(value)


def _cell(value: Any) -> str:
    """A table cell on one line whatever the value holds: whitespace runs (newlines included) become
    one space and a `|` is escaped, so each table line stays one markdown row at any terminal width."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


# Below 10 timed runs per backend the median moves with one or two slow calls on a shared machine,
# by as much as the gaps between backends, so a ratio of two medians says nothing.
MIN_RUNS_FOR_SPEEDUPS = 10


def timed_runs(data: dict[str, Any]) -> int | None:
    """Timed runs per backend: the report's `settings.runs`, else the fewest any result had."""
    runs = (data.get("settings") or {}).get("runs")
    if isinstance(runs, int) and not isinstance(runs, bool):
        return runs
    per_row = [r["latency"]["runs"] for r in data.get("results", []) if r.get("latency", {}).get("runs")]
    return min(per_row) if per_row else None


def eager_baselines(data: dict[str, Any]) -> dict[str, str]:
    """model -> the eager lowering its speedups were measured against (schema 1 files: slice)."""
    return {r["model"]: r.get("eager_baseline_lowering") or "slice" for r in data["results"]}


def as_shipped(row: dict[str, Any], baselines: dict[str, str]) -> bool:
    """Whether a row uses the shift lowering `convert --shift-lowering auto` ships for its backend,
    precision and family; eager rows: the speedups' baseline."""
    from edge_mlp import converters
    from edge_mlp.convert import auto_lowering
    from edge_mlp.models import get_spec
    from edge_mlp.options import Precision

    if row["shift_lowering"] == "none":
        return True
    target = {v: k for k, v in BACKENDS.items()}[row["backend"]]
    if target == "eager":
        return row["shift_lowering"] == baselines.get(row["model"])
    auto = auto_lowering(converters.get_converter(target), Precision(row["precision"]), get_spec(row["model"]).family)
    return row["shift_lowering"] == auto.lowering


def markdown_table(data: dict[str, Any], shipped_only: bool = False) -> str:
    """Latency table, one row per model x backend x precision x shift lowering (`none`: no shift in
    the family); `shipped_only` drops the ablation rows (other lowerings than `convert` uses). From a
    run of fewer than MIN_RUNS_FOR_SPEEDUPS timed runs the speedup cells stay empty and, where that
    withheld any, a line after the table (after a blank line, so that it is not read as a row) says why."""
    lines = [_row("model", "backend", "precision", "shift lowering", "median ms (p10-p90)", "vs fastest eager fp32",
                  "int8 vs fp32", "GFLOP/s", "% GEMM peak", "size MB"),
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    runs = timed_runs(data)
    speedups = runs is None or runs >= MIN_RUNS_FOR_SPEEDUPS
    baselines = eager_baselines(data)
    withheld = False
    for r in sorted_rows(data):
        if shipped_only and not as_shipped(r, baselines):
            continue
        withheld |= not speedups and (r.get("speedup_vs_eager_fp32") or r.get("speedup_vs_fp32")) is not None
        lat = r["latency"]
        median = f"{lat['median_ms']:.2f}"
        if lat.get("p10_ms") is not None and lat.get("p90_ms") is not None:  # device tools may not report them
            median += f" ({lat['p10_ms']:.2f}-{lat['p90_ms']:.2f})"
        size = f"{r['size_bytes'] / 1e6:.1f}" if r.get("size_bytes") else ""
        lines.append(_row(
            r["model"], r["backend"], r["precision"], r["shift_lowering"], median,
            _x(r.get("speedup_vs_eager_fp32")) if speedups else "", _x(r.get("speedup_vs_fp32")) if speedups else "",
            f"{r['gflops']:.1f}", _x(r.get("pct_of_gemm_peak"), "{:.0f} %"), size,
        ))
    if withheld:
        lines += ["", f"speedups omitted: {runs} timed run{'s' if runs != 1 else ''} per backend, too few for a "
                      f"ratio of medians to mean anything; use --runs {MIN_RUNS_FOR_SPEEDUPS} or more"]
    return "\n".join(lines)


def shift_markdown(data: dict[str, Any]) -> str:
    lines = ["| model | backend | precision | lowering | median ms | without shift ms | shift share |",
             "|---|---|---|---|---:|---:|---:|"]
    for s in sorted(data.get("shift_costs", []), key=lambda s: (s["model"], _ORDER.index(s["backend"]),
                                                               s["precision"], s["lowering"])):
        lines.append(_row(s["model"], s["backend"], s["precision"], s["lowering"], f"{s['median_ms']:.2f}",
                          f"{s['identity_median_ms']:.2f}", f"{100 * s['fraction']:.1f} %"))
    return "\n".join(lines)


def profile_markdown(data: dict[str, Any], top: int = 8) -> str:
    """The `top` ops of each profiled result: where the time goes."""
    lines = []
    for r in sorted_rows(data):
        profile = r.get("profile")
        if not profile:
            continue
        total = f", {profile['total_ms']:.2f} ms per inference under the profiler" if profile.get("total_ms") else ""
        lines += ["", f"{r['model']} {r['backend']} {r['precision']} ({r['shift_lowering']}): {profile['tool']}{total}",
                  "", "| op | calls | ms | share |", "|---|---:|---:|---:|"]
        for op in profile["ops"][:top]:
            lines.append(_row(op["op"], op["calls"], f"{op['ms']:.3f}", f"{100 * op['share']:.1f} %"))
    return "\n".join(lines).lstrip("\n")


def plot(data: dict[str, Any], path: str | Path) -> None:
    """Median latency (bars) with p10-p90 (whiskers) per backend and precision, one panel per model,
    at the shift lowering each backend ships with (eager: the fastest exact lowering)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines = eager_baselines(data)
    rows = [r for r in sorted_rows(data) if as_shipped(r, baselines)]
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    colors = {"fp32": "#4C72B0", "int8": "#DD8452", "fp16": "#55A868", "w8": "#8172B2"}
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        labels = [f"{r['backend'].split('-')[0]}\n{r['precision']}" for r in mine]
        medians = [r["latency"]["median_ms"] for r in mine]
        errors = [[m - r["latency"]["p10_ms"] for m, r in zip(medians, mine)],
                  [r["latency"]["p90_ms"] - m for m, r in zip(medians, mine)]]
        ax.bar(range(len(mine)), medians, yerr=errors, capsize=3,
               color=[colors.get(r["precision"], "gray") for r in mine])
        ax.set_xticks(range(len(mine)), labels, fontsize=8)
        ax.set_title(model)
        ax.set_ylabel("latency, ms (median, p10-p90)")
        for i, m in enumerate(medians):
            ax.text(i, m, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    machine = data["machine"]
    fig.suptitle(f"edge-mlp bench: batch 1, {machine['threads']} threads, {machine['description']}", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
