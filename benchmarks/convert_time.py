"""Wall time of `edge-mlp convert` per target and precision (a benchmark, not a test).

Converts one model at full size to every target in fp32 and int8 (Core ML also fp16 and w8),
sequentially in one process, and writes JSON with per-stage seconds and the total for the
goal "all four targets fp32 + int8 in <= 120 s on 2 cores".

    .venv/bin/python benchmarks/convert_time.py [--model as_mlp_mobile] [--img-size 224]
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

from edge_mlp import converters
from edge_mlp.convert import ConvertJob, convert

# Every target x precision of the registry: fp32 and int8 first (the goal's total), then the rest.
COMBOS = sorted(((c.target, str(p)) for c in converters.all_converters() for p in c.precisions),
                key=lambda tp: tp[1] not in ("fp32", "int8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="as_mlp_mobile")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--json", default="benchmarks/results/convert_time.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for target, precision in COMBOS:
            start = time.perf_counter()
            (result,) = convert(ConvertJob(model=args.model, target=target, precision=precision,
                                           img_size=args.img_size, calib_size=args.calib_size, out_dir=out))
            seconds = time.perf_counter() - start
            m = result.manifest
            rows.append({
                "target": target, "precision": precision, "seconds": round(seconds, 2),
                "stages_s": m.conversion["stages_s"], "size_mb": round(m.artifact.size_bytes / 1e6, 2),
                "coverage": converters.get_converter(target).coverage_summary(m.coverage),
            })
            print(f"{target:10s} {precision:5s} {seconds:7.1f} s  {rows[-1]['size_mb']:6.1f} MB  {rows[-1]['coverage']}",
                  flush=True)
    goal = sum(r["seconds"] for r in rows if r["precision"] in ("fp32", "int8"))
    report = {
        "model": args.model, "img_size": args.img_size, "calib_size": args.calib_size,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "rows": rows, "fp32_int8_total_s": round(goal, 1), "goal_s": 120, "goal_met": goal <= 120,
        "runtime": converters.get_converter("executorch").runtime_versions(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"fp32 + int8 over four targets: {goal:.1f} s (goal <= 120 s) -> {args.json}")


if __name__ == "__main__":
    main()
