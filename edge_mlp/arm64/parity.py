"""Parity on the phone's own kernels (issue 17): an artifact on the aarch64 build of its runtime,
under QEMU (edge_mlp.arm64.runner), against PyTorch fp32 and against the same artifact on this
host's x86 kernels.

`run_parity_arm64(artifact)` gives three things: the x86 ParityReport (`edge_mlp.parity.run_parity`,
unchanged), the arm64 ParityReport (the same fields and JSON schema, the artifact's outputs from
arm64 kernels, `runtime` naming the arm64 build and the emulated CPU), and the x86-vs-arm64
difference (bit-identical or not, max |diff|, how many values differ, top-1 agreement) with the
emulated CPU's features and the XNNPACK evidence. Both sides see the same images through the
manifest's preprocessing, at every input size the artifact takes (each size runs the entry point
the host runners pick: `forward_HxW`, `serving_default_HxW`), every output (a backbone's feature maps).

`check_arm64(artifact, cpu)` is the fast check the CLI runs before any of that: Core ML (no arm64
Linux runtime), a CPU model QEMU does not emulate, a machine that cannot run the root (not root, no
binfmt_misc) each fail in one line there.

Imports torch (the PyTorch reference); edge_mlp.arm64's runner does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_mlp.errors import indefinite
from edge_mlp.manifest import Manifest, open_artifact

from .cpu import CpuIdentity, cpu_identity, qemu_cpu_models
from .errors import Arm64Error, Arm64Unavailable
from .root import CPUPROBE, OPT, PY_STAMP, ensure_binfmt, prepare_root, qemu_version, resolve_cache_dir
from .runner import DEFAULT_CPU, SME_CPU, SUFFIXES, ArmRun, run_arm64

if TYPE_CHECKING:
    import numpy as np

    from edge_mlp.parity import OutputParity, ParityReport

ARCH = "arm64"
# What `qemu-aarch64-static -cpu help` lists in Debian bookworm's QEMU 7.2: used to check --cpu
# only before the first build installs QEMU (afterwards its own list is the authority).
KNOWN_CPU_MODELS = ("a64fx", "cortex-a35", "cortex-a53", "cortex-a57", "cortex-a72", "cortex-a76", "max",
                    "neoverse-n1")
# CPU models whose kernels compute what x86 computes in the runs of benchmarks/arm64_parity.py;
# `max` enables SME, where XNNPACK's int8 results differ (see the README's arm64 section).
RECOMMENDED_CPUS = ("cortex-a76", "neoverse-n1", "max,sme=off")
_PROPERTY = re.compile(r"^[a-z][a-z0-9-]*=[A-Za-z0-9]+$")


# ---------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Arm64Check:
    """What a run would do, found in well under a second."""

    artifact: Path
    manifest: Manifest
    cpu: str
    root: Path  # the root's folder (built by the first run when missing: ~10 minutes)
    root_ready: bool
    identity: CpuIdentity | None  # the emulated CPU as the kernels will see it; None until the root exists

    def line(self) -> str:
        m = self.manifest
        what = f"{self.artifact.name} ({m.target.name} {m.precision}) on arm64, QEMU_CPU={self.cpu}"
        if self.identity is not None:
            features = self.identity.features
            seen = [f for f in ("asimddp", "i8mm", "sve", "sve2", "sme") if f in features]
            what += f" (MIDR part {self.identity.part}, {' '.join(seen) or 'no dot product'})"
        state = "ready" if self.root_ready else "missing: this run builds it first (about 10 minutes, once)"
        return f"{what}; arm64 root {self.root}: {state}"


def check_arm64(artifact_or_manifest: str | Path, cpu: str = DEFAULT_CPU) -> Arm64Check:
    """Everything `--arch arm64` needs that can be checked quickly, each failure one EdgeMlpError line:
    the artifact and its manifest, a target with an aarch64 Linux runtime, a CPU model QEMU
    emulates with well-formed properties (`max,sme=off`), and a machine that can run the root
    (root, binfmt_misc). Builds nothing; the probe of the CPU model runs only when the root exists."""
    artifact, manifest = open_artifact(artifact_or_manifest)
    target = manifest.target.name
    if target == "coreml":
        raise Arm64Error(f"Core ML has no arm64 Linux runtime; {artifact.name} can only run on macOS / iOS "
                         "(`edge-mlp parity` without --arch runs it here on the MIL interpreter). --arch arm64 "
                         "runs ExecuTorch (.pte), LiteRT (.tflite) and ONNX (.onnx) artifacts")
    if artifact.suffix not in SUFFIXES:
        raise Arm64Error(f"{artifact.name} is {indefinite(target)} artifact; --arch arm64 runs "
                         f"{', '.join(SUFFIXES)} artifacts")
    model, *properties = cpu.split(",")
    bad = [p for p in properties if not _PROPERTY.match(p)]
    if not model or bad:
        raise Arm64Error(f"--cpu {cpu!r}: expected a QEMU CPU model and NAME=VALUE properties, e.g. "
                         f"cortex-a76 or max,sme=off")
    if os.geteuid() != 0:
        raise Arm64Unavailable("--arch arm64 needs root (the arm64 root is a chroot, run with binfmt_misc "
                               "under QEMU): run as root, e.g. in CI or with sudo")
    have_qemu = shutil.which("qemu-aarch64-static") is not None
    models = qemu_cpu_models() if have_qemu else set(KNOWN_CPU_MODELS)
    if model not in models:
        raise Arm64Error(f"QEMU has no CPU model {model!r}; choose one of {', '.join(sorted(models))} "
                         f"(recommended: {', '.join(RECOMMENDED_CPUS)})")
    if have_qemu and shutil.which("update-binfmts") is not None:
        ensure_binfmt()  # mounts / enables binfmt_misc as prepare_root would, or says why it cannot
    path = resolve_cache_dir() / "root"
    probe = path / CPUPROBE.lstrip("/")
    ready = (path / OPT.lstrip("/") / PY_STAMP).is_file() and probe.is_file()
    identity = cpu_identity(probe, cpu) if ready and have_qemu else None  # checks the properties too
    return Arm64Check(artifact, manifest, cpu, path, ready, identity)


# ---------------------------------------------------------------------------------------- report


@dataclass
class OutputDiff:
    """One output at one input size: the artifact on arm64 kernels vs on x86 kernels."""

    size: str
    output: str
    bit_identical: bool
    max_abs_diff: float
    differing: int  # values that differ
    total: int
    value_range: float  # max - min of the x86 values

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ArchDiff:
    """x86 vs arm64 over every output at every size."""

    bit_identical: bool
    max_abs_diff: float
    differing: int
    total: int
    top1_agreement: float | None  # % images with the same top-1 class on both (classifiers; first size)
    top1_differing_images: int | None
    outputs: list[OutputDiff] = field(default_factory=list)

    @property
    def differing_pct(self) -> float:
        return 100.0 * self.differing / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["differing_pct"] = self.differing_pct
        data["outputs"] = [o.to_dict() for o in self.outputs]
        return data


@dataclass
class Arm64ParityReport:
    arch: str  # "arm64"
    cpu: str  # QEMU_CPU
    cpu_part: str  # MIDR part the kernels saw (0xd0b: Cortex-A76; 0x051: QEMU's max)
    cpu_features: list[str]  # HWCAPs the kernels saw
    qemu: str  # qemu-aarch64-static version
    entries: list[str]  # the entry point that ran at each input size ("" for ONNX)
    xnnpack: bool | None  # XNNPACK ran on arm64 (None: ONNX Runtime, its own kernels)
    xnnpack_evidence: dict[str, Any]  # the runtime's own account (delegated methods / partitions)
    x86: ParityReport  # the artifact on this host's runtime vs PyTorch (edge_mlp.parity.run_parity)
    arm64: ParityReport  # the artifact on the arm64 runtime vs PyTorch
    difference: ArchDiff  # x86 vs arm64
    seconds: dict[str, float]  # x86 parity run, arm64 emulated process(es), per image emulated
    notes: list[str] = field(default_factory=list)

    @property
    def sme(self) -> bool:
        return "sme" in self.cpu_features

    def to_dict(self) -> dict:
        return {
            "arch": self.arch, "cpu": self.cpu, "cpu_part": self.cpu_part, "cpu_features": self.cpu_features,
            "sme": self.sme, "sve": "sve" in self.cpu_features, "qemu": self.qemu, "entries": self.entries,
            "xnnpack": self.xnnpack, "xnnpack_evidence": self.xnnpack_evidence,
            "x86": self.x86.to_dict(), "arm64": self.arm64.to_dict(),
            "x86_vs_arm64": self.difference.to_dict(), "seconds": self.seconds, "notes": self.notes,
        }


def write_json(reports: list[Arm64ParityReport], path: str | Path) -> None:
    from edge_mlp.fileio import write_text_atomic

    write_text_atomic(path, json.dumps([r.to_dict() for r in reports], indent=2) + "\n")


# ------------------------------------------------------------------------------------------ run


def run_parity_arm64(artifact_or_manifest: str | Path, data: str = "fashion-mnist", limit: int | None = None,
                     cpu: str = DEFAULT_CPU, root=None) -> Arm64ParityReport:
    """The artifact on arm64 kernels (QEMU_CPU=`cpu`) vs PyTorch fp32 and vs x86, on `data`'s first
    `limit` images, at every input size and output. `root`: a prepared Arm64Root (default:
    prepare_root(), a no-op once built; the first call builds it)."""
    import numpy as np

    from edge_mlp.converters import get_converter
    from edge_mlp.parity import (
        ParityReport,
        backbone_summary,
        compare,
        compare_output,
        evaluation_set,
        reference_model,
        reference_outputs,
        run_parity,
    )

    check = check_arm64(artifact_or_manifest, cpu)
    artifact, manifest = check.artifact, check.manifest
    root = prepare_root() if root is None else root
    identity = cpu_identity(root.cpuprobe, cpu)
    start = time.monotonic()
    x86 = run_parity(artifact, data=data, limit=limit)
    x86_s = time.monotonic() - start
    host = get_converter(manifest.target.name).open_model(artifact)
    model = reference_model(manifest)
    names = [f.tensor.name for f in manifest.features] or [manifest.output.tensor.name]
    strides: list[int | None] = [f.stride for f in manifest.features] or [None]
    expected = [s.entry for s in manifest.input_sizes]
    rows: list[OutputParity] = []
    diffs: list[OutputDiff] = []
    first: dict | None = None
    runs: list[ArmRun] = []
    agreement: tuple[float, int] | None = None
    for i, size in enumerate(manifest.sizes()):
        x, labels, source = evaluation_set(manifest, data, limit, size)
        reference = reference_outputs(model, x)
        ours = host.batch_outputs(x)
        arm = run_arm64(artifact, x, cpu=cpu, root=root)
        runs.append(arm)
        want = expected[i] if i < len(expected) and expected[i] else None
        if want is not None and arm.entry != want:
            raise Arm64Error(f"{artifact.name} at {size[0]}x{size[1]}: the manifest names entry point {want!r} "
                             f"but the arm64 runtime ran {arm.entry!r}: re-convert it")
        if not len(arm.outputs) == len(ours) == len(reference):
            raise Arm64Error(f"{artifact.name} gives {len(arm.outputs)} outputs on arm64, {len(ours)} on x86 and "
                             f"its model {len(reference)}: re-convert it")
        for a, o, r, n, s in zip(arm.outputs, ours, reference, names, strides):
            rows.append(compare_output(a, r, size, n, s))
            diffs.append(_output_diff(a, o, rows[-1].size, n))
        if first is None:
            images = len(x)
            if manifest.is_backbone:
                first = backbone_summary(rows)
            else:
                first = compare(arm.outputs[0], reference[0], labels)
                same = arm.outputs[0].argmax(1) == ours[0].argmax(1)
                agreement = (round(100.0 * float(same.mean()), 3), int((~same).sum()))
    assert first is not None
    lead = runs[0]
    arm_report = ParityReport(
        artifact=str(artifact), model=manifest.model.name, target=manifest.target.name,
        precision=manifest.precision, runtime=f"{lead.runtime} on arm64 (QEMU {qemu_version()}, -cpu {cpu})",
        data=source, images=images, **first, outputs=rows,
    )
    difference = ArchDiff(
        bit_identical=all(d.bit_identical for d in diffs), max_abs_diff=max(d.max_abs_diff for d in diffs),
        differing=sum(d.differing for d in diffs), total=sum(d.total for d in diffs),
        top1_agreement=None if agreement is None else agreement[0],
        top1_differing_images=None if agreement is None else agreement[1], outputs=diffs,
    )
    emulated = sum(r.wall_s for r in runs)
    per_image = [r.infer_ms for r in runs]
    report = Arm64ParityReport(
        arch=ARCH, cpu=cpu, cpu_part=identity.part, cpu_features=list(identity.features), qemu=qemu_version(),
        entries=[r.entry for r in runs], xnnpack=lead.xnnpack, xnnpack_evidence=lead.evidence, x86=x86,
        arm64=arm_report, difference=difference,
        seconds={"x86_parity": round(x86_s, 2), "arm64_emulated": round(emulated, 2),
                 "arm64_load_ms": round(lead.load_ms, 1), "arm64_ms_per_image": round(float(np.median(per_image)), 2)},
    )
    report.notes = _notes(report)
    return report


def _output_diff(arm: np.ndarray, x86: np.ndarray, size: str, name: str) -> OutputDiff:
    import numpy as np

    if arm.shape != x86.shape:
        raise Arm64Error(f"output {name} has shape {list(arm.shape[1:])} on arm64 but {list(x86.shape[1:])} on x86")
    differ = arm != x86  # bits: float32 values compared exactly
    diff = np.abs(arm.astype(np.float64) - x86.astype(np.float64))
    return OutputDiff(size=size, output=name, bit_identical=not bool(differ.any()), max_abs_diff=float(diff.max()),
                      differing=int(differ.sum()), total=int(differ.size),
                      value_range=float(x86.max() - x86.min()))


def _notes(report: Arm64ParityReport) -> list[str]:
    """What a reader should take from the difference, for the cases benchmarks/arm64_parity.py measured."""
    notes = []
    d, target, precision = report.difference, report.arm64.target, report.arm64.precision
    counts = f"{d.differing:,}/{d.total:,} values differ, max |diff| {d.max_abs_diff:.3g}"
    agree = counts if d.top1_agreement is None else f"{counts}, top-1 agreement {d.top1_agreement:.2f} %"
    if d.bit_identical:
        pass
    elif report.sme and report.xnnpack and precision == "int8":
        notes.append(f"QEMU_CPU={report.cpu} advertises SME and XNNPACK takes its SME int8 path there: under QEMU "
                     f"{report.qemu} its results differ from x86 ({agree}); only SME hardware can tell "
                     f"whether QEMU's emulation or the kernels are at fault. For the NEON kernels today's phones "
                     f"run, use a CPU model without SME ({', '.join(RECOMMENDED_CPUS)})")
    elif precision in ("fp32", "fp16"):
        notes.append(f"float kernels round differently on x86 and arm64 ({agree}): float arithmetic "
                     "in another order, as expected")
    elif target == "onnx":
        notes.append(f"ONNX Runtime's arm64 int8 kernels differ from its x86 ones ({agree}): take the "
                     "accuracy from this arm64 run, and compare logits across architectures with a tolerance of a "
                     "quantization step or two, not bit equality")
    else:
        outside = report.xnnpack_evidence.get("ops_outside_delegate") or []
        why = (f"{', '.join(outside)} run outside XNNPACK on LiteRT's own kernels, whose x86 and arm64 builds "
               "round differently, and " if outside else "")
        notes.append(f"{agree}: {why}most likely the float ops the int8 graph keeps between its int8 GEMMs "
                     "(GELU, norms, means), whose rounding differs between x86 and arm64 float kernels: a value on a "
                     "quantization boundary then moves a step, and the layers after it carry that on")
    if report.xnnpack is False:
        notes.append(f"XNNPACK did not run on arm64: {json.dumps(report.xnnpack_evidence)[:200]}")
    return notes


# ------------------------------------------------------------------------------------------- CLI


def arm64_rows(report: Arm64ParityReport) -> list[tuple[str, str]]:
    """(metric, value) rows for `edge-mlp parity --arch arm64`'s table: accuracy on both
    architectures, the x86-vs-arm64 difference, what ran."""
    a, x, d = report.arm64, report.x86, report.difference
    rows: list[tuple[str, str]] = []
    if a.top1_reference is not None:
        rows += [
            ("top-1 PyTorch fp32", f"{a.top1_reference:.2f} %"),
            (f"top-1 {a.target} {a.precision}, x86", f"{x.top1_artifact:.2f} % ({_pts(x.drop_pts)} vs PyTorch)"),
            (f"top-1 {a.target} {a.precision}, arm64", f"{a.top1_artifact:.2f} % ({_pts(a.drop_pts)} vs PyTorch)"),
            ("max |logit diff| vs PyTorch, x86 / arm64", f"{x.max_abs_diff:.3g} / {a.max_abs_diff:.3g}"),
        ]
    else:
        rows += [("worst output cosine min vs PyTorch, x86 / arm64", f"{x.cosine_min:.5f} / {a.cosine_min:.5f}")]
    rows += [
        ("x86 vs arm64", "bit-identical" if d.bit_identical else
         f"differ: {d.differing:,}/{d.total:,} values ({d.differing_pct:.2g} %)"),
        ("max |diff| x86 vs arm64", f"{d.max_abs_diff:.3g}"),
    ]
    if d.top1_agreement is not None:
        rows.append(("top-1 agreement x86 vs arm64",
                     f"{d.top1_agreement:.2f} % ({d.top1_differing_images} images differ)"))
    features = [f for f in ("asimddp", "i8mm", "sve", "sve2", "sme") if f in report.cpu_features]
    rows += [
        ("emulated CPU", f"{report.cpu} (MIDR part {report.cpu_part}; {' '.join(features) or 'no dot product'})"),
        ("arm64 runtime", a.runtime),
        ("entry point" + ("s" if len(report.entries) > 1 else ""),
         ", ".join(e or "(one graph)" for e in report.entries)),
        ("XNNPACK on arm64", _xnnpack_cell(report)),
        ("emulated time",
         f"{report.seconds['arm64_emulated']:.1f} s ({report.seconds['arm64_ms_per_image']:.1f} ms/image)"),
    ]
    rows += [("note", n) for n in report.notes]
    return rows


def _pts(drop: float) -> str:
    return f"{0.0 - drop + 0.0:+.2f} pts"


def _xnnpack_cell(report: Arm64ParityReport) -> str:
    e = report.xnnpack_evidence
    if report.xnnpack is None:
        return f"n/a: ONNX Runtime ({', '.join(e.get('providers', []))})"
    if "method_backends" in e:
        backends = ", ".join(e["method_backends"]) or "nothing"
        return f"{'yes' if report.xnnpack else 'NO'}: method delegates to {backends}"
    return (f"{'yes' if report.xnnpack else 'NO'}: {e.get('delegate_partitions', 0)} delegate partition(s), "
            f"{e.get('ops_delegated', 0)}/{e.get('ops_total', 0)} ops")


__all__ = ["ARCH", "Arm64Check", "Arm64ParityReport", "ArchDiff", "OutputDiff", "SME_CPU", "arm64_rows",
           "check_arm64", "run_parity_arm64", "write_json"]
