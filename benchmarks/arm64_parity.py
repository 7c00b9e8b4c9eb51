"""Parity on arm64 kernels (issue 17): the demo models' artifacts on the aarch64 builds of ExecuTorch,
LiteRT and ONNX Runtime under user-mode QEMU, against PyTorch and against the same artifacts on x86.

    .venv/bin/python benchmarks/arm64_parity.py [--jobs 2] [--work DIR] [--resume]

The three demo models (`--weights demo`) x ExecuTorch / LiteRT / ONNX x fp32 / int8, each run by
`edge_mlp.arm64.parity.run_parity_arm64` on the committed 2,000-image Fashion-MNIST evaluation
subset, under two emulated CPUs: `cortex-a76` (NEON with dot product: what a phone's big cores run)
and `max` (QEMU's everything-on model: SVE2 and SME). Writes
`benchmarks/results/arm64_parity.json` after every row, prints the table and paragraph and rewrites
them in README.md (between its arm64-parity markers).

Image counts: every row runs all 2,000 images. QEMU's speed depends on the host: on an Intel Xeon
host, QEMU 7.2 emulated the SVE / SME float paths the kernels pick under `max` at 1.6-8.1 s per
image, and those rows were capped (40-500 images); on an AMD EPYC host the same rows run at tens of
ms per image. `--sme-images N` caps the `max` rows again where a host is that slow; each capped
row records how many images it ran and why. Rows run `--jobs` at a time (default 2): each is one
single-threaded emulated process, so two fill a 2-core machine; the longest rows start first.

The root is built by the first run (`make arm64`, ~10 minutes, needs root); artifacts are
converted into `--work` (default: a temporary folder) and reused from there on a second run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_mlp import quiet  # noqa: E402

quiet.quiet_cli_process()  # progress bars and step logs off, as in `edge-mlp convert`: before tqdm loads

README_BEGIN, README_END = "<!-- arm64-parity:begin -->", "<!-- arm64-parity:end -->"
TARGETS = ("executorch", "tflite", "onnx")
RUNTIME_NAMES = {"executorch": "ExecuTorch", "tflite": "LiteRT", "onnx": "ONNX Runtime"}
PRECISIONS = ("fp32", "int8")
CPUS = ("cortex-a76", "max")
FULL = 2000
SME_REASON = ("QEMU_CPU=max: {ms:,.0f} ms per emulated image in this row, so 2,000 images would take {full:.0f} min "
              "for this row alone; it ran the first {n:,} (--sme-images) to keep the benchmark's time in bounds")
# Rough emulated seconds per image, only to start the longest rows first.
COST = {("cortex-a76", "fp32"): 0.25, ("cortex-a76", "int8"): 0.05, ("max", "fp32"): 3.0, ("max", "int8"): 0.1,
        ("max", "int8", "onnx"): 0.7}


def images_for(cpu: str, sme_images: int | None) -> int:
    return min(FULL, sme_images) if cpu == "max" and sme_images else FULL


def _host_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _worker_init() -> None:
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)  # the other core runs the other row's emulated process


def run_row(artifact: str, model: str, target: str, precision: str, cpu: str, images: int, data: str) -> dict:
    """One row, in a worker process: run_parity_arm64 and the figures of the table."""
    from edge_mlp.arm64.parity import run_parity_arm64
    from edge_mlp.errors import EdgeMlpError

    start = time.monotonic()
    row = {"model": model, "target": target, "runtime": RUNTIME_NAMES[target], "precision": precision, "cpu": cpu,
           "images": images}
    try:
        report = run_parity_arm64(artifact, data=data, limit=images, cpu=cpu)
    except EdgeMlpError as err:
        row.update(error=str(err), seconds=round(time.monotonic() - start, 1))
        return row
    x, a, d = report.x86, report.arm64, report.difference
    evidence = report.xnnpack_evidence
    row.update(
        images=a.images, x86_runtime=x.runtime, arm64_runtime=a.runtime, sme="sme" in report.cpu_features,
        top1_pytorch=a.top1_reference, top1_x86=x.top1_artifact, top1_arm64=a.top1_artifact,
        drop_x86=x.drop_pts, drop_arm64=a.drop_pts, bit_identical=d.bit_identical, max_abs_diff=d.max_abs_diff,
        differing=d.differing, total=d.total, top1_agreement=d.top1_agreement,
        top1_differing_images=d.top1_differing_images, xnnpack=report.xnnpack,
        xnnpack_evidence=_evidence_cell(report.xnnpack, evidence), entries=report.entries,
        ms_per_image=report.seconds["arm64_ms_per_image"], emulated_s=report.seconds["arm64_emulated"],
        seconds=round(time.monotonic() - start, 1), notes=report.notes, report=report.to_dict(),
    )
    if images < FULL:
        row["images_reason"] = SME_REASON.format(ms=row["ms_per_image"], full=FULL * row["ms_per_image"] / 60000,
                                                 n=images)
    return row


def _evidence_cell(xnnpack: bool | None, e: dict) -> str:
    if xnnpack is None:
        return f"n/a ({'/'.join(e.get('providers', []))})"
    if "method_backends" in e:
        available = all(e.get("backend_available", {}).values())
        return f"{'+'.join(e['method_backends']) or 'none'}{'' if available else ' (unavailable)'}"
    return f"{e.get('delegate_partitions', 0)} partitions, {e.get('ops_delegated', 0)}/{e.get('ops_total', 0)} ops"


def convert_all(models: list[str], work: Path, log) -> dict[tuple[str, str, str], str]:
    """Every artifact, converted once into `work` (reused when its manifest still matches)."""
    from edge_mlp.convert import ConvertJob, convert
    from edge_mlp.errors import EdgeMlpError
    from edge_mlp.manifest import open_artifact

    from edge_mlp.converters import get_converter

    paths = {}
    for model in models:
        for target in TARGETS:
            for precision in PRECISIONS:
                out = work / model
                existing = out / f"{model}-{target}-{precision}{get_converter(target).suffix}"
                try:
                    open_artifact(existing)
                    paths[(model, target, precision)] = str(existing)
                    continue
                except EdgeMlpError:
                    pass
                start = time.monotonic()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    (result,) = convert(ConvertJob(model=model, target=target, precision=precision, weights="demo",
                                                   calib="demo", calib_size=64, out_dir=str(out)))
                log(f"converted {result.artifact.name} in {time.monotonic() - start:.0f} s")
                paths[(model, target, precision)] = str(result.artifact)
    return paths


def markdown(data: dict) -> str:
    lines = [
        "| model | runtime | precision | CPU (QEMU) | images | x86 top-1 (drop) | arm64 top-1 (drop) | x86 vs arm64 | "
        "max abs diff | top-1 agreement | XNNPACK on arm64 | s |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---|---:|",
    ]
    for r in data["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['cpu']} | {r['images']:,} | "
                         f"failed: {r['error'][:120]} | | | | | | {r['seconds']:.0f} |")
            continue
        same = "identical" if r["bit_identical"] else f"{r['differing']:,}/{r['total']:,} differ"
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['cpu']}{' (SME)' if r['sme'] else ''} | "
            f"{r['images']:,} | {r['top1_x86']:.2f} % ({r['drop_x86']:+.2f}) | {r['top1_arm64']:.2f} % "
            f"({r['drop_arm64']:+.2f}) | {same} | {r['max_abs_diff']:.2g} | {r['top1_agreement']:.2f} % | "
            f"{r['xnnpack_evidence']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def _all_in_xnnpack(row: dict) -> bool:
    """Whether the row's evidence ("1 partitions, 420/420 ops") says every op ran in XNNPACK."""
    match = re.search(r"(\d+)/(\d+) ops", row.get("xnnpack_evidence", ""))
    return bool(match) and match.group(1) == match.group(2)


