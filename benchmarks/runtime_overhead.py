"""What ExecuTorch and LiteRT charge per XNNPACK kernel they run (a benchmark, not a test)

thread_scaling.py finds ExecuTorch spending more time around its kernels than LiteRT; this says how
much of it comes per kernel, apart from any model. A chain of N elementwise ops (y = y + x, then
y = y - x, ...: each reads the input, so nothing folds two) is one delegated partition of N kernels
on both runtimes (checked: the profiler counts N), so latency = fixed + per kernel x N, fitted by
least squares. Two tensors: a tiny one, whose kernels take well under a microsecond and wake no
thread (what the runtime itself costs per kernel), and one XNNPACK splits over the threads (what a
split kernel costs beyond its work). Each N on each runtime is timed interleaved in one process
(`edge-mlp bench`'s settled round-robin), one tensor at a time, on 1 and 2 threads in alternating
phases (ExecuTorch's pybindings hold one thread pool per process); each median is the least over
the phases. Writes benchmarks/results/runtime_overhead.json and the README lines between its markers
(`--print`: only those; about 1 min).

    .venv/bin/python benchmarks/runtime_overhead.py [--ops 32,128,512] [--shapes "1,16,8,8;1,32,56,56"] [--reps 3] [--runs 200] [--print]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()
quiet.install()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edge_mlp.bench import measure  # noqa: E402
from edge_mlp.converters import get_converter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
README_BEGIN, README_END = "<!-- runtime-overhead:begin -->", "<!-- runtime-overhead:end -->"
TARGETS = {"executorch": "ExecuTorch", "tflite": "LiteRT"}
THREADS = (1, 2)


class Chain(torch.nn.Module):
    """N binary ops, each reading the graph input, so no exporter or XNNPACK pass can fold two."""

    def __init__(self, ops: int) -> None:
        super().__init__()
        self.ops = ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i in range(self.ops):
            y = y + x if i % 2 == 0 else y - x
        return y


def export(target: str, ops: int, folder: Path, shape: tuple[int, ...]) -> Path:
    x = torch.randn(shape)
    model = Chain(ops).eval()
    if target == "executorch":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        path = folder / f"chain{ops}.pte"
        edge = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
        path.write_bytes(edge.to_executorch().buffer)
    else:
        from edge_mlp.quiet import native_stderr

        with native_stderr():
            import litert_torch

            path = folder / f"chain{ops}.tflite"
            litert_torch.convert(model, (x,)).export(str(path))
    return path


def measure_all(ops: list[int], shapes: list[tuple[int, ...]], reps: int, runs: int) -> list[dict]:
    rng = np.random.default_rng(0)
    inputs = {shape: rng.standard_normal(shape).astype(np.float32) for shape in shapes}
    with tempfile.TemporaryDirectory(prefix="edge-mlp-overhead-") as tmp:
        paths = {}
        for i, shape in enumerate(shapes):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            paths.update({(target, shape, n): export(target, n, folder, shape) for target in TARGETS for n in ops})
        least: dict[tuple, float] = {}
        for _ in range(reps):
            for threads in THREADS:
                for shape in shapes:  # a tiny call timed right after a large one would carry its wake
                    runners = [measure.load_runner(key, lambda key=key: get_converter(key[0]).load(
                        paths[key], threads=threads).bind(inputs[shape]), warmup=20) for key in paths if key[1] == shape]
                    for key, lat in measure.time_interleaved(runners, runs).items():
                        least[(*key, threads)] = min(least.get((*key, threads), lat.median_ms), lat.median_ms)
                    del runners
        kernels = {key: sum(op.calls for op in get_converter(key[0]).profile(path, inputs[key[1]], 1, 5).ops)
                   for key, path in paths.items()}
    rows = []
    for shape in shapes:
        for target in TARGETS:
            for threads in THREADS:
                ms = [least[(target, shape, n, threads)] for n in ops]
                per_kernel, fixed = np.polyfit(ops, ms, 1)
                rows.append({"backend": target, "shape": list(shape), "threads": threads, "ops": ops,
                             "latency_ms": [round(v, 4) for v in ms],
                             "kernels_profiled": [kernels[(target, shape, n)] for n in ops],
                             "per_kernel_us": round(1000 * per_kernel, 3), "fixed_us": round(1000 * fixed, 1)})
    return rows


def markdown(report: dict) -> str:
    ops = report["rows"][0]["ops"]
    lines = [f"What each runtime charges per kernel: a chain of N elementwise ops (add, subtract) on one fp32 "
             f"tensor, timed interleaved, the least median over {report['reps']} phases of {report['runs']} rounds, "
             f"{report['machine']} (`benchmarks/runtime_overhead.py`); latency = fixed + per kernel x N, least "
             "squares. " + ("Each profile ran N kernels: the chain is one delegated partition on both runtimes."
                            if all(r["kernels_profiled"] == r["ops"] for r in report["rows"]) else
                            "Kernels per profile differ from N: " + ", ".join(
                                f"{r['backend']} {r['kernels_profiled']}" for r in report["rows"]
                                if r["kernels_profiled"] != r["ops"]) + "."), "",
             "| tensor | backend | threads | " + " | ".join(f"N = {n} ms" for n in ops) + " | per kernel µs | fixed µs |",
             "|---|---|---:|" + "---:|" * len(ops) + "---:|---:|"]
    shapes = list(dict.fromkeys(tuple(r["shape"]) for r in report["rows"]))
    name = {shape: "x".join(map(str, shape)) for shape in shapes}
    for r in report["rows"]:
        lines.append(f"| {name[tuple(r['shape'])]} | {TARGETS[r['backend']]} | {r['threads']} | "
                     + " | ".join(f"{v:.3f}" for v in r["latency_ms"]) + f" | {r['per_kernel_us']:.2f} | {r['fixed_us']:.0f} |")
    by = {(tuple(r["shape"]), r["backend"], r["threads"]): r["per_kernel_us"] for r in report["rows"]}
    tiny, large = shapes[0], shapes[-1]

    def gap(shape: tuple, threads: int) -> float:
        return by[(shape, "executorch", threads)] - by[(shape, "tflite", threads)]

    lines += ["", f"- {name[tiny]}, where no kernel wakes a thread: ExecuTorch costs {gap(tiny, 1):+.2f} / "
              f"{gap(tiny, 2):+.2f} µs per kernel against LiteRT on 1 / 2 threads: the per-call reshape and setup of its XNNPACK "
              "runtime (`XNNExecutor::prepare_args`, `forward`), which the `perf` sample above also finds small.",
              f"- {name[large]}, which XNNPACK splits over the threads: {gap(large, 1):+.2f} µs per kernel on 1 "
              f"thread, {gap(large, 2):+.2f} µs on 2. The extra is what splitting a kernel costs ExecuTorch (its "
              "thread pool and XNNPACK builds are not LiteRT's), not the kernel's work."]
    scaling = ROOT / "benchmarks" / "results" / "thread_scaling.json"
    if scaling.exists():
        scaling_report = json.loads(scaling.read_text())
        scaling_machine = scaling_report["machine"]
        whole = {(w["backend"], w["precision"], w["threads"]): w for w in scaling_report["whole"]}
        et, lt = whole[("executorch", "int8", 2)], whole[("tflite", "int8", 2)]
        lines.append(f"- Were all {et['kernel_calls']} of as_mlp_mobile int8's ExecuTorch kernels to pay the 2-thread "
                     f"gap, that would be {et['kernel_calls'] * gap(large, 2) / 1000:.2f} ms; ExecuTorch spends "
                     f"{et['outside_kernels_ms']:.2f} ms around its kernels and LiteRT {lt['outside_kernels_ms']:.2f} ms "
                     "(thread scaling above" + ("" if scaling_machine == report["machine"] else f", on {scaling_machine}")
                     + "). No export graph removes that cost per kernel, only kernels.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="32,128,512", help="chain lengths, comma-separated")
    parser.add_argument("--shapes", default="1,16,8,8;1,32,56,56",
                        help="NCHW shapes, ';'-separated: a tiny one (no thread woken) and one XNNPACK splits over threads")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "runtime_overhead.json"))
    parser.add_argument("--print", action="store_true", help="only render the JSON into the README")
    args = parser.parse_args()

    def report() -> dict:
        shapes = [tuple(int(d) for d in shape.split(",")) for shape in args.shapes.split(";")]
        rows = measure_all([int(n) for n in args.ops.split(",")], shapes, args.reps, args.runs)
        return {"reps": args.reps, "runs": args.runs, "machine": measure.machine_description(),
                "platform": platform.platform(), "rows": rows}

    from parity_table import publish_report

    publish_report(Path(args.json), README_BEGIN, README_END, markdown, None if args.print else report)


if __name__ == "__main__":
    main()
