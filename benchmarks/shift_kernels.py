"""What one AS-MLP shift costs inside XNNPACK, per way of writing it as convs (a benchmark, not a test).

The `conv` lowering runs each axial shift as one depthwise conv with a one-hot 1x5 (or 5x1) kernel.
This script converts the shift alone, at every stage shape of a model at 224, to ExecuTorch and
LiteRT (fp32 and int8), and reads the kernel times from each runtime's profiler (ETDump, LiteRT's
op profiler). Variants, all exact (checked against the `slice` lowering before timing):

- `conv`: the shipped lowering, a 1x5 and a 5x1 depthwise conv per block;
- `conv, 3-tap steps`: each shift as a chain of 3-tap one-hot depthwise convs (a move by 2 = two
  moves by 1 the same way; zero fill composes), since XNNPACK picks its depthwise kernel by tap
  count and the size after 3 taps is 9, which a 5-tap kernel runs;
- `conv, depth multiplier 2`: both shifts of a block from one 5x5 depthwise conv with two outputs
  per channel (issue 13's suggestion; channel 2c is the W shift, 2c + 1 the H shift);
- `conv, shift size 3` / `conv, shift size 9`: the same shapes with shift_size 3 / 9, a 3-tap and a
  9-tap kernel: where XNNPACK's kernel sizes step (CycleMLP's shifts are 3-tap).

`per inference` weights each stage by its shift count (2 per block). Kernel rows only: the
tiny models' input / output conversions are left out.

    .venv/bin/python benchmarks/shift_kernels.py [--model as_mlp_mobile] [--img-size 224] [--runs 50] [--rounds 9] [--print]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import warnings
from contextlib import nullcontext
from pathlib import Path

from edge_mlp import quiet

quiet.quiet_cli_process()
quiet.install()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edge_mlp import converters  # noqa: E402
from edge_mlp.bench.measure import machine_description  # noqa: E402
from edge_mlp.converters import ConversionRequest  # noqa: E402
from edge_mlp.models import create_model  # noqa: E402
from edge_mlp.ops.shift import axial_shift, axial_shift_groups, one_hot_kernel, shift_channel_groups  # noqa: E402
from edge_mlp.options import ShiftLowering, using_forms  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
README_BEGIN, README_END = "<!-- shift-kernels:begin -->", "<!-- shift-kernels:end -->"
TARGETS = ("executorch", "tflite")
PRECISIONS = ("fp32", "int8")


def three_tap_steps(channels: int, shift_size: int) -> list[list[tuple[int, int, int]]]:
    """The shift's channel groups as successive moves of at most one pixel, each the same way."""
    left = list(axial_shift_groups(channels, shift_size))
    steps = []
    while any(s for _, _, s in left):
        step = [(a, b, max(-1, min(1, s))) for a, b, s in left]
        steps.append(step)
        left = [(a, b, s - moved) for (a, b, s), (_, _, moved) in zip(left, step)]
    return steps


