"""Check edge_mlp's models against the official implementations, weight for weight.

Why this exists
---------------
edge_mlp re-implements AS-MLP, CycleMLP and MLP-Mixer with mobile-friendly ops (AS-MLP's CuPy
shift kernel and CycleMLP's ``deform_conv2d`` become pad/slice or pad/roll). Its claim is that
official checkpoints load unchanged and give the same outputs. This script proves that for every
registered model: it builds the *official* model, fills it with seeded random weights (normal
noise on every parameter, GroupNorm/LayerNorm affine included, so a swapped norm or bias would
show), loads ``official.state_dict()`` into the edge_mlp model with ``strict=True`` and compares
logits on a fixed random batch, in float32 (pass: max abs diff <= 1e-5) and in float64 (to show
that the fp32 residual is only summation order).

The official code is never vendored into this repository: it is imported at run time from the
directories given on the command line. References:

- AS-MLP: svip-lab/AS-MLP ``models/as_mlp.py`` (configs from ``configs/*.yaml``). Its shift is a
  CuPy CUDA kernel; a stub ``cupy`` module is installed only while importing, and each ``Shift``
  module runs the official file's own CPU fallback ``torch_shift`` (checked below against a
  transcription of the CUDA kernel's index arithmetic).
- CycleMLP: ShoufaChen/CycleMLP ``cycle_mlp.py`` (``CycleMLP_B1..B5``, ``CycleNet``) with the real
  ``torchvision.ops.deform_conv2d``. Module paths that the installed timm no longer has are
  aliased to their current location while importing (no behaviour change).
- MLP-Mixer: timm's ``mlp_mixer.py`` (``mixer_*_224`` and ``MlpMixer``).
- The ``*_mobile`` variants have no official config; they are built from the official classes with
  the widths edge_mlp documents.

How to run (CPU, about a minute on 2 cores), from the repository root, with clones of
svip-lab/AS-MLP and ShoufaChen/CycleMLP and a Python that has torch, torchvision and timm::

    PYTHONPATH=. python benchmarks/verify_official.py \
        --as-mlp-repo ../AS-MLP --cycle-mlp-repo ../CycleMLP \
        --as-mlp-commit "$(git -C ../AS-MLP rev-parse HEAD)" \
        --cycle-mlp-commit "$(git -C ../CycleMLP rev-parse HEAD)"

The interpreter needs torch, torchvision, timm and PyYAML (the official code's dependencies);
edge_mlp itself only needs torch. Results go to ``benchmarks/results/official_parity.json``;
the exit status is 1 if any comparison fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import math
import platform
import subprocess
import sys
import time
import types
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import timm
import torch
import torch.nn as nn
import torchvision
import yaml
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer

import edge_mlp
from edge_mlp.options import ExportForms, ShiftLowering, using_forms

TOLERANCE = 1e-5
NUM_CLASSES = 1000
BATCH = 2
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "official_parity.json"

Size = tuple[int, int]
AS_MLP_SIZES: tuple[Size, ...] = ((64, 64),)  # divisible by patch 4 * 2**3
CYCLE_MLP_SIZES: tuple[Size, ...] = ((64, 64), (72, 56))  # any size: 72x56 gives odd stage maps
MIXER_SIZE: Size = (224, 224)  # the token MLP is tied to the patch count: the real config

AS_MLP_CONFIGS = {  # edge_mlp name -> official yaml (None: built from the class, see MOBILE)
    "as_mlp_tiny": "as_tiny_patch4_shift5_224.yaml",
    "as_mlp_small": "as_small_patch4_shift5_224.yaml",
    "as_mlp_base": "as_base_patch4_shift5_224.yaml",
    "as_mlp_mobile": None,
}
CYCLE_MLP_ENTRYPOINTS = {
    "cycle_mlp_b1": "CycleMLP_B1",
    "cycle_mlp_b2": "CycleMLP_B2",
    "cycle_mlp_b3": "CycleMLP_B3",
    "cycle_mlp_b4": "CycleMLP_B4",
    "cycle_mlp_b5": "CycleMLP_B5",
    "cycle_mlp_mobile": None,
}
MIXER_TIMM_NAMES = {
    "mixer_s32": "mixer_s32_224",
    "mixer_s16": "mixer_s16_224",
    "mixer_b32": "mixer_b32_224",
    "mixer_b16": "mixer_b16_224",
    "mixer_mobile": None,
}
MOBILE: dict[str, dict[str, Any]] = {
    "as_mlp_mobile": dict(embed_dim=48, depths=[2, 2, 6, 2], shift_size=5, drop_path_rate=0.1),
    "cycle_mlp_mobile": dict(
        layers=[2, 2, 4, 2], embed_dims=[32, 64, 160, 256], mlp_ratios=[4, 4, 4, 4],
        transitions=[True, True, True, True],
    ),
    "mixer_mobile": dict(patch_size=16, num_blocks=8, embed_dim=256),
}
FAMILIES = {
    "as_mlp": AS_MLP_CONFIGS, "cycle_mlp": CYCLE_MLP_ENTRYPOINTS, "mlp_mixer": MIXER_TIMM_NAMES,
}
SIZES: dict[str, tuple[Size, ...]] = {
    "as_mlp": AS_MLP_SIZES, "cycle_mlp": CYCLE_MLP_SIZES, "mlp_mixer": (MIXER_SIZE,),
}
LOWERINGS = ("slice", "roll")


# --------------------------------------------------------------------------- official imports


@contextlib.contextmanager
def temporary_modules(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put `modules` into sys.modules for the duration of an import, then restore what was there."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Hide timm's deprecation warnings and the official files' import-time prints."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"timm\..*")
        yield


def import_file_as(name: str, path: Path, package_dir: Path | None = None) -> types.ModuleType:
    """Import a file (or a package's __init__.py) under a private module name."""
    locations = [str(package_dir)] if package_dir is not None else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def cupy_stub() -> dict[str, types.ModuleType]:
    """Just enough of cupy for `shift_cuda.py` to import; any kernel launch raises."""

    def memoize(**_: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return lambda fn: fn

    def no_cuda(*_: Any, **__: Any) -> None:
        raise RuntimeError("cupy stub: the CUDA shift kernel is unavailable, use torch_shift")

    cupy = types.ModuleType("cupy")
    util = types.ModuleType("cupy._util")
    util.memoize = memoize  # type: ignore[attr-defined]
    cupy._util = util  # type: ignore[attr-defined]
    cupy.cuda = types.SimpleNamespace(compile_with_cache=no_cuda)  # type: ignore[attr-defined]
    return {"cupy": cupy, "cupy._util": util}


def timm_aliases(paths: dict[str, str]) -> dict[str, types.ModuleType]:
    """Aliases old -> new for the timm module paths that no longer import."""
    aliases = {}
    for old, new in paths.items():
        try:
            importlib.import_module(old)
        except ModuleNotFoundError:
            aliases[old] = importlib.import_module(new)
    return aliases


@dataclass
class Official:
    as_mlp: types.ModuleType
    shift_cuda: types.ModuleType
    as_mlp_configs: Path
    cycle_mlp: types.ModuleType
    shims: list[str]


def load_official(as_mlp_repo: Path, cycle_mlp_repo: Path) -> Official:
    shims: list[str] = []
    stub = cupy_stub()
    with temporary_modules(stub), quiet_import():
        package = import_file_as(
            "official_as_mlp", as_mlp_repo / "models" / "__init__.py", as_mlp_repo / "models"
        )
    shims.append("AS-MLP: stub 'cupy' module (cupy._util.memoize = identity) while importing "
                 "models/shift_cuda.py; Shift.forward -> official shift_cuda.torch_shift")
    del package
    aliases = timm_aliases({"timm.models.layers.helpers": "timm.layers.helpers"})
    with temporary_modules(aliases), quiet_import():
        cycle = import_file_as("official_cycle_mlp", cycle_mlp_repo / "cycle_mlp.py")
    shims.extend(f"CycleMLP: sys.modules alias {old} -> {mod.__name__} while importing cycle_mlp.py"
                 for old, mod in aliases.items())
    return Official(
        as_mlp=sys.modules["official_as_mlp.as_mlp"],
        shift_cuda=sys.modules["official_as_mlp.shift_cuda"],
        as_mlp_configs=as_mlp_repo / "configs",
        cycle_mlp=cycle,
        shims=shims,
    )


def kernel_shift(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """The CUDA kernel of AS-MLP `shift_cuda.py`, index arithmetic transcribed (gather form)."""
    _, c, h, w = x.shape
    group = math.ceil(c / shift)
    s = -(torch.arange(c) // group - shift // 2)  # per-channel shift
    length = h if dim == 2 else w
    src = torch.arange(length)[None, :] + s[:, None]  # (C, L): out[i] = in[i + s]
    valid = (src >= 0) & (src < length)
    src = src.clamp(0, length - 1)
    if dim == 2:
        out = x.gather(2, src[None, :, :, None].expand(x.shape[0], c, h, w))
        return out * valid[None, :, :, None]
    out = x.gather(3, src[None, :, None, :].expand(x.shape[0], c, h, w))
    return out * valid[None, :, None, :]


def check_torch_shift(shift_cuda: types.ModuleType) -> list[str]:
    """torch_shift must equal the CUDA kernel on every channel count/shape used here."""
    failures = []
    gen = torch.Generator().manual_seed(1)
    for channels in (3, 7, 48, 96, 128, 192, 256, 384, 512, 768, 1024):
        for shift in (3, 5, 7):
            for dim in (2, 3):
                x = torch.randn(2, channels, 6, 5, generator=gen)
                official = shift_cuda.torch_shift(x, shift, dim)
                if not torch.equal(official, kernel_shift(x, shift, dim)):
                    failures.append(f"C={channels} k={shift} dim={dim}")
    return failures


# --------------------------------------------------------------------------- model builders


def build_official(name: str, family: str, size: Size, off: Official) -> nn.Module:
    if family == "as_mlp":
        config_file = AS_MLP_CONFIGS[name]
        if config_file is None:
            cfg = MOBILE[name]
        else:
            model_cfg = yaml.safe_load((off.as_mlp_configs / config_file).read_text())["MODEL"]
            arch = model_cfg["ASMLP"]
            cfg = dict(embed_dim=arch["EMBED_DIM"], depths=arch["DEPTHS"],
                       shift_size=arch["SHIFT_SIZE"], drop_path_rate=model_cfg["DROP_PATH_RATE"])
        model = off.as_mlp.AS_MLP(img_size=size, num_classes=NUM_CLASSES, **cfg)
        torch_shift = off.shift_cuda.torch_shift
        patched = 0
        for module in model.modules():
            if isinstance(module, off.shift_cuda.Shift):
                module.forward = functools.partial(  # type: ignore[method-assign]
                    torch_shift, shift_size=module.kernel_size, dim=module.dim
                )
                patched += 1
        if patched == 0:
            raise RuntimeError("no official Shift modules found to patch")
    elif family == "cycle_mlp":
        entrypoint = CYCLE_MLP_ENTRYPOINTS[name]
        if entrypoint is None:
            model = off.cycle_mlp.CycleNet(num_classes=NUM_CLASSES, mlp_fn=off.cycle_mlp.CycleMLP,
                                           **MOBILE[name])
        else:
            model = getattr(off.cycle_mlp, entrypoint)(num_classes=NUM_CLASSES)
    else:
        timm_name = MIXER_TIMM_NAMES[name]
        if timm_name is None:
            model = TimmMlpMixer(num_classes=NUM_CLASSES, img_size=size[0], **MOBILE[name])
        else:
            model = timm.create_model(timm_name, pretrained=False, num_classes=NUM_CLASSES,
                                      img_size=size[0])
    return model.eval()


def build_ours(name: str, family: str, size: Size) -> nn.Module:
    img_size = size[0] if size[0] == size[1] else size
    overrides: dict[str, Any] = {"num_classes": NUM_CLASSES, "img_size": img_size}
    return edge_mlp.create_model(name, **overrides).eval()


@torch.no_grad()
def randomize_(model: nn.Module, seed: int) -> None:
    """Seeded normal noise on every parameter.

    Weights ~ N(0, 1/fan_in) keep activations O(1) through deep stacks; biases ~ N(0, 0.2^2);
    norm affine: weight ~ N(1, 0.2^2), bias ~ N(0, 0.2^2), so none is a no-op.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm))
        for pname, param in module.named_parameters(recurse=False):
            noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
            if is_norm and pname == "weight":
                param.copy_(1.0 + 0.2 * noise)
            elif param.ndim >= 2:
                param.copy_(noise / math.sqrt(param[0].numel()))
            else:
                param.copy_(0.2 * noise)


# --------------------------------------------------------------------------- comparison


@dataclass
class Row:
    model: str
    family: str
    lowering: str | None
    input_size: list[int]  # [C, H, W]
    keys_identical: bool
    shapes_identical: bool
    strict_load_ok: bool
    strict_load_error: str | None
    max_abs_diff_fp32: float
    max_abs_diff_fp64: float
    max_abs_logit: float
    passed: bool
    # only on failure: [[module, max diff or None if not comparable], ...]
    first_divergence: list[list[Any]] | None = None


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return math.inf
    return float((a.double() - b.double()).abs().max())


@torch.no_grad()
def locate_divergence(
    official: nn.Module, ours: nn.Module, x: torch.Tensor, limit: int = 5
) -> list[list[Any]]:
    """Same-named modules whose outputs differ > TOLERANCE, in the official execution order.

    edge_mlp's CycleFC runs through `forward_nhwc` (no hooks fire there), so that method is
    wrapped to record its output in the official NCHW layout. Modules executed before the first
    divergence that could not be compared (not called, or another shape) are listed as
    [name, None], since the cause may be one of them.
    """
    outputs: dict[str, dict[str, torch.Tensor]] = {"official": {}, "ours": {}}
    order: list[str] = []
    handles = []
    shared = dict(official.named_modules()).keys() & dict(ours.named_modules()).keys()

    def record(side: str, mname: str, out: Any) -> None:
        if isinstance(out, torch.Tensor) and mname not in outputs[side]:
            outputs[side][mname] = out
            if side == "official":
                order.append(mname)

    wrapped: list[nn.Module] = []
    for side, model in (("official", official), ("ours", ours)):
        for mname, module in model.named_modules():
            if mname not in shared or not mname:
                continue
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, side=side, mname=mname: record(side, mname, out)))
            if side == "ours" and hasattr(module, "forward_nhwc"):
                def nhwc(
                    t: torch.Tensor, fn: Any = module.forward_nhwc, mname: str = mname
                ) -> torch.Tensor:
                    out = fn(t)
                    record("ours", mname, out.permute(0, 3, 1, 2))
                    return out

                module.forward_nhwc = nhwc  # instance attribute shadows the method
                wrapped.append(module)
    try:
        official(x)
        ours(x)
    finally:
        for handle in handles:
            handle.remove()
        for module in wrapped:
            del module.forward_nhwc
    found: list[list[Any]] = []
    uncompared: list[list[Any]] = []
    for mname in order:
        a, b = outputs["official"][mname], outputs["ours"].get(mname)
        if b is None or a.shape != b.shape:
            if not found:
                uncompared.append([mname, None])
            continue
        diff = max_abs_diff(a, b)
        if not diff <= TOLERANCE:
            found.append([mname, diff])
            if len(found) >= limit:
                break
    return uncompared[-limit:] + found


def compare(
    name: str, family: str, official: nn.Module, state: dict[str, torch.Tensor],
    lowering: str | None, sizes: Sequence[Size], seed: int,
) -> list[Row]:
    ours = build_ours(name, family, sizes[0])
    ours_state = ours.state_dict()
    keys_identical = set(ours_state) == set(state)
    shapes_identical = keys_identical and all(
        ours_state[k].shape == v.shape for k, v in state.items()
    )
    try:
        ours.load_state_dict(state, strict=True)
        strict_ok, strict_error = True, None
    except RuntimeError as err:
        strict_ok, strict_error = False, str(err).splitlines()[0][:500]

    gen = torch.Generator().manual_seed(seed + 1)
    inputs = [torch.randn(BATCH, 3, h, w, generator=gen) for h, w in sizes]
    forms = ExportForms() if lowering is None else ExportForms(shift=ShiftLowering(lowering))
    with torch.no_grad(), using_forms(forms):
        fp32 = [(official(x), ours(x)) for x in inputs]
        official.double()
        ours.double()
        fp64 = [(official(x.double()), ours(x.double())) for x in inputs]
        official.float()
        ours.float()

    rows = []
    for (h, w), x, (a32, b32), (a64, b64) in zip(sizes, inputs, fp32, fp64):
        diff32, diff64 = max_abs_diff(a32, b32), max_abs_diff(a64, b64)
        passed = keys_identical and shapes_identical and strict_ok and diff32 <= TOLERANCE
        row = Row(
            model=name, family=family, lowering=lowering, input_size=[3, h, w],
            keys_identical=keys_identical, shapes_identical=shapes_identical,
            strict_load_ok=strict_ok, strict_load_error=strict_error,
            max_abs_diff_fp32=diff32, max_abs_diff_fp64=diff64,
            max_abs_logit=float(a32.abs().max()), passed=passed,
        )
        if not passed and strict_ok:
            row.first_divergence = locate_divergence(official, ours, x)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- reporting


def git_commit(repo: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (pass --as-mlp-commit / --cycle-mlp-commit)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


HEADER = (f"{'model':<17} {'lowering':<8} {'input':<9} {'keys':<4} {'strict':<6} "
          f"{'fp32 max|d|':>11} {'fp64 max|d|':>11} {'max|logit|':>10}  result")


def format_row(row: Row) -> str:
    _, h, w = row.input_size
    return (f"{row.model:<17} {row.lowering or '-':<8} {f'{h}x{w}':<9} "
            f"{'same' if row.keys_identical and row.shapes_identical else 'DIFF':<4} "
            f"{'ok' if row.strict_load_ok else 'FAIL':<6} {row.max_abs_diff_fp32:>11.3e} "
            f"{row.max_abs_diff_fp64:>11.3e} {row.max_abs_logit:>10.3f}  "
            f"{'PASS' if row.passed else 'FAIL'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    known = [n for names in FAMILIES.values() for n in names]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-mlp-repo", type=Path, required=True,
                        help="extracted svip-lab/AS-MLP tree (contains models/as_mlp.py)")
    parser.add_argument("--cycle-mlp-repo", type=Path, required=True,
                        help="extracted ShoufaChen/CycleMLP tree (contains cycle_mlp.py)")
    parser.add_argument("--as-mlp-commit", help="commit of the AS-MLP tree (recorded in the JSON)")
    parser.add_argument("--cycle-mlp-commit",
                        help="commit of the CycleMLP tree (recorded in the JSON)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default: {DEFAULT_JSON}")
    parser.add_argument("--models", help=f"comma-separated subset of: {', '.join(known)}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    chosen = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    args.model_list = chosen or known
    unknown = sorted(set(args.model_list) - set(known))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    for flag, path, probe in (("--as-mlp-repo", args.as_mlp_repo, "models/as_mlp.py"),
                              ("--cycle-mlp-repo", args.cycle_mlp_repo, "cycle_mlp.py")):
        if not (path / probe).is_file():
            parser.error(f"{flag} {path}: {probe} not found (extract the official repo there)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    official = load_official(args.as_mlp_repo, args.cycle_mlp_repo)
    shift_failures = check_torch_shift(official.shift_cuda)
    print(f"official torch_shift == CUDA kernel transcription: "
          f"{'yes' if not shift_failures else 'NO: ' + ', '.join(shift_failures)}")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"timm {timm.__version__}, {torch.get_num_threads()} threads; "
          f"tolerance {TOLERANCE:g} (fp32 max abs diff)\n")
    print(HEADER)
    print("-" * len(HEADER))

    rows: list[Row] = []
    family_of = {n: fam for fam, names in FAMILIES.items() for n in names}
    for index, name in enumerate(args.model_list):
        family = family_of[name]
        sizes = SIZES[family]
        lowerings: Sequence[str | None] = (None,) if family == "mlp_mixer" else LOWERINGS
        model_seed = args.seed * 1000 + index
        # AS-MLP (input-size assert) and Mixer (token MLP) are built per size; CycleMLP is not.
        per_size = family != "cycle_mlp"
        groups = [[s] for s in sizes] if per_size else [list(sizes)]
        for group in groups:
            official_model = build_official(name, family, group[0], official)
            randomize_(official_model, model_seed)
            state = {k: v.detach().clone() for k, v in official_model.state_dict().items()}
            for lowering in lowerings:
                new_rows = compare(name, family, official_model, state, lowering, group, model_seed)
                for row in new_rows:
                    rows.append(row)
                    print(format_row(row), flush=True)
                    if row.strict_load_error:
                        print(f"    strict load: {row.strict_load_error}")
                    for mname, diff in row.first_divergence or []:
                        if diff is None:
                            print(f"    not comparable (runs before the divergence): {mname}")
                        else:
                            print(f"    diverges at {mname}: max|d| {diff:.3e}")
            del official_model, state

    elapsed = time.perf_counter() - start
    failed = [r for r in rows if not r.passed] + ([] if not shift_failures else [None])
    print("-" * len(HEADER))
    print(f"{sum(r.passed for r in rows)}/{len(rows)} comparisons passed in {elapsed:.1f} s")
    for shim in official.shims:
        print(f"shim: {shim}")

    report = {
        "generated_by": "benchmarks/verify_official.py",
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tolerance_fp32_max_abs_diff": TOLERANCE,
        "seed": args.seed,
        "batch": BATCH,
        "num_classes": NUM_CLASSES,
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "timm": timm.__version__,
            "edge_mlp": edge_mlp.__version__,
        },
        "official": {
            "as_mlp": {"repo": "svip-lab/AS-MLP",
                       "commit": git_commit(args.as_mlp_repo, args.as_mlp_commit),
                       "sha256": {f: sha256(args.as_mlp_repo / f)
                                  for f in ("models/as_mlp.py", "models/shift_cuda.py")}},
            "cycle_mlp": {"repo": "ShoufaChen/CycleMLP",
                          "commit": git_commit(args.cycle_mlp_repo, args.cycle_mlp_commit),
                          "sha256": {"cycle_mlp.py": sha256(args.cycle_mlp_repo / "cycle_mlp.py")}},
            "mlp_mixer": {"repo": "timm", "version": timm.__version__},
        },
        "shims": official.shims,
        "torch_shift_matches_cuda_kernel": not shift_failures,
        "elapsed_s": round(elapsed, 1),
        "all_passed": not failed,
        "results": [asdict(r) for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
