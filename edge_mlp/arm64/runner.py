"""Run an artifact on arm64 kernels: inside the arm64 root (edge_mlp.arm64.root), under QEMU.

One call is one emulated process for the whole batch: the artifact and the inputs are copied into
the root, inroot.py runs there with QEMU_CPU set to the CPU model asked for, in a private mount
namespace with /proc and /sys mounted and an aarch64 /proc/cpuinfo for that model bound over the
host's (edge_mlp.arm64.cpu says why); every mount goes away with the process, however it ends.

Entry points and outputs are the host runners' (edge_mlp.converters.*): a multi-size artifact runs
the entry point of the batch's input size (`size_entry`: ExecuTorch method `forward_HxW`, LiteRT
signature `serving_default_HxW`, else the default `forward` / `serving_default`; ONNX has one
graph with dynamic axes), and every output comes back (a backbone's feature maps, in order).

The CPU model matters: QEMU's default `max` advertises SVE2 and SME, and XNNPACK's int8 kernels
then give wrong results under QEMU 7.2 (Debian bookworm's); `cortex-a76` (the default here),
`neoverse-n1` or `max,sme=off` compute what the x86 kernels compute.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_mlp.converters.base import size_entry

from .cpu import cpu_identity, possible_processors
from .errors import Arm64Error
from .root import DRIVER, PYTHON, ROOT_ENV, SITE, Arm64Root, chroot_argv, locked, prepare_root, remove_tree

if TYPE_CHECKING:
    import numpy as np

DEFAULT_CPU = "cortex-a76"
SME_CPU = "max"  # QEMU's default model: SVE2 and SME on
SUFFIXES = (".pte", ".tflite", ".onnx")
# The runtime's default entry point per suffix (converters/executorch.py, converters/tflite.py);
# ONNX: one graph with dynamic axes, no entry point.
DEFAULT_ENTRY = {".pte": "forward", ".tflite": "serving_default", ".onnx": ""}
INROOT = Path(__file__).with_name("inroot.py")


@dataclass
class ArmRun:
    outputs: list[np.ndarray]  # every output in the artifact's order, each (N, ...) float32: one row per image
    artifact: str
    runtime: str  # e.g. "executorch 1.5.1"
    cpu: str  # QEMU_CPU
    cpu_part: str  # MIDR part number the emulated CPU reports (0xd0b: Cortex-A76)
    cpu_features: tuple[str, ...]  # its HWCAPs (sme among them under `max`)
    machine: str  # platform.machine() inside: aarch64
    xnnpack: bool | None  # XNNPACK ran (.pte: delegate in the method and available; .tflite: delegate
    #                        partitions in the executed plan); None for .onnx (ORT's own MLAS kernels)
    entry: str = ""  # the entry point that ran: ExecuTorch method / LiteRT signature; "" for ONNX
    evidence: dict[str, Any] = field(default_factory=dict)
    load_ms: float = 0.0  # load + delegate init, emulated
    infer_ms: float = 0.0  # median per image, emulated
    wall_s: float = 0.0  # the whole emulated process, start to end
    log: str = ""  # the emulated process's stderr

    @property
    def logits(self) -> np.ndarray:
        """The first output: a classifier's logits (a backbone's first feature map)."""
        return self.outputs[0]


def run_arm64(artifact_path: str | Path, inputs: np.ndarray, cpu: str = DEFAULT_CPU,
              root: Arm64Root | None = None, timeout: float = 1800) -> ArmRun:
    """Every output of `artifact_path` (.pte / .tflite / .onnx) for `inputs` (N, C, H, W float32, one
    size), computed inside the arm64 root on the runtime's aarch64 build under QEMU_CPU=`cpu`, all N
    images in one emulated process, by the entry point of (H, W) as on the host. `root`: a prepared
    root (default: prepare_root(), a no-op once built)."""
    import numpy as np

    artifact = Path(artifact_path)
    if artifact.suffix not in SUFFIXES:
        raise Arm64Error(f"{artifact.name}: run_arm64 runs {', '.join(SUFFIXES)} artifacts")
    if not artifact.is_file():
        raise Arm64Error(f"{artifact}: no such file")
    x = np.ascontiguousarray(inputs, np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise Arm64Error(f"inputs must be a non-empty (N, C, H, W) batch, got shape {tuple(x.shape)}")
    root = prepare_root() if root is None else root
    identity = cpu_identity(root.cpuprobe, cpu)
    default = DEFAULT_ENTRY[artifact.suffix]
    entry = size_entry((int(x.shape[2]), int(x.shape[3])), default) if default else ""
    work = Path(tempfile.mkdtemp(prefix="edge-mlp-run-", dir=root.host("/tmp")))
    try:
        inside = "/" + str(work.relative_to(root.path))
        shutil.copyfile(artifact, work / f"model{artifact.suffix}")
        shutil.copyfile(INROOT, work / "inroot.py")
        np.save(work / "inputs.npy", x)
        (work / "cpuinfo").write_text(identity.cpuinfo(possible_processors()))
        request = {"artifact": f"{inside}/model{artifact.suffix}", "inputs": f"{inside}/inputs.npy",
                   "outputs": f"{inside}/outputs.npz", "report": f"{inside}/report.json", "driver": DRIVER,
                   "entry": entry, "default_entry": default}
        (work / "request.json").write_text(json.dumps(request))
        env = {**ROOT_ENV, "PYTHONPATH": SITE, "QEMU_CPU": cpu, "TMPDIR": inside}
        argv = chroot_argv(root.path, [PYTHON, f"{inside}/inroot.py", f"{inside}/request.json"], env,
                           cpuinfo=work / "cpuinfo")
        start = time.monotonic()
        try:
            with locked(root.path.parent, shared=True):
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Arm64Error(f"{artifact.name} under QEMU_CPU={cpu} ran past {timeout:.0f} s") from None
        wall = time.monotonic() - start
        if proc.returncode != 0:
            why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            if proc.returncode in (-11, 139):
                why = "SIGSEGV"
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise Arm64Error(f"{artifact.name} failed on arm64 under QEMU_CPU={cpu} ({why}): "
                             f"{' | '.join(lines[-3:])[-500:] or 'no output'}")
        report = json.loads((work / "report.json").read_text())
        with np.load(work / "outputs.npz") as saved:
            outputs = [saved[f"out_{k}"] for k in range(len(saved.files))]
    finally:
        remove_tree(work)
    versions = root.versions
    return ArmRun(
        outputs=outputs, artifact=artifact.name,
        runtime=f"{report['package']} {versions.get(report['package'], '?')}",
        cpu=cpu, cpu_part=identity.part, cpu_features=identity.features, machine=report["machine"],
        xnnpack=report["xnnpack"], entry=report["entry"], evidence=report["evidence"], load_ms=report["load_ms"],
        infer_ms=float(np.median(report["infer_ms"])), wall_s=wall, log=proc.stderr,
    )
