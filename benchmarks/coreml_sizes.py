"""Core ML package size and conversion time per precision (a benchmark, not a test).

Converts one model at full size (random init: package sizes do not depend on the weights' values,
and the demo checkpoints are reduced configs, not the full model) to Core ML at fp32, fp16, w8, w4,
pal4 and pal6, one after the other in one process, and writes each package's size in bytes, its
ratio to fp32 and the conversion wall time. Acceptance (issue 16): w4 and pal4 <= 0.16 x fp32,
pal6 <= 0.22 x fp32; the exit status is 1 when a bound is missed. The default run (as_mlp_mobile
at 224) rewrites the README's table between its coreml-sizes markers; `--print` only renders the
JSON into it.

    .venv/bin/python benchmarks/coreml_sizes.py [--model as_mlp_mobile] [--img-size 224] [--print]
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

quiet.quiet_cli_process()  # coremltools' progress bars off, as in `edge-mlp convert`: before tqdm loads

from edge_mlp import converters  # noqa: E402
from edge_mlp.convert import ConvertJob, convert  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README_BEGIN, README_END = "<!-- coreml-sizes:begin -->", "<!-- coreml-sizes:end -->"
PRECISIONS = ("fp32", "fp16", "w8", "w4", "pal4", "pal6")
BOUNDS = {"w4": 0.16, "pal4": 0.16, "pal6": 0.22}  # max package size / fp32 package size


def measure(model: str, img_size: int, out: str) -> list[dict]:
    """One row per precision: bytes, ratio to fp32, wall time, per-stage seconds."""
    rows: list[dict] = []
    for precision in PRECISIONS:
        start = time.perf_counter()
        (result,) = convert(ConvertJob(model=model, target="coreml", precision=precision, img_size=img_size,
                                       out_dir=out))
        seconds = time.perf_counter() - start
        m = result.manifest
        ops = m.coverage["mil_op_histogram"]
        rows.append({
            "precision": precision, "bytes": m.artifact.size_bytes, "seconds": round(seconds, 2),
            "stages_s": m.conversion["stages_s"],
            "minimum_deployment_target": m.coverage["minimum_deployment_target"],
            "constexpr_ops": {op: n for op, n in ops.items() if op.startswith("constexpr_")},
            "scheme": m.quantization.scheme if m.quantization else None,
            "weights_left_fp16": m.coverage.get("weights_left_fp16"),
            "weights_with_fallback": m.coverage.get("weights_with_fallback"),
        })
        print(f"{precision:5s} {m.artifact.size_bytes:>12,d} B  {seconds:7.1f} s", flush=True)
    fp32 = rows[0]["bytes"]
    for row in rows:
        row["ratio_to_fp32"] = round(row["bytes"] / fp32, 4)
        bound = BOUNDS.get(row["precision"])
        row["bound"] = bound
        row["bound_met"] = None if bound is None else row["ratio_to_fp32"] <= bound
    return rows


def markdown(report: dict) -> str:
    rows = report["rows"]
    lines = [f"{report['model']} at {report['img_size']} ({report['weights']}; coremltools "
             f"{report['runtime']['coremltools']}, {report['machine']['cpus']} CPUs; "
             "`benchmarks/coreml_sizes.py`):", "","| precision | package bytes | x fp32 | bound | conversion s | min. target |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        bound = "" if r["bound"] is None else f"<= {r['bound']:.2f} {'ok' if r['bound_met'] else 'MISSED'}"
        lines.append(f"| {r['precision']} | {r['bytes']:,} | {r['ratio_to_fp32']:.4f} | {bound} | {r['seconds']:.1f} "
                     f"| {r['minimum_deployment_target']} |")
    return "\n".join(lines)


def _write_readme(report: dict) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from parity_table import replace_between

    readme = ROOT / "README.md"
    readme.write_text(replace_between(readme.read_text(), README_BEGIN, README_END, markdown(report)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="as_mlp_mobile")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/coreml_sizes.json"))
    parser.add_argument("--print", action="store_true", help="only render --json (and the README's table)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.print:
        report = json.loads(Path(args.json).read_text())
        _write_readme(report)
        print(markdown(report))
        return 0 if report["bounds_met"] else 1
    with tempfile.TemporaryDirectory() as out:
        rows = measure(args.model, args.img_size, out)
    report = {
        "model": args.model, "img_size": args.img_size, "weights": "random init (seed 0)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runtime": converters.get_converter("coreml").runtime_versions(),
        "rows": rows, "bounds_met": all(r["bound_met"] is not False for r in rows),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if (args.model, args.img_size) == ("as_mlp_mobile", 224):  # the README's figures
        _write_readme(report)
    print(markdown(report))
    print(f"-> {args.json}")
    return 0 if report["bounds_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