def summary(data: dict) -> str:
    """The paragraph under the table, from the numbers: what differs where, what the SME rows mean,
    what to do about ONNX Runtime int8."""
    ok = [r for r in data["rows"] if "error" not in r]

    def pick(cpu: str, precision: str, targets: tuple[str, ...]) -> list[dict]:
        return [r for r in ok if r["cpu"] == cpu and r["precision"] == precision and r["target"] in targets]

    def spread(rows: list[dict], key: str, fmt: str) -> str:
        lo, hi = min(r[key] for r in rows), max(r[key] for r in rows)
        return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}-{format(hi, fmt)}"

    def share(r: dict) -> float:
        return 100.0 * r["differing"] / r["total"]

    parts = []
    fp32 = pick("cortex-a76", "fp32", TARGETS)
    if fp32:
        parts.append(f"fp32 on `cortex-a76`: every runtime's arm64 logits differ from x86 in the last bits only (max "
                     f"|diff| {max(r['max_abs_diff'] for r in fp32):.1e}), with top-1 agreement "
                     f"{spread(fp32, 'top1_agreement', '.2f')} % and the same accuracy: float arithmetic in another "
                     "order.")
    xnn = pick("cortex-a76", "int8", ("executorch", "tflite"))
    if xnn:
        same = [f"{r['model']} {r['runtime']}" for r in xnn if r["bit_identical"]]
        moved = [r for r in xnn if not r["bit_identical"]]
        text = (f"XNNPACK int8 on `cortex-a76` (NEON dot product): {len(same)} of {len(xnn)} artifacts "
                f"{'is' if len(same) == 1 else 'are'} bit-identical to x86 ({', '.join(same) or 'none'})")
        if moved:
            text += (f"; the others differ on {spread(moved, 'differing', ',')} of {moved[0]['total']:,} logits "
                     f"({min(map(share, moved)):.1f}-{max(map(share, moved)):.1f} %) by at most "
                     f"{max(r['max_abs_diff'] for r in moved):.2g} (a few steps of the int8 output scale, e.g. "
                     "LiteRT's "
                     f"~0.024), with top-1 agreement {spread(moved, 'top1_agreement', '.2f')} % and identical "
                     "accuracy. Most likely causes: the float ops their int8 graphs keep between the int8 GEMMs "
                     "(GELU, norms, means), whose float rounding differs on the two architectures, so a value on a "
                     "quantization boundary moves a step")
            outside = [r for r in moved if r["target"] == "tflite" and not _all_in_xnnpack(r)]
            if outside:
                text += ("; and, for LiteRT, the ops it runs outside XNNPACK on its own kernels, whose x86 and "
                         "arm64 builds differ")
        parts.append(text + ".")
    sme = pick("max", "int8", ("executorch", "tflite"))
    if sme:
        worst = min(sme, key=lambda r: r["top1_arm64"])
        parts.append(
            f"The `max` rows are QEMU's SME-enabled CPU (SVE2 + SME): there XNNPACK takes its SME int8 path and the "
            f"logits stop matching ({spread(sme, 'top1_agreement', '.1f')} % top-1 agreement with x86, arm64 top-1 "
            f"down to {worst['top1_arm64']:.1f} % for {worst['model']} {worst['runtime']}: chance level), while the "
            "same files agree with x86 to a few quantization steps, top-1 for top-1, on `cortex-a76`. The SME path "
            "is what is wrong here, QEMU 7.2's emulation "
            "of it or XNNPACK's SME kernels (only SME hardware can tell), not the artifact: check arm64 parity on a "
            "CPU model without SME (`--cpu cortex-a76`, `neoverse-n1` or `max,sme=off`), and on a phone whose cores "
            "have SME (Armv9.2+) run the parity on the device before trusting int8.")
    slow = pick("max", "fp32", TARGETS)
    if slow:
        seconds = [r["ms_per_image"] / 1000 for r in slow]
        capped = sorted({r["images"] for r in slow if r["images"] < FULL})
        text = (f"fp32 under `max` stays exact to float rounding (max |diff| "
                f"{max(r['max_abs_diff'] for r in slow):.1e}, top-1 agreement {spread(slow, 'top1_agreement', '.2f')} %); "
                f"QEMU emulated it at {min(seconds):.2f}-{max(seconds):.2f} s per image on this host")
        if capped:
            text += (f", so those rows ran {', '.join(f'{n:,}' for n in capped)} images (each row's `images_reason` "
                     "in the JSON)")
        parts.append(text + ".")
    onnx = pick("cortex-a76", "int8", ("onnx",))
    if onnx and all(r["bit_identical"] for r in onnx):
        parts.append(f"ONNX Runtime int8 on `cortex-a76`: bit-identical to x86 on all {len(onnx)} models here.")
    elif onnx:
        parts.append(
            "ONNX Runtime int8 is not bit-exact across architectures either: on `cortex-a76` "
            + "; ".join(f"{r['model']} differs on {r['differing']:,}/{r['total']:,} logits, "
                        f"max {r['max_abs_diff']:.2g}, "
                        f"top-1 agreement {r['top1_agreement']:.2f} %, arm64 top-1 {r['top1_arm64']:.2f} % vs x86 "
                        f"{r['top1_x86']:.2f} %" for r in onnx)
            + ". What to do: take an ONNX int8 model's phone accuracy from the arm64 run (`edge-mlp parity ART "
            "--arch arm64`), not from x86, and compare its logits across architectures with a tolerance of a "
            "quantization step or two rather than bit equality; " + _accuracy_moved(onnx) + ".")
    return " ".join(parts)


