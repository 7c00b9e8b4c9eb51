"""The `edge-mlp` command: parsing, progress and error reporting only; the work lives in the library.

Imports are lazy: `--help` loads no torch or runtime (only the torch-free target registry), `list`
and `info` load torch, and each command loads what it runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from . import __version__, interrupts
from .quiet import quiet_cli_process
from .errors import ConfigError, EdgeMlpError

if TYPE_CHECKING:
    from rich.console import Console


@cache
def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def _table(*args: Any, **kwargs: Any) -> Any:
    from rich.table import Table

    return Table(*args, **kwargs)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from .models import parse_settings

    return parse_settings(args.name, args.set) if args.set else {}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .models import size_overrides

    return {**_settings(args), **size_overrides(getattr(args, "img_size", None), getattr(args, "num_classes", None))}


def cmd_list(args: argparse.Namespace) -> int:
    from .models import get_spec, list_models
    from .stats import model_stats

    console = _console()
    table = _table(title="edge-mlp model zoo")
    for col, justify in (("model", "left"), ("family", "left"), ("kind", "left"),
                         ("params", "right"), ("GMACs", "right"), ("input", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name in list_models(args.family):
        spec, stats = get_spec(name), model_stats(name)
        c, h, w = stats.input_size
        table.add_row(name, spec.family, "official" if spec.official else "mobile",
                      f"{stats.params:,}", f"{stats.gmacs:.2f}", f"{c}x{h}x{w}")
    console.print(table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .models import check_architecture, get_spec, input_sizes, resolve_config
    from .stats import model_stats

    spec = get_spec(args.name)
    overrides = _overrides(args)
    config = resolve_config(args.name, **overrides)
    check_architecture(config, _settings(args))
    stats = model_stats(args.name, **overrides)
    table = _table(title=f"{spec.name}: {spec.description}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    c, h, w = stats.input_size
    table.add_row("family", spec.family)
    table.add_row("reference", spec.source)
    table.add_row("params", f"{stats.params:,}")
    table.add_row("GMACs", f"{stats.gmacs:.3f} at {h}x{w}")
    table.add_row("input", f"1x{c}x{h}x{w} float32, NCHW")
    sizes_for = {k: v for k, v in overrides.items() if k != "img_size"}
    table.add_row("input sizes", input_sizes(args.name, **sizes_for).describe())
    stages = spec.feature_info(config.kwargs)
    table.add_row("feature stages", "; ".join(f"{f.index}: stride {f.stride}, {f.channels} ch" for f in stages)
                  + " (convert --features-only --out-indices)")
    if config.data:
        table.add_row("preprocessing", f"mean {config.data.mean}, std {config.data.std}, "
                      f"crop_pct {config.data.crop_pct}, {config.data.interpolation}")
    for key, value in config.kwargs.items():
        table.add_row(f"config.{key}", repr(value))
    _console().print(table)
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    import torch

    from .models import check_architecture, create_model, resolve_config
    from .weights import load_weights

    console = _console()
    torch.manual_seed(0)
    overrides = _overrides(args)
    check_architecture(resolve_config(args.name, **overrides), _settings(args))
    model = create_model(args.name, **overrides).eval()
    if args.weights:
        load_weights(model, args.weights)
    x = torch.randn(1, *model.edge_config.input_size)
    with torch.inference_mode():
        model(x)  # warm-up
        start = time.perf_counter()
        logits = model(x)
        elapsed = time.perf_counter() - start
    top = logits.softmax(-1).topk(min(5, logits.shape[-1]))
    weights = args.weights or "random init (seed 0)"
    console.print(f"{args.name}: input {list(x.shape)} -> logits {list(logits.shape)} "
                  f"in {elapsed * 1e3:.1f} ms (PyTorch eager, weights: {weights})")
    console.print("top-5 classes: " + ", ".join(
        f"{i}:{p:.3f}" for p, i in zip(top.values[0].tolist(), top.indices[0].tolist())))
    return 0


class _StageProgress:
    """Renders pipeline stages: a spinner for the running stage, a line per finished one."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None:
        if target not in self.tasks:
            self.tasks[target] = self.progress.add_task(target, total=None)
        task = self.tasks[target]
        if done:
            self.progress.console.print(f"  [dim]{target}[/dim] {stage} {seconds:.1f}s")
        else:
            self.progress.update(task, description=f"{target}: {stage}")


