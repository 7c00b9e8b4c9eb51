"""What a second thread buys each XNNPACK kernel, on ExecuTorch and on LiteRT (a benchmark, not a test)

Times as_mlp_mobile at 224 (its shipped ExecuTorch and LiteRT artifacts, fp32 and int8) on 1 and on
2 threads: the whole call (`edge-mlp bench`'s settled round-robin) and each kind of XNNPACK kernel
(each runtime's own profiler, summed per inference). Both runtimes run the same XNNPACK, so a kernel
kind that speeds up on one and not on the other points at the graph around it, and one that slows
down on 2 threads on both points at XNNPACK. ExecuTorch's pybindings hold one XNNPACK thread pool
per process, so the 1- and 2-thread timings alternate in phases, `--reps` of each; every figure is
the least over the phases (a slow phase of the shared host only adds). The profiler's whole call
less its kernels is what the runtime spends around them, and over the number of kernels it ran,
what it spends around each. Writes benchmarks/results/thread_scaling.json
and the README table between its markers (`--print`: only that; about 3 min with kept artifacts).

    .venv/bin/python benchmarks/thread_scaling.py [--reps 5] [--runs 60] [--artifacts benchmarks/.artifacts] [--print]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()
quiet.install()

import numpy as np  # noqa: E402

from edge_mlp.bench import measure  # noqa: E402
from edge_mlp.converters import get_converter  # noqa: E402
from edge_mlp.timing import OpProfile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from neighbours import MODEL, PRECISIONS, artifact  # noqa: E402

README_BEGIN, README_END = "<!-- thread-scaling:begin -->", "<!-- thread-scaling:end -->"
TARGETS = ("executorch", "tflite")
THREADS = (1, 2)
SHOWN_MS = 0.15  # kernel kinds below this (on 1 thread) are left out of the README table


def measure_all(folder: Path, reps: int, runs: int) -> tuple[list[dict], list[dict]]:
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    paths = {(t, p): artifact(folder, t, p) for t in TARGETS for p in PRECISIONS}
    latency: dict[tuple, list[float]] = {}
    profiles: dict[tuple, list[OpProfile]] = {}
    for _ in range(reps):
        for threads in THREADS:
            runners = [measure.load_runner(key, lambda key=key: get_converter(key[0]).load(paths[key], threads=threads)
                                           .bind(x), warmup=10) for key in paths]
            for key, lat in measure.time_interleaved(runners, runs).items():  # PyTorch on 1 thread (Runner)
                latency.setdefault((*key, threads), []).append(lat.median_ms)
            del runners
            for (target, precision), path in paths.items():
                measure.settle()  # the backend profiled before may still spin its pool
                profile = get_converter(target).profile(path, x, threads=threads, runs=runs)
                profiles.setdefault((target, precision, threads), []).append(profile)
    # Each figure is the least over the phases: a slow phase of the shared host only adds.
    whole = []
    for key, phases in profiles.items():
        best = min(phases, key=lambda prof: prof.total_ms or 0.0)
        kernels = sum(op.ms for op in best.ops)
        whole.append({"backend": key[0], "precision": key[1], "threads": key[2],
                      "latency_ms": round(min(latency[key]), 3), "profiled_call_ms": best.total_ms,
                      "kernels_ms": round(kernels, 3), "outside_kernels_ms": round(best.total_ms - kernels, 3),
                      "kernel_calls": sum(op.calls for op in best.ops)})
    kinds: dict[tuple, dict[int, float]] = {}
    calls: dict[tuple, int] = {}
    for (target, precision, threads), phases in profiles.items():
        for prof in phases:
            for op in prof.ops:
                least = kinds.setdefault((target, precision, op.op), {})
                least[threads] = min(least.get(threads, op.ms), op.ms)
                calls[(target, precision, op.op)] = op.calls
    rows = []
    for (target, precision, op), least in kinds.items():
        one, two = least.get(1, 0.0), least.get(2, 0.0)
        rows.append({"backend": target, "precision": precision, "kernel": op, "calls": calls[(target, precision, op)],
                     "ms_1t": round(one, 4), "ms_2t": round(two, 4), "speedup": round(one / two, 3) if two else None})
    rows.sort(key=lambda r: (r["backend"], r["precision"], -r["ms_1t"]))
    return whole, rows


def summary(report: dict) -> list[str]:
    """The figures the README's argument rests on, derived from the tables below them."""
    w = {(r["backend"], r["precision"], r["threads"]): r for r in report["whole"]}
    lines = []
    for backend, name in (("executorch", "ExecuTorch"), ("tflite", "LiteRT")):
        around = ", ".join(f"{w[(backend, p, n)]['outside_kernels_ms']:.2f}" for p in PRECISIONS for n in THREADS)
        per_kernel = [1000 * r["outside_kernels_ms"] / r["kernel_calls"] for r in w.values() if r["backend"] == backend]
        lines.append(f"- {name}: around its kernels {around} ms per call (fp32 on 1, 2 threads; int8 on 1, 2), "
                     f"{min(per_kernel):.2f}-{max(per_kernel):.2f} µs per kernel; "
                     f"int8 over fp32 on 2 threads: whole call "
                     f"{w[(backend, 'fp32', 2)]['latency_ms'] / w[(backend, 'int8', 2)]['latency_ms']:.2f}x, "
                     f"kernels alone {w[(backend, 'fp32', 2)]['kernels_ms'] / w[(backend, 'int8', 2)]['kernels_ms']:.2f}x.")
    slower = []
    for backend, name in (("executorch", "ExecuTorch"), ("tflite", "LiteRT")):
        for precision in PRECISIONS:
            rows = [r for r in report["kernels"] if (r["backend"], r["precision"]) == (backend, precision)
                    and r["ms_1t"] >= SHOWN_MS and r["speedup"] and r["speedup"] < 1]
            kinds = ", ".join(f"{r['kernel']} {r['speedup']:.2f}x" for r in rows) or "none"
            slower.append(f"{name} {precision}: {kinds}")
    lines.append("- Kernel kinds slower on 2 threads than on 1: " + "; ".join(slower) + ".")
    et_fp32, lt_int8, et_int8 = w[("executorch", "fp32", 2)], w[("tflite", "int8", 2)], w[("executorch", "int8", 2)]
    what_if = lt_int8["kernels_ms"] + et_int8["outside_kernels_ms"]
    lines.append(f"- ExecuTorch int8 with LiteRT int8's kernel time and its own runtime around it: {what_if:.2f} ms "
                 f"under the profiler, {et_fp32['profiled_call_ms'] / what_if:.2f}x ExecuTorch fp32's "
                 f"{et_fp32['profiled_call_ms']:.2f} ms.")
    return lines


