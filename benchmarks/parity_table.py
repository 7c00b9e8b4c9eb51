"""The README parity table: demo models x targets x precisions on the full Fashion-MNIST test set.

    .venv/bin/python benchmarks/parity_table.py [--data fashion-mnist] [--limit N] [--targets T ...] [--precisions P ...] [--models M ...]

Converts each demo model (`--weights demo`, real calibration subset) to every target (Core ML runs
on edge-mlp's MIL interpreter off macOS), runs `edge_mlp.parity` on each artifact, writes `benchmarks/results/parity.json` and
rewrites the table between the parity markers in README.md. `--targets` / `--precisions` re-measure
only those rows and keep the others from the JSON (a kept row of a chosen model without a size is
converted again for its size only). `--models` limits the run to those models; runs for different
models may share the JSON at once (each merges its rows into the file as it is when it writes). The size column is the artifact's bytes on disk (a `.mlpackage` folder: its files).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

from edge_mlp import quiet

quiet.quiet_cli_process()  # progress bars and step logs off, as in `edge-mlp convert`: before tqdm loads

from edge_mlp.convert import ConvertJob, convert  # noqa: E402
from edge_mlp.converters import all_converters  # noqa: E402
from edge_mlp.demo import DEMO_MODELS, demo_record  # noqa: E402
from edge_mlp.parity import run_parity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Every target x precision of the registry (Core ML: the MIL interpreter off macOS).
COMBOS = [(c.target, str(p)) for c in all_converters() for p in c.precisions]
BEGIN, END = "<!-- parity-table:begin -->", "<!-- parity-table:end -->"
DEMO_BEGIN, DEMO_END = "<!-- demo-table:begin -->", "<!-- demo-table:end -->"


def demo_markdown() -> str:
    lines = ["| model | overrides | params | epochs | train time | test top-1 (10k) |", "|---|---|---:|---:|---:|---:|"]
    for name in DEMO_MODELS:
        r = demo_record(name)
        overrides = ", ".join(f"{k}={v}" for k, v in r["overrides"].items() if k not in ("img_size", "num_classes"))
        lines.append(f"| {name} | {overrides} | {r['params']:,} | {r['epochs']} | {r['train_s'] / 60:.0f} min | "
                     f"{r['test_top1']:.2f} % |")
    return "\n".join(lines)


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        return re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    return text + f"\n{block}\n"


def rewrite_readme_section(begin: str, end: str, body: str) -> None:
    """The project README's block between `begin` and `end` markers becomes `body`."""
    readme = Path(__file__).resolve().parents[1] / "README.md"
    readme.write_text(replace_between(readme.read_text(), begin, end, body))


def publish_report(json_path: Path, begin: str, end: str, markdown: Callable[[dict], str],
                   measure: Callable[[], dict] | None) -> None:
    """A benchmark's report into its JSON and its README section: `measure()`'s report is written
    to `json_path` first; without `measure` (`--print`) the report already there is rendered."""
    if measure is None:
        report = json.loads(json_path.read_text())
    else:
        report = measure()
        json_path.write_text(json.dumps(report, indent=1) + "\n")
    body = markdown(report)
    rewrite_readme_section(begin, end, body)
    print(body)


def size_kb(row: dict) -> str:
    return f"{row['size_bytes'] / 1e3:,.0f} kB" if "size_bytes" in row else "-"


def markdown(rows: list[dict], data: str, images: int) -> str:
    lines = [
        f"Demo checkpoints on {data} ({images:,} images), artifact on its host runtime vs PyTorch fp32"
        " (`benchmarks/parity_table.py`; Core ML rows ran on the MIL interpreter, see below):",
        "",
        "| model | target | precision | size | PyTorch top-1 | artifact top-1 | drop (pts) | agreement | "
        "max abs diff / logit range |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['target']} | {r['precision']} | {size_kb(r)} | "
            f"{r['top1_reference']:.2f} % | {r['top1_artifact']:.2f} % | {r['drop_pts']:+.2f} | {r['agreement']:.2f} % | "
            f"{r['max_abs_diff_rel']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/parity.json"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--targets", nargs="+", help="re-measure only these targets; other rows are kept "
                        "from the existing --json")
    parser.add_argument("--precisions", nargs="+", help="re-measure only these precisions; other rows are kept "
                        "from the existing --json")
    parser.add_argument("--models", nargs="+", choices=DEMO_MODELS, help="only these demo models")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    models = args.models or DEMO_MODELS

    def chosen(model: str, target: str, precision: str) -> bool:
        return (model in models and (not args.targets or target in args.targets)
                and (not args.precisions or precision in args.precisions))

    old = json.loads(Path(args.json).read_text())["rows"] if Path(args.json).exists() else []
    keep = {(r["model"], r["target"], r["precision"]): r for r in old
            if not chosen(r["model"], r["target"], r["precision"])}
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for model in models:
            for target, precision in COMBOS:
                kept = keep.get((model, target, precision))
                if kept is not None and "size_bytes" in kept:
                    continue
                start = time.perf_counter()
                (result,) = convert(ConvertJob(model=model, target=target, precision=precision, weights="demo",
                                               calib="demo", calib_size=64, out_dir=out))
                if kept is not None:  # a kept row from before sizes were recorded: its size only
                    kept["size_bytes"] = result.manifest.artifact.size_bytes
                    continue
                report = run_parity(result.artifact, data=args.data, limit=args.limit)
                row = {k: v for k, v in report.to_dict().items() if k != "artifact"}
                row["size_bytes"] = result.manifest.artifact.size_bytes
                row["seconds"] = round(time.perf_counter() - start, 1)
                rows.append(row)
                print(f"{model:16s} {target:10s} {precision:5s} ref {row['top1_reference']:.2f} art "
                      f"{row['top1_artifact']:.2f} drop {row['drop_pts']:+.2f} agree {row['agreement']:.2f}", flush=True)
    if keep:  # the kept rows and the fresh ones, in table order
        if Path(args.json).exists():  # rows a run for other --models wrote meanwhile
            now = json.loads(Path(args.json).read_text())["rows"]
            keep.update({(r["model"], r["target"], r["precision"]): r for r in now if r["model"] not in models})
        fresh = {(r["model"], r["target"], r["precision"]): r for r in rows}
        order = [(m, t, p) for m in DEMO_MODELS for t, p in COMBOS]
        rows = [fresh.get(k) or keep[k] for k in order if k in fresh or k in keep]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"data": args.data, "rows": rows}, indent=2) + "\n")
    readme = Path(args.readme)
    text = readme.read_text()
    text = replace_between(text, BEGIN, END, markdown(rows, rows[0]["data"], rows[0]["images"]))
    text = replace_between(text, DEMO_BEGIN, DEMO_END, demo_markdown())
    readme.write_text(text)
    print(f"wrote {args.json} and the table in {readme}")


if __name__ == "__main__":
    main()