def cmd_convert(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .convert import ConvertJob, convert, plan
    from .converters import get_converter
    from .models._registry import format_image_size

    console = _console()
    job = ConvertJob(
        model=args.name, target=args.target, precision=args.precision, weights=args.weights,
        img_size=args.img_size, num_classes=args.num_classes, calib=args.calib,
        calib_size=args.calib_size, shift_lowering=args.shift_lowering, out_dir=args.out,
        max_drop=args.max_drop, force=args.force, features_only=args.features_only,
        out_indices=args.out_indices, jobs=args.jobs, overrides=_settings(args),
    )
    checked = plan(job)  # bad input fails here, before anything is drawn or loaded
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        results = convert(job, _StageProgress(progress), checked)
    table = _table(title=f"{args.out}/{args.name}-TARGET-PRECISION.* (+ .manifest.json)")
    for col in ("target", "precision", "input", "outputs", "size", "time", "coverage", "shift"):
        table.add_column(col, justify="right" if col in ("size", "time") else "left")
    for r in results:
        m = r.manifest
        conv = get_converter(m.target.name)
        outputs = (f"strides {','.join(str(f.stride) for f in m.features)}" if m.features
                   else f"{m.output.num_classes} logits")
        table.add_row(m.target.name, m.precision, ", ".join(format_image_size(s) for s in m.sizes()), outputs,
                      f"{m.artifact.size_bytes / 1e6:.1f} MB",
                      f"{m.conversion['wall_time_s']:.1f} s", conv.coverage_summary(m.coverage),
                      m.shift_lowering.used)
    console.print(table)
    for r in results:
        if r.replaced:
            console.print(r.replaced, highlight=False, soft_wrap=True)
    return 0


def _parity_table(report: Any) -> Any:
    title = f"parity: {Path(report.artifact).name} on {report.data} ({report.images} images)"
    table = _table(title=title, caption=f"ran on {report.runtime}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if report.top1_reference is None:  # a backbone: no classes, its outputs are in the second table
        rows = [
            ("worst output max |diff|", f"{report.max_abs_diff:.3g} ({report.max_abs_diff_rel:.2g} of its range)"),
            ("cosine mean / min (worst output)", f"{report.cosine_mean:.5f} / {report.cosine_min:.5f}"),
        ]
    else:
        rows = [
            ("top-1 PyTorch fp32", f"{report.top1_reference:.2f} %"),
            (f"top-1 {report.target} {report.precision}", f"{report.top1_artifact:.2f} %"),
            ("accuracy drop", f"{report.drop_pts:+.2f} pts"),
            ("top-1 agreement", f"{report.agreement:.2f} %"),
            ("max |logit diff|", f"{report.max_abs_diff:.3g} ({report.max_abs_diff_rel:.2g} of range)"),
            ("mean |logit diff|", f"{report.mean_abs_diff:.3g}"),
            ("cosine mean / min", f"{report.cosine_mean:.5f} / {report.cosine_min:.5f}"),
        ]
    for row in rows:
        table.add_row(*row)
    return table


def _outputs_table(report: Any) -> Any:
    table = _table(title="every output at every input size vs PyTorch fp32")
    for col in ("size", "output", "stride", "max |diff|", "of range", "cosine mean", "cosine min"):
        table.add_column(col, justify="left" if col in ("size", "output") else "right")
    for o in report.outputs:
        table.add_row(o.size, o.output, "" if o.stride is None else str(o.stride), f"{o.max_abs_diff:.3g}",
                      f"{o.max_abs_diff_rel:.2g}", f"{o.cosine_mean:.5f}", f"{o.cosine_min:.5f}")
    return table


def cmd_parity(args: argparse.Namespace) -> int:
    from .fileio import check_output_file
    from .parity import check_extras, run_parity, write_json

    console = _console()
    if args.json:
        check_output_file(args.json, (".json",), "--json")
    if args.trace:
        check_output_file(args.trace, (".npz",), "--trace")
    if args.arch == "arm64":
        return _parity_arm64(args)
    if args.cpu is not None:
        raise ConfigError("--cpu picks the emulated CPU of --arch arm64; add --arch arm64 or drop --cpu")
    if args.per_layer or args.trace:  # before the parity run, which takes 10-20 s
        check_extras(args.artifact, per_layer=args.per_layer, trace=bool(args.trace))
    with console.status("running artifact and PyTorch reference..."):
        report = run_parity(args.artifact, data=args.data, limit=args.limit, mil_precision=args.mil_precision)
    console.print(_parity_table(report))
    if len(report.outputs) > 1:
        console.print(_outputs_table(report))
    if args.json:
        write_json([report], args.json)
    if args.per_layer:
        from .parity import per_layer_report

        with console.status("per-block SQNR of the int8 simulation..."):
            blocks, note = per_layer_report(args.artifact, data=args.data)
        layers = _table(title=f"per-block SQNR, worst first ({note})")
        for col in ("block", "type", "SQNR dB"):
            layers.add_column(col, justify="right" if col == "SQNR dB" else "left")
        for b in blocks:
            layers.add_row(b.block, b.kind, f"{b.sqnr_db:.1f}")
        console.print(layers)
    if args.trace:
        _print_trace(args)
    if args.max_drop is not None and report.drop_pts is not None and report.drop_pts > args.max_drop:
        _console(stderr=True).print(f"edge-mlp: accuracy drop {report.drop_pts:.2f} pts exceeds --max-drop {args.max_drop}",
                          highlight=False, soft_wrap=True)
        return 1
    return 0


def _parity_arm64(args: argparse.Namespace) -> int:
    """`parity --arch arm64`: the artifact on the aarch64 build of its runtime under QEMU, next to the
    x86 run and PyTorch (edge_mlp.arm64.parity)."""
    from .arm64.parity import DEFAULT_CPU, arm64_rows, check_arm64, run_parity_arm64, write_json

    for option in ("per_layer", "trace", "mil_precision"):
        if getattr(args, option):
            raise ConfigError(f"--{option.replace('_', '-')} does not apply to --arch arm64; run it without --arch")
    cpu = args.cpu or DEFAULT_CPU
    console = _console()
    check = check_arm64(args.artifact, cpu)  # bad artifact, CPU model or machine: one line, before any work
    console.print(check.line(), highlight=False, soft_wrap=True)
    with console.status("running the artifact on x86 and on arm64 (QEMU), and the PyTorch reference..."):
        report = run_parity_arm64(args.artifact, data=args.data, limit=args.limit, cpu=cpu)
    table = _table(title=f"parity on arm64: {Path(report.arm64.artifact).name} on {report.arm64.data} "
                         f"({report.arm64.images} images)", caption=f"ran on {report.arm64.runtime}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for row in arm64_rows(report):
        table.add_row(*row)
    console.print(table)
    if len(report.arm64.outputs) > 1:
        console.print(_outputs_table(report.arm64))
    if args.json:
        write_json([report], args.json)
    drop = report.arm64.drop_pts
    if args.max_drop is not None and drop is not None and drop > args.max_drop:
        _console(stderr=True).print(f"edge-mlp: accuracy drop on arm64 {drop:.2f} pts exceeds --max-drop "
                                    f"{args.max_drop}", highlight=False, soft_wrap=True)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchJob, run_bench, validate
    from .bench.isa import report_note
    from .bench.output import (
        OUTPUT_SUFFIXES, markdown_table, plot, profile_markdown, shift_markdown, write_csv, write_json,
    )
    from .fileio import check_output_dir, check_output_file

    console = _console()
    for option, path in (("json", args.json), ("csv", args.csv), ("plot", args.plot)):
        if path:
            check_output_file(path, OUTPUT_SUFFIXES[option], f"--{option}")
    if args.keep_artifacts:
        check_output_dir(args.keep_artifacts, "--keep-artifacts")
    if args.device != "host":
        from .bench.device import run_on_device

        data = run_on_device(args.device, args.sources, threads=args.threads, warmup=args.warmup, runs=args.runs,
                             runner_dir=args.runner_dir)
    else:
        job = BenchJob(
            sources=args.sources, targets=tuple(args.targets), precisions=tuple(args.precisions),
            img_size=args.img_size, weights=args.weights, threads=args.threads, warmup=args.warmup,
            runs=args.runs, shift_ablation=args.shift_ablation, keep_artifacts=args.keep_artifacts,
            profile=args.profile,
        )
        with console.status("benchmarking...") as status, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = run_bench(job, progress=lambda msg: status.update(msg)).to_dict()
        problems = validate(data)
        if problems:  # a bug, not bad input: say so loudly
            raise RuntimeError("bench produced an inconsistent report: " + "; ".join(problems))
    console.print(markdown_table(data), highlight=False, soft_wrap=True)
    if data.get("shift_costs"):
        console.print(shift_markdown(data), highlight=False, soft_wrap=True)
    if any(r.get("profile") for r in data["results"]):
        console.print(profile_markdown(data), highlight=False, soft_wrap=True)
    machine = data["machine"]
    console.print(f"{machine['description']}, {machine['threads']} threads; fp32 GEMM peak "
                  f"{machine.get('gemm_peak_gflops')} GFLOP/s", highlight=False, soft_wrap=True)
    note = report_note(data) if args.device == "host" else None
    if note:
        console.print(note, highlight=False, soft_wrap=True)
    for path, writer in ((args.json, write_json), (args.csv, write_csv), (args.plot, plot)):
        if path:
            writer(data, path)
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


def _print_trace(args: argparse.Namespace) -> None:
    from .mil.trace import first_divergence
    from .parity import trace_coreml

    console = _console()
    with console.status("tracing the MIL program op by op..."), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, note = trace_coreml(args.artifact, args.trace, data=args.data, mil_precision=args.mil_precision)
    console.print(f"per-op outputs of the first image written to {args.trace} ({note})", highlight=False, soft_wrap=True)
    matched = [r for r in rows if r.rel_diff is not None]
    if not matched:
        return
    table = _table(title="largest per-op differences vs PyTorch (relative to the op's max |value|)")
    for col in ("#", "MIL op", "type", "shape", "max |diff|", "relative"):
        table.add_column(col, justify="right" if col in ("#", "max |diff|", "relative") else "left")
    for r in sorted(matched, key=lambda r: -(r.rel_diff or 0.0))[:10]:
        table.add_row(str(r.index), r.mil_name, r.op_type, "x".join(map(str, r.shape)),
                      f"{r.max_abs_diff:.3g}", f"{r.rel_diff:.2g}")
    console.print(table)
    first = first_divergence(rows, threshold=1e-2)
    console.print("first op over 1e-2 relative: " + (f"#{first.index} {first.mil_name} ({first.op_type})"
                                                      if first else "none"), highlight=False, soft_wrap=True)


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import BundleJob, bundle

    console = _console()
    result = bundle(BundleJob(sources=args.sources, app=args.app, app_dir=args.app_dir, images=args.images,
                              samples=args.samples, clean=args.clean))
    table = _table(title=f"bundled into {result.bundle_dir}")
    table.add_column("artifact", overflow="fold")
    for col in ("target", "precision", "size", "sha256 verified"):
        table.add_column(col, justify="right" if col == "size" else "left", no_wrap=True)
    for item in result.artifacts:
        m = item.manifest
        table.add_row(item.artifact.name, m.target.name, m.precision, f"{m.artifact.size_bytes / 1e6:.1f} MB",
                      f"{m.artifact.sha256[:12]}...")
    console.print(table)
    console.print(f"{len(result.samples)} sample images in {result.bundle_dir / 'samples'}", highlight=False, soft_wrap=True)
    if result.skipped:
        console.print(f"skipped (the {args.app} app runs {' and '.join(result.layout.targets)}): "
                      + ", ".join(result.skipped), highlight=False, soft_wrap=True)
    console.print(f"next: build the app (apps/{args.app}/README.md)", highlight=False, soft_wrap=True)
    return 0


def _count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, else argparse's one-line error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:,} to {high:,}, got {value}")
        return value

    return parse


def _precisions(text: str) -> list[str]:
    """An argparse type: one precision or a comma-separated list of them."""
    from .options import Precision

    items = [t.strip() for t in text.split(",")]
    unknown = [t for t in items if t not in set(Precision)]
    if unknown:
        # argparse's own wording for a bad choice, so one precision or a list reads alike
        raise argparse.ArgumentTypeError(f"invalid choice: {unknown[0]!r} (choose from {', '.join(Precision)})")
    return items


def _jobs(text: str) -> int | None:
    """An argparse type: 'auto' (None) or a worker count."""
    return None if text == "auto" else _count(1, 256)(text)


def _image_size(text: str) -> int | tuple[int, int]:
    """An argparse type: N or HxW (e.g. 224 or 288x384); a square HxW becomes N."""
    from .models._registry import parse_image_size

    try:
        h, w = parse_image_size(text.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return h if h == w else (h, w)


def _image_sizes(text: str) -> list[int | tuple[int, int]]:
    """An argparse type: one size or a comma-separated list of them (one multi-size artifact)."""
    return [_image_size(part) for part in text.split(",")]


def _indices(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated stage indices, e.g. 0,1,2,3."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated stage numbers such as 1,2,3, got {text!r}") from None


def _points(text: str) -> float:
    """An argparse type: a bound on an accuracy drop, a difference of two percentages (-100..100;
    negative demands a gain)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of points, got {text!r}") from None
    if not -100.0 <= value <= 100.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be from -100 to 100 points, got {text}")
    return value


# Bounds of the counting options: beyond them a run only burns time (calibration sees diminishing
# returns long before 10,000 images; a phone has at most a few dozen cores).
MAX_CALIB = 10_000
MAX_THREADS = 256
MAX_RUNS = 100_000


SET_HELP = ("reshape the variant, repeatable: its depth, width, ratios or patch / shift size under the official "
            "constructor's names, e.g. --set num_blocks=4 or --set depths=2,2,6,2 ('edge-mlp info NAME' lists "
            "them as config.*); the manifest records the config")


class _Parser(argparse.ArgumentParser):
    """argparse with our error contract: one line on stderr, exit 2 (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .converters import all_converters, host_timed_targets
    from .options import AUTO, Precision, ShiftLowering

    parser = _Parser(prog="edge-mlp", description="Vision MLPs (AS-MLP, MLP-Mixer, CycleMLP) made "
                     "deployable on phones: convert, check parity, benchmark, bundle into the sample apps.")
    parser.add_argument("--version", action="version", version=f"edge-mlp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="table of every model: family, params, GMACs, input")
    p.add_argument("--family", choices=["as_mlp", "cycle_mlp", "mlp_mixer"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="one model's full config and figures")
    p.add_argument("name")
    p.add_argument("--img-size", type=_image_size, metavar="N|HxW")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=SET_HELP)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("forward", help="one PyTorch forward pass (a smoke test of a model)")
    p.add_argument("name")
    p.add_argument("--img-size", type=_image_size, metavar="N|HxW")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=SET_HELP)
    p.add_argument("--weights", help="checkpoint (.pth/.pt/.safetensors) to load first")
    p.set_defaults(func=cmd_forward)

    targets = all_converters()
    defaults = "; ".join(f"{c.target}: {', '.join(c.precisions)} (default {c.default_precision})" for c in targets)
    p = sub.add_parser(
        "convert", help="export to ExecuTorch / Core ML / TFLite / ONNX with a manifest",
        description=f"Precisions per target: {defaults}.",
    )
    p.add_argument("name")
    p.add_argument("--target", required=True, choices=[*(c.target for c in targets), "all"])
    p.add_argument("--precision", type=_precisions, metavar="P[,P...]",
                   help=f"one of {', '.join(Precision)}, or several comma-separated (fp32,int8: one artifact "
                        "each); default: each target's own (see above); w4 (int4 per-block weights), pal4 / pal6 "
                        "(4- / 6-bit palettized weights): Core ML, iOS 18+")
    p.add_argument("--weights", help="checkpoint to load, or 'demo' for the shipped Fashion-MNIST "
                   "checkpoint (default: random init, for pipeline checks)")
    p.add_argument("--img-size", type=_image_sizes, metavar="SIZES",
                   help="input size N or HxW (height x width, e.g. 288x384), or a comma-separated list "
                        "(224,288x384,320) for one artifact that takes each: "
                        + "; ".join(f"{c.target}: {c.multi_size}" for c in targets if c.multi_size)
                        + " (not int8)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=SET_HELP)
    p.add_argument("--features-only", action="store_true",
                   help="a backbone for dense prediction: the stages' feature maps (NCHW) instead of logits; "
                        "a classifier checkpoint loads without its head")
    p.add_argument("--out-indices", type=_indices, metavar="I,J,..",
                   help="with --features-only: which stages to return (default all; see 'edge-mlp info NAME')")
    p.add_argument("--calib", help="int8 calibration: an image folder (flat or class subfolders) like the "
                   "weights' training data, 'demo' (the real Fashion-MNIST calibration subset; the default "
                   "with --weights demo) or 'synthetic' (the default for random init; pipeline checks only)")
    p.add_argument("--calib-size", type=_count(1, MAX_CALIB), default=32, help="calibration images for int8 (default 32)")
    p.add_argument("--shift-lowering", default=AUTO, choices=[AUTO, *ShiftLowering.exact()],
                   help="how the shift is exported (default auto: each target's measured best)")
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.add_argument("--max-drop", type=_points, metavar="PTS",
                   help="accuracy budget (int8; Core ML w4 / pal4 / pal6): keep the most sensitive blocks "
                        "in float (int8) or at 8-bit palettization (w4 / pal4 / pal6) until the top-1 drop on "
                        "the labelled calibration data is at most PTS points")
    p.add_argument("--force", action="store_true",
                   help="replace an artifact in --out that came from another model config or weights "
                        "(one of the same config is replaced without it)")
    p.add_argument("--jobs", type=_jobs, default=None, metavar="N|auto",
                   help="several artifacts (--target all, several precisions): convert N at once, each in its own "
                        "process (default auto: one per artifact, at most one per core and per 2 GB of available "
                        "memory; 1: one by one)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("parity", help="accuracy of an artifact on its runtime vs PyTorch fp32, on labelled images")
    p.add_argument("artifact", help="artifact or its .manifest.json")
    p.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist (test split), a class-subfolder DIR, or FILE.npz")
    p.add_argument("--limit", type=_count(1, 10**9), help="first N images only")
    p.add_argument("--max-drop", type=_points, help="exit 1 when the accuracy drop exceeds PTS points")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--per-layer", action="store_true",
                   help="int8 artifacts: SQNR of each block's output, simulated int8 vs fp32, worst first")
    p.add_argument("--mil-precision", choices=["fp16", "fp32"],
                   help="Core ML: run the MIL interpreter (default off macOS) rounding fp16-typed tensors "
                        "after each op (fp16, default) or keeping them in float32 (fp32)")
    p.add_argument("--trace", metavar="OUT.npz",
                   help="Core ML: write every MIL op's output for the first image and compare with PyTorch")
    p.add_argument("--arch", choices=["host", "arm64"], default="host",
                   help="arm64: also run the artifact on the aarch64 build of its runtime (the kernels a phone "
                        "runs) under QEMU, and report its parity and its difference from this host's run "
                        "(ExecuTorch, LiteRT, ONNX; needs root; the first run builds the arm64 root, ~10 min)")
    p.add_argument("--cpu", metavar="MODEL",
                   help="--arch arm64: the QEMU CPU model the kernels see (default cortex-a76; max enables SME; "
                        "properties as in max,sme=off)")
    p.set_defaults(func=cmd_parity)

    timed_targets = list(host_timed_targets())
    p = sub.add_parser(
        "bench", help="latency of every backend vs PyTorch eager fp32, interleaved in one process",
        description="Times PyTorch eager fp32 and each target x precision in one process, round-robin, "
                    "and reports median/p10/p90, throughput, GFLOP/s, % of a same-process fp32 GEMM peak, "
                    "load RSS and speedups. --device android runs the runtimes' own benchmark binaries "
                    "on a phone over adb.",
    )
    p.add_argument("sources", nargs="+", metavar="NAME_OR_ARTIFACT",
                   help="model names (converted first) and/or artifacts with manifests")
    p.add_argument("--targets", nargs="+", default=timed_targets, choices=timed_targets)
    p.add_argument("--precisions", nargs="+", default=[Precision.FP32, Precision.INT8],
                   choices=[Precision.FP32, Precision.INT8])
    p.add_argument("--img-size", type=int)
    p.add_argument("--weights", help="checkpoint or 'demo' for model names (default: random init)")
    p.add_argument("--threads", type=_count(1, MAX_THREADS), default=2)
    p.add_argument("--warmup", type=_count(0, MAX_RUNS), default=5)
    p.add_argument("--runs", type=_count(1, MAX_RUNS), default=30)
    p.add_argument("--shift-ablation", action="store_true",
                   help="also time the slice, roll, conv and identity (shift removed) lowerings: what the shift costs")
    p.add_argument("--profile", action="store_true",
                   help="after timing, a per-op table of each artifact from its runtime's own profiler "
                        "(ExecuTorch ETDump, LiteRT, ONNX Runtime); top ops printed, all in --json")
    p.add_argument("--keep-artifacts", metavar="DIR", help="keep the converted artifacts here")
    p.add_argument("--json", help="write the report (schema: edge_mlp/bench/schema.py)")
    p.add_argument("--csv", help="write one row per result")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of latency by backend and precision")
    p.add_argument("--device", choices=["host", "android", "ios"], default="host",
                   help="android: push artifacts with adb and run LiteRT benchmark_model / ExecuTorch "
                        "executor_runner on the phone; ios: measured by the iOS app (README: On-device latency)")
    p.add_argument("--runner-dir", help="android: local folder with benchmark_model / executor_runner "
                   "built for the phone, pushed before running")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "bundle", help="copy artifacts (checked against their manifests) into the Android or iOS sample app",
        description="Verifies each artifact's sha256 against its manifest, the manifest's schema version and "
                    "that the app runs its target, then copies artifacts, manifests, labels and sample images "
                    "to where the app loads them. Any failed check copies nothing.",
    )
    p.add_argument("sources", nargs="+", metavar="ARTIFACT_OR_DIR",
                   help="artifacts (.pte, .tflite, .mlpackage) or folders from edge-mlp convert; a folder "
                        "contributes the artifacts the app can run")
    p.add_argument("--app", required=True, choices=["android", "ios"])
    p.add_argument("--app-dir", help="the app's folder (default: apps/<app> of this checkout)")
    p.add_argument("--images", nargs="+", metavar="IMAGE_OR_DIR",
                   help="sample images to bundle (default: one Fashion-MNIST test image per class)")
    p.add_argument("--samples", type=_count(1, 1000), default=10, help="how many default sample images (default 10)")
    p.add_argument("--clean", action="store_true", help="remove earlier bundled files first")
    p.set_defaults(func=cmd_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    interrupts.install()  # first: a signal while the parser and its imports load is handled too
    quiet_cli_process()  # before any library that reads these settings is imported
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        code = func(args)
    except BaseException as err:  # noqa: B902 - sorted out right here
        # After a signal, whatever ends the run is its consequence: an interrupt that a library
        # swallowed mid-import can leave a half-imported module that fails later (numpy's
        # RecursionError), so any exception then is reported as the interruption it is.
        if interrupts.received() or isinstance(err, KeyboardInterrupt):
            _exit_interrupted()
        if isinstance(err, SystemExit):  # argparse: --help, --version, or a usage error already printed
            return err.code if isinstance(err.code, int) else 2
        if isinstance(err, EdgeMlpError):
            # Plain print: one line however long (rich would wrap it at the terminal width).
            print(f"edge-mlp: error: {err}", file=sys.stderr, flush=True)
            return err.exit_code
        if os.environ.get("EDGE_MLP_TRACEBACK"):
            raise
        print(_internal_error(err), file=sys.stderr, flush=True)
        return INTERNAL_ERROR
    if interrupts.received():  # swallowed by a library, and nothing was published after it
        _exit_interrupted()
    return code


INTERNAL_ERROR = 70  # a bug of ours: sysexits EX_SOFTWARE (2 is bad input, 1 a failed parity budget)


def _internal_error(err: BaseException) -> str:
    """One line for a bug: what failed, and where its traceback went. A user reads a line and a
    file to attach to a report, not a stack dump; EDGE_MLP_TRACEBACK=1 raises it here instead."""
    import tempfile
    import traceback

    report = "".join(traceback.format_exception(err))
    try:
        with tempfile.NamedTemporaryFile("w", prefix="edge-mlp-crash-", suffix=".txt", delete=False) as f:
            f.write(f"edge-mlp {__version__}, {' '.join(sys.argv)}\n\n{report}")
        where = f"the traceback is in {f.name}: please attach it to a report"
    except OSError:
        where = "run it again with EDGE_MLP_TRACEBACK=1 to see the traceback"
    # a worker's error carries the worker's traceback as its message: its last line says what failed
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if not re.match(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt): ", last):
        last = f"{type(err).__name__}: {last}" if last else type(err).__name__
    return f"edge-mlp: internal error: {last}. This is a bug in edge-mlp, not in your input; {where}"


def _exit_interrupted() -> NoReturn:
    # Staging folders were removed while the exception unwound. Leave right away: letting the
    # interpreter finalize can re-deliver the signal and end the process by it instead.
    interrupts.remove_temp_paths()
    print(f"edge-mlp: {interrupts.reason()}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(interrupts.exit_code())


if __name__ == "__main__":
    sys.exit(main())
