"""The emulated CPU as an aarch64 program sees it, and the /proc/cpuinfo the root gets for it.

XNNPACK (through cpuinfo), LiteRT and ONNX Runtime read /proc/cpuinfo and the HWCAP bits to pick
their kernels: with no /proc/cpuinfo cpuinfo's init fails and LiteRT quietly runs without XNNPACK;
with the host's x86 text LiteRT crashes. So each run binds a /proc/cpuinfo written for the
emulated model from what a static probe (cpuprobe.c) reads under that same model on the host's
qemu-aarch64-static: its MIDR (implementer, variant, part, revision: what XNNPACK picks
microkernels by) and its AT_HWCAP / AT_HWCAP2 bits (the Features line).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import Arm64Error

# arm64 AT_HWCAP / AT_HWCAP2 bit -> the name Linux prints in /proc/cpuinfo's Features line
# (arch/arm64/include/uapi/asm/hwcap.h; printed in this order).
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
         "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
          "i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 smei8i32 smef16f32 smeb16f32 "
          "smef32f32 smefa64 wfxt ebf16 sveebf16 cssc rprfm sve2p1 sme2 sme2p1 smei16i32 smebi32i32 smeb16b16 "
          "smef16f16 mops hbc").split()


@dataclass(frozen=True)
class CpuIdentity:
    """What an aarch64 program sees of the emulated CPU."""

    cpu: str  # the QEMU_CPU value
    midr: int
    features: tuple[str, ...]

    @property
    def part(self) -> str:
        return f"0x{(self.midr >> 4) & 0xFFF:03x}"

    def cpuinfo(self, processors: int) -> str:
        """/proc/cpuinfo as Linux (arch/arm64/kernel/cpuinfo.c) prints it for this CPU."""
        block = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x{impl:02x}\n"
                 "CPU architecture: 8\nCPU variant\t: 0x{var:x}\nCPU part\t: 0x{part:03x}\nCPU revision\t: {rev}\n\n")
        m = self.midr
        return "".join(block.format(i=i, features=" ".join(self.features), impl=(m >> 24) & 0xFF,
                                    var=(m >> 20) & 0xF, part=(m >> 4) & 0xFFF, rev=m & 0xF)
                       for i in range(processors))


def qemu_cpu_models() -> set[str]:
    """The CPU models the host's qemu-aarch64-static emulates."""
    out = subprocess.run(["qemu-aarch64-static", "-cpu", "help"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines()[1:] if line.strip()}


def cpu_identity(probe: Path, cpu: str) -> CpuIdentity:
    """Run the static probe (Arm64Root.cpuprobe) under QEMU_CPU=`cpu` on the host's
    qemu-aarch64-static: no chroot needed, a few milliseconds."""
    model = cpu.split(",")[0]
    models = qemu_cpu_models()
    if model not in models:
        raise Arm64Error(f"QEMU has no CPU model {model!r}; choose one of {', '.join(sorted(models))}")
    proc = subprocess.run(["qemu-aarch64-static", "-cpu", cpu, str(probe)], capture_output=True, text=True,
                          timeout=60)
    match = re.search(r"midr=0x([0-9a-f]+) hwcap=0x([0-9a-f]+) hwcap2=0x([0-9a-f]+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise Arm64Error(f"the CPU probe failed under -cpu {cpu} (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[:300]}")
    midr, hwcap, hwcap2 = (int(g, 16) for g in match.groups())
    features = tuple(name for bit, name in enumerate(HWCAP) if hwcap >> bit & 1)
    features += tuple(name for bit, name in enumerate(HWCAP2) if hwcap2 >> bit & 1)
    return CpuIdentity(cpu, midr, features)


def possible_processors() -> int:
    """CPUs the host's /sys lists as possible, which the root sees too (its /sys is the host's)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        return sum(int(b) - int(a) + 1 if b else 1
                   for a, _, b in (part.partition("-") for part in text.split(",")))
    except (OSError, ValueError):
        import os

        return os.cpu_count() or 1
