"""The `edge-mlp` command: parsing, progress and error reporting only; the work lives in the library."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import EdgeMlpError
from .models import create_model, get_spec, list_models, resolve_config
from .stats import model_stats

console = Console()
err_console = Console(stderr=True)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "img_size", None) is not None:
        out["img_size"] = args.img_size
    if getattr(args, "num_classes", None) is not None:
        out["num_classes"] = args.num_classes
    return out


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="edge-mlp model zoo")
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
    spec = get_spec(args.name)
    config = resolve_config(args.name, **_overrides(args))
    stats = model_stats(args.name, **_overrides(args))
    table = Table(title=f"{spec.name}: {spec.description}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    c, h, w = stats.input_size
    table.add_row("family", spec.family)
    table.add_row("reference", spec.source)
    table.add_row("params", f"{stats.params:,}")
    table.add_row("GMACs", f"{stats.gmacs:.3f} at {h}x{w}")
    table.add_row("input", f"1x{c}x{h}x{w} float32, NCHW")
    if config.data:
        table.add_row("preprocessing", f"mean {config.data.mean}, std {config.data.std}, "
                      f"crop_pct {config.data.crop_pct}, {config.data.interpolation}")
    for key, value in config.kwargs.items():
        table.add_row(f"config.{key}", repr(value))
    console.print(table)
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    import torch

    from .weights import load_weights

    torch.manual_seed(0)
    model = create_model(args.name, **_overrides(args)).eval()
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

    import converters

    from .convert import ConvertJob, convert

    job = ConvertJob(
        model=args.name, target=args.target, precision=args.precision, weights=args.weights,
        img_size=args.img_size, num_classes=args.num_classes, calib=args.calib,
        calib_size=args.calib_size, shift_lowering=args.shift_lowering, out_dir=args.out,
    )
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        results = convert(job, _StageProgress(progress))
    table = Table(title=f"{args.name} -> {args.out}/")
    for col in ("file", "size", "time", "coverage", "shift"):
        table.add_column(col, justify="right" if col in ("size", "time") else "left")
    for r in results:
        m = r.manifest
        conv = converters.get_converter(m.target.name)
        table.add_row(r.artifact.name, f"{m.artifact.size_bytes / 1e6:.1f} MB",
                      f"{m.conversion['wall_time_s']:.1f} s", conv.coverage_summary(m.coverage),
                      m.shift_lowering.used)
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-mlp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-mlp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="table of every model: family, params, GMACs, input")
    p.add_argument("--family", choices=["as_mlp", "cycle_mlp", "mlp_mixer"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="one model's full config and figures")
    p.add_argument("name")
    p.add_argument("--img-size", type=int)
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("forward", help="one PyTorch forward pass (a smoke test of a model)")
    p.add_argument("name")
    p.add_argument("--img-size", type=int)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--weights", help="checkpoint (.pth/.pt/.safetensors) to load first")
    p.set_defaults(func=cmd_forward)

    from converters import PRECISIONS, list_targets

    p = sub.add_parser(
        "convert", help="export to ExecuTorch / Core ML / TFLite / ONNX with a manifest",
        description="Default precision: int8 for executorch, tflite and onnx; fp16 for coreml.",
    )
    p.add_argument("name")
    p.add_argument("--target", required=True, choices=[*list_targets(), "all"])
    p.add_argument("--precision", choices=PRECISIONS, help="default: int8 (executorch/tflite/onnx), fp16 (coreml)")
    p.add_argument("--weights", help="checkpoint to load (default: random init, for pipeline checks)")
    p.add_argument("--img-size", type=int)
    p.add_argument("--num-classes", type=int)
    p.add_argument("--calib", default="demo", help="image folder (flat or class subfolders) or 'demo'")
    p.add_argument("--calib-size", type=int, default=32, help="calibration images for int8 (default 32)")
    p.add_argument("--shift-lowering", default="auto", choices=["auto", "slice", "roll"])
    p.add_argument("--out", default="out", help="output folder (default: out)")
    p.set_defaults(func=cmd_convert)
    return parser


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds through the staging folders, which clean themselves up


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EdgeMlpError as err:
        err_console.print(f"edge-mlp: error: {err}", markup=False, highlight=False, soft_wrap=True)
        return err.exit_code
    except KeyboardInterrupt:
        err_console.print("edge-mlp: interrupted", highlight=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