class _Shifts(torch.nn.Module):
    """Both axial shifts of one block, in one of the variants; returns their sum (one output)."""

    def __init__(self, variant: str, channels: int, shift_size: int) -> None:
        super().__init__()
        self.variant, self.shift_size = variant, shift_size
        if variant == "conv, 3-tap steps":
            self.steps = three_tap_steps(channels, shift_size)
            for i, groups in enumerate(self.steps):
                self.register_buffer(f"step{i}", one_hot_kernel(groups))
        elif variant == "conv, depth multiplier 2":
            pad = shift_size // 2
            kernel = torch.zeros(2 * channels, 1, 2 * pad + 1, 2 * pad + 1)
            for a, b, s in axial_shift_groups(channels, shift_size):
                for c in range(a, b):
                    kernel[2 * c, 0, pad, pad + s] = 1.0  # W shift
                    kernel[2 * c + 1, 0, pad + s, pad] = 1.0  # H shift
            self.register_buffer("both", kernel)
        else:
            self.register_buffer("kernel", one_hot_kernel(axial_shift_groups(channels, shift_size)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "conv, depth multiplier 2":
            return F.conv2d(x, self.both, padding=self.shift_size // 2, groups=x.shape[1])
        if self.variant == "conv, 3-tap steps":
            outs = []
            for dim in (3, 2):
                y = x
                for i, groups in enumerate(self.steps):
                    y = shift_channel_groups(y, groups, dim, 1, ShiftLowering.CONV, getattr(self, f"step{i}"))
                outs.append(y)
            return outs[0] + outs[1]
        return (axial_shift(x, self.shift_size, 3, ShiftLowering.CONV, self.kernel)
                + axial_shift(x, self.shift_size, 2, ShiftLowering.CONV, self.kernel))


def reference(x: torch.Tensor, variant: str, shift_size: int) -> torch.Tensor:
    w, h = (axial_shift(x, shift_size, d, ShiftLowering.SLICE) for d in (3, 2))
    if variant == "conv, depth multiplier 2":
        return torch.stack([w, h], 2).flatten(1, 2)  # channel 2c: W shift, 2c + 1: H shift
    return w + h


VARIANTS = ("conv", "conv, 3-tap steps", "conv, depth multiplier 2", "conv, shift size 3", "conv, shift size 9")
OTHER_SHIFT_SIZES = {"conv, shift size 3": 3, "conv, shift size 9": 9}


def stages(model: str, img_size: int) -> list[dict]:
    """(channels, side, shifts per inference) of each stage of an AS-MLP variant."""
    config = create_model(model, img_size=img_size).edge_config.kwargs
    side = img_size // config["patch_size"]
    return [{"stage": i, "channels": config["embed_dim"] * 2 ** i, "side": side // 2 ** i, "shifts": 2 * depth,
             "shift_size": config["shift_size"]} for i, depth in enumerate(config["depths"])]


def _is_shift_kernel(op: str) -> bool:
    return op.startswith("Convolution") or "convolution" in op


def convert_one(stage: dict, variant: str, target: str, precision: str, out: Path) -> dict:
    """The shift module of one stage and variant as an artifact, checked exact first."""
    channels, side = stage["channels"], stage["side"]
    shift_size = OTHER_SHIFT_SIZES.get(variant, stage["shift_size"])
    torch.manual_seed(0)
    module = _Shifts(variant, channels, shift_size).eval()
    calibration = [torch.randn(1, channels, side, side) for _ in range(4)]
    with torch.no_grad():
        if not torch.equal(module(calibration[0]), reference(calibration[0], variant, shift_size)):
            raise SystemExit(f"{variant} is not the official shift at stage {stage['stage']}")
    converter = converters.get_converter(target)
    work = out / f"{target}-{precision}-{stage['stage']}-{VARIANTS.index(variant)}"
    work.mkdir(parents=True)
    request = ConversionRequest(model=module, example=calibration[0], precision=precision, calibration=calibration,
                                work_dir=work, stem="shift", num_classes=1, stage=lambda _: nullcontext())
    with using_forms(converter.export_forms(ShiftLowering.CONV)):
        path = converter.convert(request).path
    return {"stage": stage["stage"], "channels": channels, "side": side, "shifts": stage["shifts"],
            "variant": variant, "target": target, "precision": precision, "exact": True,
            "path": path, "input": calibration[1].numpy(), "rounds": []}


def profile_round(artifact: dict, runs: int) -> None:
    """One profiler run of `runs` inferences; the round's kernel rows in us."""
    profile = converters.get_converter(artifact["target"]).profile(artifact["path"], artifact["input"], threads=2,
                                                                  runs=runs)
    artifact["rounds"].append({o.op: (o.calls, o.ms * 1000) for o in profile.ops})


def summarize(artifact: dict) -> dict:
    """The median over rounds of each kernel row and of the shift kernels' sum."""
    rounds = artifact["rounds"]
    ops = {op: calls for r in rounds for op, (calls, _) in r.items()}
    rows = [{"op": op, "calls": calls, "us": round(float(np.median([r.get(op, (0, 0.0))[1] for r in rounds])), 1)}
            for op, calls in ops.items()]
    per_round = [sum(us for op, (_, us) in r.items() if _is_shift_kernel(op)) for r in rounds]
    keep = {k: v for k, v in artifact.items() if k not in ("path", "input", "rounds")}
    return {**keep, "shift_us": round(float(np.median(per_round)), 1),
            "shift_us_per_round": [round(us, 1) for us in per_round],
            "kernels": sorted(rows, key=lambda r: -r["us"])}


def per_inference(rows: list[dict]) -> list[dict]:
    """Each target x precision x variant: the shift kernels' time for one inference of the model.
    A block's two shifts are one row (the multiplier-2 conv makes both), so a stage counts
    shifts / 2 rows."""
    totals: dict[tuple, float] = {}
    for r in rows:
        key = (r["target"], r["precision"], r["variant"])
        totals[key] = totals.get(key, 0.0) + r["shift_us"] * r["shifts"] / 2
    return [{"target": t, "precision": p, "variant": v, "us_per_inference": round(us, 1)}
            for (t, p, v), us in totals.items()]


def markdown(report: dict) -> str:
    rows, totals = report["rows"], report["per_inference"]
    shipped = {(t["target"], t["precision"]): t["us_per_inference"] for t in totals if t["variant"] == "conv"}
    lines = [f"{report['model']} at {report['img_size']}: the shift kernels' time per inference (all "
             f"{sum(s['shifts'] for s in report['stages'])} shifts, median of {report['rounds']} round-robin profiler runs of "
             f"{report['runs']} inferences, "
             f"2 threads, {report['machine']}; `benchmarks/shift_kernels.py`). Which XNNPACK kernel ran is "
             "the first stage's row:", "",
             "| target | precision | variant | kernel (stage 0) | us per inference | x conv |",
             "|---|---|---|---|---:|---:|"]
    for t in totals:
        first = next(r for r in rows if (r["target"], r["precision"], r["variant"], r["stage"])
                     == (t["target"], t["precision"], t["variant"], 0))
        kernels = ", ".join(f"{k['op']} x{k['calls']}" for k in first["kernels"] if _is_shift_kernel(k["op"]))
        ratio = t["us_per_inference"] / shipped[(t["target"], t["precision"])]
        lines.append(f"| {t['target']} | {t['precision']} | {t['variant']} | {kernels} | "
                     f"{t['us_per_inference']:.0f} | {ratio:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="as_mlp_mobile")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=50, help="inferences per profiler run")
    parser.add_argument("--rounds", type=int, default=9, help="profiler runs per artifact, round-robin")
    parser.add_argument("--json", default="benchmarks/results/shift_kernels.json")
    parser.add_argument("--print", action="store_true", help="only render the JSON into the README")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    def report() -> dict:
        shapes = stages(args.model, args.img_size)
        with tempfile.TemporaryDirectory() as tmp:
            artifacts = [convert_one(stage, variant, target, precision, Path(tmp))
                         for target in TARGETS for precision in PRECISIONS for variant in VARIANTS for stage in shapes]
            print(f"{len(artifacts)} artifacts converted, all exact; profiling {args.rounds} rounds", flush=True)
            for _ in range(args.rounds):  # round-robin: the machine's drift spreads over every variant
                for artifact in artifacts:
                    profile_round(artifact, args.runs)
        rows = [summarize(a) for a in artifacts]
        return {"model": args.model, "img_size": args.img_size, "runs": args.runs, "rounds": args.rounds, "threads": 2,
                "machine": machine_description(), "platform": platform.platform(), "stages": shapes,
                "rows": rows, "per_inference": per_inference(rows)}

    from parity_table import publish_report

    publish_report(Path(args.json), README_BEGIN, README_END, markdown, None if args.print else report)


if __name__ == "__main__":
    main()
