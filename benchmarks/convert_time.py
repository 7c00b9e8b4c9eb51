"""Wall time of `edge-mlp convert` per target and precision (a benchmark, not a test).

The goal "all four targets fp32 + int8 in <= 120 s on 2 cores" is measured as a user runs it:
one `convert --target all --precision fp32,int8`, with `--jobs` workers (default auto: one per
core here). Each artifact's row gives its own seconds and stages (from its manifest, as its worker
measured them); `fp32_int8_serial_s` sums them: one artifact at a time, as `--jobs 1` converts,
though measured while the workers shared the cores (each a little slower than alone).
Then Core ML's other precisions, one at a time (rows only).

    .venv/bin/python benchmarks/convert_time.py [--model as_mlp_mobile] [--img-size 224] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()  # progress bars and step logs off, as in `edge-mlp convert`: before tqdm loads
quiet.install()

from edge_mlp import converters  # noqa: E402
from edge_mlp.convert import ConvertJob, convert  # noqa: E402
from edge_mlp.workers import default_workers  # noqa: E402

# Every target x precision of the registry: fp32 and int8 first (the goal's total), then the rest.
COMBOS = sorted(((c.target, str(p)) for c in converters.all_converters() for p in c.precisions),
                key=lambda tp: tp[1] not in ("fp32", "int8"))


def _row(result) -> dict:
    m = result.manifest
    return {
        "target": m.target.name, "precision": str(m.precision), "seconds": round(m.conversion["wall_time_s"], 2),
        "stages_s": m.conversion["stages_s"], "size_mb": round(m.artifact.size_bytes / 1e6, 2),
        "coverage": converters.get_converter(m.target.name).coverage_summary(m.coverage),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="as_mlp_mobile")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=None, help="workers of the fp32 + int8 run (default auto)")
    parser.add_argument("--json", default="benchmarks/results/convert_time.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    common = dict(model=args.model, img_size=args.img_size, calib_size=args.calib_size)
    with tempfile.TemporaryDirectory() as out:
        job = ConvertJob(target="all", precision=("fp32", "int8"), out_dir=out, jobs=args.jobs, **common)
        start = time.perf_counter()
        results = convert(job)
        goal = time.perf_counter() - start
        workers = min(len(results), args.jobs or default_workers(len(results)))
        for result in results:
            rows.append(_row(result))
            print(f"{rows[-1]['target']:10s} {rows[-1]['precision']:5s} {rows[-1]['seconds']:7.1f} s  "
                  f"{rows[-1]['size_mb']:6.1f} MB  {rows[-1]['coverage']}", flush=True)
        for target, precision in COMBOS:
            if precision in ("fp32", "int8"):
                continue
            (result,) = convert(ConvertJob(target=target, precision=precision, out_dir=out, **common))
            rows.append(_row(result))
            print(f"{target:10s} {precision:5s} {rows[-1]['seconds']:7.1f} s  {rows[-1]['size_mb']:6.1f} MB  "
                  f"{rows[-1]['coverage']}", flush=True)
    serial = sum(r["seconds"] for r in rows if r["precision"] in ("fp32", "int8"))
    report = {
        "model": args.model, "img_size": args.img_size, "calib_size": args.calib_size,
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_name(), "platform": platform.platform()},
        "jobs": workers, "rows": rows,
        "fp32_int8_total_s": round(goal, 1), "fp32_int8_serial_s": round(serial, 1),
        "goal_s": 120, "goal_met": goal <= 120,
        "runtime": converters.get_converter("executorch").runtime_versions(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"fp32 + int8 over four targets: {goal:.1f} s wall with {workers} workers (goal <= 120 s); "
          f"{serial:.1f} s summed over the artifacts -> {args.json}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
