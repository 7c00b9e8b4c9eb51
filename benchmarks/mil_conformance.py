"""Apple's MIL op tests (shipped in the coremltools wheel) against edge-mlp's Core ML interpreter.

Runs coremltools' own tests of every op family the interpreter implements, each test's expected
outputs and tolerances unchanged, with the interpreter predicting where Core ML would (macOS only),
in the interpreter precision of the test's backend (fp16 or fp32). Writes per-family counts (run /
pass / fail / unsupported by reason / flawed reference, the first failure) and totals as JSON, the
markdown table next to it (.md) and into README.md between its mil-conformance markers, and prints
the table. The logic is
`edge_mlp.mil.conformance`; "run" counts the cases that reached the interpreter.

    .venv/bin/python benchmarks/mil_conformance.py [--family layer_norm ...] [--match REGEX]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from parity_table import replace_between

from edge_mlp.mil import conformance

BEGIN, END = "<!-- mil-conformance:begin -->", "<!-- mil-conformance:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", choices=list(conformance.FAMILIES),
                        help="an op family to run (repeatable; default: all)")
    parser.add_argument("--match", help="regex: only the cases whose node id matches "
                                        "(e.g. 'iOS14/test_pool.py::TestAvgPool::test_builder_to_backend_smoke')")
    parser.add_argument("--json", default="benchmarks/results/mil_conformance.json")
    args = parser.parse_args()
    start = time.perf_counter()
    cases = conformance.run(args.family, args.match)
    seconds = time.perf_counter() - start
    summary = conformance.summarize(cases)
    table = conformance.markdown(summary)
    report = {**summary, "seconds": round(seconds, 1), "selection": {"families": args.family, "match": args.match},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "markdown": table}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    Path(args.json).with_suffix(".md").write_text(table + "\n")
    if args.family is None and args.match is None:  # only a full run describes every family
        readme = Path("README.md")
        readme.write_text(replace_between(readme.read_text(), BEGIN, END, table))
    totals = summary["totals"]
    print(table)
    print(f"\n{totals['run']} cases reached the interpreter in {seconds:.0f} s: {totals['pass']} passed, "
          f"{totals['fail']} failed, {totals['unsupported']} unsupported, {totals['flawed_reference']} flawed "
          f"references; {totals['not_reached']} ended before it; results in {args.json}")


if __name__ == "__main__":
    main()