def _accuracy_moved(rows: list[dict]) -> str:
    moved = max(abs(r["top1_arm64"] - r["top1_x86"]) for r in rows)
    return f"the accuracy moved by at most {moved:.2f} pts here" if moved else "the accuracy did not move here"


def _rewrite_readme(doc: dict) -> None:
    from parity_table import replace_between

    readme = ROOT / "README.md"
    block = f"{markdown(doc)}\n\n{summary(doc)}"
    readme.write_text(replace_between(readme.read_text(), README_BEGIN, README_END, block))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="default: the three demo models")
    parser.add_argument("--cpus", nargs="+", default=list(CPUS))
    parser.add_argument("--jobs", type=int, default=2, help="rows at a time (one emulated process each)")
    parser.add_argument("--work", help="artifacts folder, kept and reused (default: a temporary one)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/arm64_parity.json"))
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --json (same images)")
    parser.add_argument("--limit", type=int, help="at most N images per row (a quick check; not for the README)")
    parser.add_argument("--sme-images", type=int, help="at most N images per `max` row, for hosts where QEMU "
                        "emulates the SME / SVE float paths at seconds per image (each capped row says so)")
    parser.add_argument("--print", action="store_true",
                        help="only print the table and paragraph of --json (and rewrite the README's with them)")
    args = parser.parse_args()
    if args.print:
        doc = json.loads(Path(args.json).read_text())
        print(markdown(doc))
        print()
        print(summary(doc))
        _rewrite_readme(doc)
        return
    warnings.simplefilter("ignore")
    import tempfile

    from edge_mlp.arm64 import prepare_root
    from edge_mlp.arm64.root import qemu_version
    from edge_mlp.demo import DEMO_MODELS, EVAL_SUBSET
    from edge_mlp.fileio import write_text_atomic

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    started = time.monotonic()
    root = prepare_root(log=log)
    models = args.models or list(DEMO_MODELS)
    data = str(EVAL_SUBSET.relative_to(ROOT)) if EVAL_SUBSET.is_relative_to(ROOT) else str(EVAL_SUBSET)
    tmp = None if args.work else tempfile.TemporaryDirectory()
    work = Path(args.work or tmp.name)
    paths = convert_all(models, work, log)
    converted_s = time.monotonic() - started
    log(f"artifacts ready in {converted_s:.0f} s ({work})")
    out = Path(args.json)
    kept = {}
    if args.resume and out.exists():
        for r in json.loads(out.read_text()).get("rows", []):
            if "error" not in r:
                kept[(r["model"], r["target"], r["precision"], r["cpu"], r["images"])] = r
    specs = []
    for model in models:
        for target in TARGETS:
            for precision in PRECISIONS:
                for cpu in args.cpus:
                    n = images_for(cpu, args.sme_images)
                    n = min(n, args.limit) if args.limit else n
                    specs.append((paths[(model, target, precision)], model, target, precision, cpu, n))
    # Canonical row order over every demo model, so kept rows of models not run now (--resume with
    # --models) sort too.
    every = [(m, t, p, c) for m in dict.fromkeys([*DEMO_MODELS, *models]) for t in TARGETS for p in PRECISIONS
             for c in dict.fromkeys([*CPUS, *args.cpus])]
    order = {key: i for i, key in enumerate(every)}
    todo = [s for s in specs if s[1:] not in kept]
    todo.sort(key=lambda s: -s[5] * COST.get((s[4], s[3], s[2]), COST[(s[4], s[3])]))
    rows = list(kept.values())
    meta = {
        "what": "demo artifacts on the aarch64 builds of their runtimes under user-mode QEMU vs PyTorch fp32 and "
                "vs the same artifacts on this host's x86 runtimes (benchmarks/arm64_parity.py)",
        "data": data, "images_full": FULL, "sme_images": args.sme_images,
        "host": f"{platform.machine()}, {_host_cpu()}, {os.cpu_count()} cores", "qemu": qemu_version(),
        "arm64_root_versions": root.versions, "jobs": args.jobs,
    }

    def save(final: bool = False) -> dict:
        rows.sort(key=lambda r: order[(r["model"], r["target"], r["precision"], r["cpu"])])
        doc = {**meta, "wall_s": round(time.monotonic() - started, 1), "convert_s": round(converted_s, 1),
               "complete": final, "rows": rows}
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
        out.chmod(0o644)
        return doc

    context = multiprocessing.get_context("spawn")  # no fork after torch and the runtimes are loaded
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context, initializer=_worker_init) as pool:
        futures = {pool.submit(run_row, *s, data=str(EVAL_SUBSET)): s for s in todo}
        for future in as_completed(futures):
            row = future.result()
            rows.append(row)
            save()
            if "error" in row:
                log(f"{row['model']} {row['target']} {row['precision']} {row['cpu']}: FAILED {row['error']}")
            else:
                log(f"{row['model']:16s} {row['target']:10s} {row['precision']} {row['cpu']:10s} "
                    f"{row['images']:5d} img "
                    f"x86 {row['top1_x86']:.2f} arm64 {row['top1_arm64']:.2f} "
                    f"{'identical' if row['bit_identical'] else 'max diff %.3g' % row['max_abs_diff']} "
                    f"agree {row['top1_agreement']:.2f} % {row['ms_per_image']:.0f} ms/img {row['seconds']:.0f} s")
    doc = save(final=True)
    log(f"done in {doc['wall_s'] / 60:.1f} min; wrote {out}")
    print()
    print(markdown(doc))
    print()
    print(summary(doc))
    if args.limit is None and args.models is None and tuple(args.cpus) == CPUS:  # the README's full table only
        _rewrite_readme(doc)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