def markdown(report: dict) -> str:
    lines = [f"{report['model']} at {report['img_size']}, shipped artifacts, on 1 and 2 threads, "
             f"{report['reps']} phases of {report['runs']} runs each, the least over the phases, {report['machine']} "
             "(`benchmarks/thread_scaling.py`). Latency: the settled round-robin's median; under the profiler: the "
             "whole call (ExecuTorch's `Method::execute`, LiteRT's invoke), the sum of its kernels, and the rest, "
             "which the runtime spends around them:", "",
             "| backend | precision | threads | latency ms | profiled call ms | kernels ms | outside kernels ms "
             "| kernels per call | outside per kernel µs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for w in report["whole"]:
        lines.append(f"| {w['backend']} | {w['precision']} | {w['threads']} | {w['latency_ms']:.2f} | "
                     f"{w['profiled_call_ms']:.2f} | {w['kernels_ms']:.2f} | {w['outside_kernels_ms']:.2f} | "
                     f"{w['kernel_calls']} | {1000 * w['outside_kernels_ms'] / w['kernel_calls']:.2f} |")
    lines += ["", *summary(report), "", f"Per kernel kind (those of at least {SHOWN_MS} ms on 1 thread):", "",
              "| backend | precision | kernel | calls | 1 thread ms | 2 threads ms | speedup |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in report["kernels"]:
        if r["ms_1t"] >= SHOWN_MS:
            speedup = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
            lines.append(f"| {r['backend']} | {r['precision']} | {r['kernel']} | {r['calls']} | {r['ms_1t']:.3f} | "
                         f"{r['ms_2t']:.3f} | {speedup} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--artifacts", default=str(ROOT / "benchmarks" / ".artifacts"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "thread_scaling.json"))
    parser.add_argument("--print", action="store_true", help="only render the JSON into the README")
    args = parser.parse_args()

    def report() -> dict:
        whole, rows = measure_all(Path(args.artifacts), args.reps, args.runs)
        return {"model": MODEL, "img_size": 224, "reps": args.reps, "runs": args.runs,
                "machine": measure.machine_description(), "platform": platform.platform(),
                "whole": whole, "kernels": rows}

    from parity_table import publish_report

    publish_report(Path(args.json), README_BEGIN, README_END, markdown, None if args.print else report)


if __name__ == "__main__":
    main()
