"""Latency of the three mobile models at 224x224 on every host backend, and the README table + plot.

    .venv/bin/python benchmarks/run_all.py [--runs 30] [--threads 2] [--artifacts DIR] [--render-only]

One `edge-mlp bench` run (library call) per model, each interleaving PyTorch eager fp32,
ExecuTorch, LiteRT and ONNX Runtime at fp32 and int8, with the shift-cost ablation for the families
that have a shift. Converted artifacts are kept in --artifacts and reused when they match, so a
re-run only re-times. Writes benchmarks/results/bench.json, bench.csv, latency.png and rewrites the
latency section of README.md between its markers.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import warnings
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()  # progress bars and step logs off, as in `edge-mlp convert`: before tqdm loads

from edge_mlp.bench import BenchJob, run_bench, validate  # noqa: E402
from edge_mlp.bench.output import markdown_table, plot, shift_markdown, write_csv, write_json  # noqa: E402
from edge_mlp.bench.schema import BenchReport  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("as_mlp_mobile", "mixer_mobile", "cycle_mlp_mobile")
BEGIN, END = "<!-- latency-table:begin -->", "<!-- latency-table:end -->"


def merge(reports: list[BenchReport]) -> dict:
    data = reports[0].to_dict()
    for report in reports[1:]:
        more = report.to_dict()
        data["results"] += more["results"]
        data["shift_costs"] += more["shift_costs"]
        data["machine"]["gemm_peak_gflops"] = max(data["machine"]["gemm_peak_gflops"], more["machine"]["gemm_peak_gflops"])
        data["machine"]["process_peak_rss_mb"] = more["machine"]["process_peak_rss_mb"]
    peak = data["machine"]["gemm_peak_gflops"]
    for row in data["results"]:  # one machine peak for the whole document: the best one measured
        row["pct_of_gemm_peak"] = 100.0 * row["gflops"] / peak
    return data


def _row(data: dict, model: str, backend: str, precision: str, lowering: str | None = None) -> dict | None:
    for r in data["results"]:
        if (r["model"], r["backend"], r["precision"]) == (model, backend, precision) and \
                (lowering is None or r["shift_lowering"] == lowering):
            return r
    return None


def goals(data: dict, model: str = "as_mlp_mobile") -> str:
    """The issue's targets for `model`, measured in this run (ratios of medians)."""
    from edge_mlp.bench.output import as_shipped, eager_baselines

    baselines = eager_baselines(data)
    shipped = {(r["backend"], r["precision"]): r for r in data["results"]
               if r["model"] == model and as_shipped(r, baselines)}
    ms = {k: r["latency"]["median_ms"] for k, r in shipped.items()}
    et, lite, ort = "executorch-xnnpack", "litert-xnnpack", "onnxruntime-cpu"
    eager = ms.get(("pytorch-eager", "fp32"))
    parts = []
    if eager and (et, "int8") in ms:
        parts.append(f"ExecuTorch int8 is {eager / ms[(et, 'int8')]:.2f}x the fastest eager fp32 lowering "
                     f"({baselines[model]}; goal 4.0x)")
    for backend, name in ((et, "ExecuTorch"), (lite, "LiteRT"), (ort, "ONNX Runtime")):
        if (backend, "int8") in ms and (backend, "fp32") in ms:
            goal = "1.2x" if backend == ort else "2.5x"
            parts.append(f"{name} int8 over fp32 {ms[(backend, 'fp32')] / ms[(backend, 'int8')]:.2f}x (goal {goal})")
    if (et, "fp32") in ms and (lite, "fp32") in ms:
        parts.append(f"ExecuTorch fp32 takes {ms[(et, 'fp32')] / ms[(lite, 'fp32')]:.2f}x LiteRT fp32's time (goal <= 1.1x)")
    for key in ((lite, "fp32"), (lite, "int8")):
        delegation = (shipped.get(key) or {}).get("delegation") or {}
        if "transpose_ops" in delegation:
            parts.append(f"the {key[1]} .tflite has {delegation['transpose_ops']} TRANSPOSE "
                         f"({delegation['ops_total'] - delegation['ops_delegated']} ops outside the delegate; goal <= 2)")
    for cost in data.get("shift_costs", []):
        row = _row(data, cost["model"], cost["backend"], cost["precision"], cost["lowering"])
        if cost["precision"] == "int8" and cost["backend"] in (et, lite) and row and as_shipped(row, baselines):
            goal = "5 %" if cost["model"] == "as_mlp_mobile" else "10 %"
            parts.append(f"the shift ({cost['lowering']}) takes {100 * cost['fraction']:.1f} % of {cost['model']} "
                         f"{cost['backend']} int8 (goal <= {goal})")
    return f"Against the goals, {model} in this run: " + "; ".join(parts) + "."


def readme_section(data: dict) -> str:
    m = data["machine"]
    seconds = data["settings"].get("run_all_s")
    took = f"took {seconds / 60:.0f} min (" if seconds else "ran (its duration is not in bench.json; "
    return "\n".join([
        f"Batch 1, 224x224, random-init weights (latency does not depend on them), {m['threads']} threads, "
        f"{data['settings']['runs']} interleaved rounds after {data['settings']['warmup']} warm-up calls, on "
        f"{m['description']} (`{m['platform']}`), a shared machine: compare ratios within a run, not absolute "
        f"times across runs. fp32 GEMM peak in the same process: {m['gemm_peak_gflops']:.0f} GFLOP/s "
        f"(`{m['gemm']}`; int8 rows are still compared with this fp32 peak, so they can exceed 100 %). "
        f"`benchmarks/run_all.py` {took}conversions kept in --artifacts are reused) "
        "and wrote `benchmarks/results/bench.{json,csv}` and the plot. A negative shift share means "
        "the variant without the shift ran slower, i.e. the backend optimized the two graphs "
        "differently (ONNX Runtime) or noise exceeded the shift's cost.",
        "",
        markdown_table(data, shipped_only=True),
        "",
        "What the shift costs (same backend and precision, shift lowered as identity = removed):",
        "",
        shift_markdown(data),
        "",
        goals(data),
        "",
        "![latency](benchmarks/results/latency.png)",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--artifacts", default=str(ROOT / "benchmarks" / ".artifacts"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--render-only", action="store_true",
                        help="time nothing: rewrite the CSV, plot and README section from results/bench.json "
                             "(after `make shift-choice` changed which rows are shipped)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.render_only:
        data = json.loads((RESULTS / "bench.json").read_text())
    else:
        start = time.perf_counter()
        reports = []
        for model in args.models:
            job = BenchJob(sources=[model], img_size=args.img_size, threads=args.threads, warmup=args.warmup,
                           runs=args.runs, shift_ablation=model != "mixer_mobile", keep_artifacts=args.artifacts)
            reports.append(run_bench(job, progress=lambda msg, m=model: print(f"[{m}] {msg}", flush=True)))
        data = merge(reports)
        data["settings"]["run_all_s"] = round(time.perf_counter() - start)
    problems = validate(data)
    if problems:
        raise SystemExit("inconsistent bench report: " + "; ".join(problems))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(data, RESULTS / "bench.json")
    write_csv(data, RESULTS / "bench.csv")
    plot(data, RESULTS / "latency.png")
    readme = Path(args.readme)
    block = f"{BEGIN}\n{readme_section(data)}\n{END}"
    text = readme.read_text()
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S) if BEGIN in text \
        else text + f"\n## Latency\n\n{block}\n"
    readme.write_text(text)
    print(markdown_table(data, shipped_only=True))
    print(shift_markdown(data))


if __name__ == "__main__":
    main()
