"""Does a backend's latency depend on which backends share the bench run? (a benchmark, not a test)

Times as_mlp_mobile at 224 (its shipped artifacts: ExecuTorch, LiteRT, ONNX Runtime at fp32 and
int8, and PyTorch eager fp32 with the conv lowering) once each alone and once all interleaved, in
two ways:

- `now`: as `edge-mlp bench` times: each call starts once the process's other threads are idle
  (`edge_mlp.bench.measure.settle`), and each target's runtime runs with PyTorch's intra-op threads
  at 1, eager at the bench's thread count, set before the timer starts (`measure.Runner`);
- `before`: as it timed before both (stop 35): back-to-back calls, ExecuTorch's pybindings called
  directly with PyTorch at the bench's thread count.

Each round times every backend both ways and in both orders: `interleaved` (the backend before is
the previous one in the list; the first follows the last of the round before, eager PyTorch) and
`alone` (the backend before is itself: one untimed call, then the timed one). A backend whose median
changes between the two is timed partly on its neighbour's cost. Writes
benchmarks/results/neighbours.json and the README table between its markers (`--print`: only that).

    .venv/bin/python benchmarks/neighbours.py [--runs 60] [--threads 2] [--artifacts benchmarks/.artifacts] [--print]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()
quiet.install()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edge_mlp.bench import measure  # noqa: E402
from edge_mlp.convert import ConvertJob, convert  # noqa: E402
from edge_mlp.converters import get_converter  # noqa: E402
from edge_mlp.manifest import open_artifact  # noqa: E402
from edge_mlp.options import ExportForms, ShiftLowering  # noqa: E402
from edge_mlp.parity import reference_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
README_BEGIN, README_END = "<!-- neighbours:begin -->", "<!-- neighbours:end -->"
MODEL = "as_mlp_mobile"
TARGETS = ("executorch", "tflite", "onnx")
PRECISIONS = ("fp32", "int8")


def artifact(folder: Path, target: str, precision: str) -> Path:
    """The shipped (auto-lowered) artifact, kept where benchmarks/run_all.py keeps it."""
    sub = folder / f"{MODEL}-auto"
    path = sub / f"{MODEL}-{target}-{precision}{get_converter(target).suffix}"
    if not path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            convert(ConvertJob(model=MODEL, target=target, precision=precision, img_size=224, out_dir=str(sub),
                               for_benchmark=True))
    return path


def calls(folder: Path, threads: int, before: bool) -> list[tuple[tuple, measure.Call, int]]:
    """(key, call, PyTorch threads set before the call) per backend: `before` ran everything at the
    bench's thread count, `now` runs a target's runtime at 1 and eager at the bench's count."""
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    out = []
    manifest = None
    for target in TARGETS:
        for precision in PRECISIONS:
            path, manifest = open_artifact(artifact(folder, target, precision))
            if target == "executorch" and before:  # the pybindings called as bind() did before
                from executorch.runtime import Runtime

                get_converter(target).load(path, threads=threads)  # resets XNNPACK's pool to `threads`
                method, inputs = Runtime.get().load_program(str(path)).load_method("forward"), [torch.from_numpy(x)]
                out.append(((target, precision), lambda m=method, i=inputs: m.execute(i), threads))
            else:
                out.append(((target, precision), get_converter(target).load(path, threads=threads).bind(x),
                            threads if before else 1))
    eager = reference_model(manifest)
    out.append((("pytorch-eager", "fp32"), measure.eager_call(eager, x, ExportForms(shift=ShiftLowering.CONV)), threads))
    return out


def timed(call: measure.Call, settled: bool, pytorch_threads: int) -> float:
    measure.set_torch_threads(pytorch_threads)
    if settled:
        measure.settle()
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def markdown(report: dict) -> str:
    lines = [f"{report['model']} at {report['img_size']}, {report['threads']} threads, median of {report['runs']} "
             f"rounds, {report['machine']} (`benchmarks/neighbours.py`):", "",
             "| timing | backend | precision | alone ms | interleaved ms | interleaved / alone |",
             "|---|---|---|---:|---:|---:|"]
    for r in report["rows"]:
        lines.append(f"| {r['mode']} | {r['backend']} | {r['precision']} | {r['alone_ms']:.2f} | "
                     f"{r['interleaved_ms']:.2f} | {r['interleaved_over_alone']:.2f} |")
    return "\n".join(lines)


def measure_all(folder: Path, threads: int, runs: int) -> list[dict]:
    samples: dict[tuple, list[float]] = {}
    with measure.torch_threads(threads):
        modes = {mode: calls(folder, threads, mode == "before") for mode in ("before", "now")}
        for runners in modes.values():
            for _, call, _ in runners:
                for _ in range(5):
                    call()
        for _ in range(runs):  # every way of timing in each round: the machine's drift hits all alike
            for mode, runners in modes.items():
                settled = mode == "now"
                for key, call, own in runners:  # interleaved: the backend before is the previous one
                    samples.setdefault((mode, *key, "interleaved"), []).append(timed(call, settled, own))
                for key, call, own in runners:  # alone: the backend before is itself
                    measure.set_torch_threads(own)
                    call()
                    samples.setdefault((mode, *key, "alone"), []).append(timed(call, settled, own))
    rows = []
    for (mode, backend, precision, how), ms in samples.items():
        if how == "alone":
            alone, together = float(np.median(ms)), float(np.median(samples[(mode, backend, precision, "interleaved")]))
            rows.append({"mode": mode, "backend": backend, "precision": precision, "alone_ms": round(alone, 3),
                         "interleaved_ms": round(together, 3), "interleaved_over_alone": round(together / alone, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--artifacts", default=str(ROOT / "benchmarks" / ".artifacts"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "neighbours.json"))
    parser.add_argument("--print", action="store_true", help="only render the JSON into the README")
    args = parser.parse_args()

    def report() -> dict:
        rows = measure_all(Path(args.artifacts), args.threads, args.runs)
        return {"model": MODEL, "img_size": 224, "threads": args.threads, "runs": args.runs,
                "machine": measure.machine_description(), "platform": platform.platform(), "rows": rows}

    from parity_table import publish_report

    publish_report(Path(args.json), README_BEGIN, README_END, markdown, None if args.print else report)


if __name__ == "__main__":
    main()
