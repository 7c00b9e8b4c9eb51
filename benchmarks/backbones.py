"""Backbones for dense prediction: parity per output and latency per input size (a benchmark, not a test).

For each model, converts its backbone (`--features-only`, all four stages, demo weights) to every
target: fp32 as one multi-size artifact (224, 288x384 and 320 in one file) and int8 once per size
(224, 288x384). Runs `edge-mlp parity` on each artifact's runtime (Core ML through the MIL
interpreter) at every size it takes, checks the bounds of issue 15 (fp32: each output's max |diff|
<= 1e-4 x its range; int8: each output's cosine >= 0.99), times the host runtimes per size,
interleaved in one process, and writes JSON plus a markdown table for the README.

    .venv/bin/python benchmarks/backbones.py [--models as_mlp_mobile cycle_mlp_mobile] [--images 16] [--print]

It rewrites the README table between its `backbones` markers (`--print`: only that, from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()  # progress bars and step logs off, as in `edge-mlp convert`: before tqdm loads

from edge_mlp import converters  # noqa: E402
from edge_mlp.bench.measure import load_runner, time_interleaved  # noqa: E402
from edge_mlp.convert import ConvertJob, convert  # noqa: E402
from edge_mlp.manifest import Manifest  # noqa: E402
from edge_mlp.models._registry import format_image_size  # noqa: E402
from edge_mlp.parity import evaluation_set, run_parity  # noqa: E402

FP32_SIZES: list[int | tuple[int, int]] = [224, (288, 384), 320]
INT8_SIZES: list[int | tuple[int, int]] = [224, (288, 384)]
FP32_REL_BOUND = 1e-4  # max |diff| / range, each output
INT8_COSINE_BOUND = 0.99  # cosine, each output
DATA = "edge_mlp/assets/fashion_mnist_eval2000.npz"
README_BEGIN, README_END = "<!-- backbones:begin -->", "<!-- backbones:end -->"


def _parity_rows(artifact: Path, images: int) -> list[dict]:
    report = run_parity(artifact, data=DATA, limit=images, mil_precision="fp32" if "coreml" in artifact.name else None)
    int8 = report.precision == "int8"
    rows = []
    for o in report.outputs:
        passed = o.cosine_min >= INT8_COSINE_BOUND if int8 else o.max_abs_diff_rel <= FP32_REL_BOUND
        rows.append({"target": report.target, "precision": report.precision, **o.to_dict(), "runtime": report.runtime,
                     "bound": f"cosine >= {INT8_COSINE_BOUND}" if int8 else f"max|diff| <= {FP32_REL_BOUND} x range",
                     "passed": passed})
    return rows


def _latencies(artifacts: list[Path], threads: int, runs: int) -> list[dict]:
    """Per artifact and size on its host runtime, all interleaved in one loop."""
    runners = []
    for artifact in artifacts:
        manifest = Manifest.read(str(artifact) + ".manifest.json")
        conv = converters.get_converter(manifest.target.name)
        if not conv.host_timed:
            continue
        host = conv.open_model(artifact, threads=threads)
        for size in manifest.sizes():
            x, _, _ = evaluation_set(manifest, DATA, 1, size)
            key = (manifest.model.name, manifest.target.name, manifest.precision, format_image_size(size))
            runners.append(load_runner(key, lambda host=host, x=x: host.bind(x), warmup=3))
    timed = time_interleaved(runners, runs)
    return [{"model": k[0], "target": k[1], "precision": k[2], "size": k[3], "median_ms": round(v.median_ms, 2),
             "p10_ms": round(v.p10_ms, 2), "p90_ms": round(v.p90_ms, 2)} for k, v in timed.items()]


def _markdown(report: dict) -> str:
    lines = ["| model | target | precision | size | worst max\\|diff\\|/range | worst cosine | bound met | latency ms (p10-p90) |",
             "|---|---|---|---|---:|---:|:---:|---:|"]
    latency = {(r["model"], r["target"], r["precision"], r["size"]): r for r in report["latency"]}
    groups: dict[tuple, list[dict]] = {}
    for r in report["parity"]:
        groups.setdefault((r["model"], r["target"], r["precision"], r["size"]), []).append(r)
    order = [format_image_size(s) for s in FP32_SIZES]
    for key, rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], order.index(kv[0][3]))):
        lat = latency.get(key)
        cell = f"{lat['median_ms']:.1f} ({lat['p10_ms']:.1f}-{lat['p90_ms']:.1f})" if lat else "needs a Mac"
        lines.append(f"| {' | '.join(key)} | {max(r['max_abs_diff_rel'] for r in rows):.1e} | "
                     f"{min(r['cosine_min'] for r in rows):.5f} | {'yes' if all(r['passed'] for r in rows) else 'NO'} | {cell} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["as_mlp_mobile", "cycle_mlp_mobile"])
    parser.add_argument("--targets", nargs="+", default=converters.list_targets())
    parser.add_argument("--images", type=int, default=16, help="evaluation images per size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", default="benchmarks/results/backbones.json")
    parser.add_argument("--merge", action="store_true",
                        help="replace only these models' and targets' rows in an existing --json")
    parser.add_argument("--print", action="store_true", help="only render the JSON into the README")
    args = parser.parse_args()
    if args.print:
        _render_readme(json.loads(Path(args.json).read_text())["markdown"])
        return
    warnings.simplefilter("ignore")
    parity, conversions, artifacts = [], [], []
    with tempfile.TemporaryDirectory() as out:
        for model in args.models:
            jobs = [ConvertJob(model, t, precision="fp32", weights="demo", img_size=FP32_SIZES, features_only=True,
                               out_dir=f"{out}/fp32") for t in args.targets]
            jobs += [ConvertJob(model, t, precision="int8", weights="demo", img_size=size, features_only=True,
                                out_dir=f"{out}/int8-{format_image_size(size)}")
                     for size in INT8_SIZES for t in args.targets]
            for job in jobs:
                start = time.perf_counter()
                (result,) = convert(job)
                seconds = round(time.perf_counter() - start, 1)
                m = result.manifest
                conversions.append({"model": model, "target": job.target, "precision": str(job.precision),
                                    "sizes": [format_image_size(s) for s in m.sizes()], "seconds": seconds,
                                    "size_mb": round(m.artifact.size_bytes / 1e6, 2),
                                    "entries": [s.entry for s in m.input_sizes]})
                rows = [{"model": model, **r} for r in _parity_rows(result.artifact, args.images)]
                parity += rows
                artifacts.append(result.artifact)
                worst = max(r["max_abs_diff_rel"] for r in rows)
                print(f"{model} {job.target:10s} {job.precision!s:5s} {','.join(conversions[-1]['sizes']):18s} "
                      f"{seconds:6.1f} s  worst rel {worst:.1e}  min cos {min(r['cosine_min'] for r in rows):.5f}  "
                      f"{'ok' if all(r['passed'] for r in rows) else 'BOUND MISSED'}", flush=True)
                _write(args, conversions, parity, [])
        latency = _latencies(artifacts, args.threads, args.runs)
    _write(args, conversions, parity, latency)
    _render_readme(json.loads(Path(args.json).read_text())["markdown"])


def _render_readme(markdown: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from parity_table import rewrite_readme_section

    rewrite_readme_section(README_BEGIN, README_END, markdown)
    print(markdown)


def _write(args: argparse.Namespace, conversions: list[dict], parity: list[dict], latency: list[dict]) -> None:
    """The JSON report (after every artifact too, so an interrupted run keeps what it measured)."""
    if args.merge and Path(args.json).is_file():
        old = json.loads(Path(args.json).read_text())
        ours = {(m, t) for m in args.models for t in args.targets}
        conversions = [r for r in old["conversions"] if (r["model"], r["target"]) not in ours] + conversions
        parity = [r for r in old["parity"] if (r["model"], r["target"]) not in ours] + parity
        latency = [r for r in old["latency"] if (r["model"], r["target"]) not in ours] + latency
    report = {
        "images_per_size": args.images, "data": DATA, "weights": "demo (Fashion-MNIST checkpoints)",
        "bounds": {"fp32_max_abs_diff_rel": FP32_REL_BOUND, "int8_cosine_min": INT8_COSINE_BOUND},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "threads": args.threads,
        "conversions": conversions, "parity": parity, "latency": latency,
        "all_bounds_met": all(r["passed"] for r in parity),
    }
    report["markdown"] = _markdown(report)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
