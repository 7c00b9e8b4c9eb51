"""Which runtimes can run int8 GEMMs on the CPU's AMX tiles, read from their installed binaries.

On an x86 CPU with AMX-INT8 (Xeon since Sapphire Rapids) a runtime built with XNNPACK's or MLAS's
AMX kernels runs its int8 GEMMs on the tiles, and one built without them uses VNNI dot products.
The two builds then differ in int8 latency by more than their graphs do: as_mlp_mobile at 224 on
2 threads, LiteRT's int8 1x1-conv GEMMs took half of ExecuTorch's time on such a CPU and the same
time on an AMD EPYC without AMX (README "Latency"). `edge-mlp bench` says so under its table, since
no phone has AMX and int8 ratios between runtimes measured there are not a proxy for a phone's.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from typing import Any, Iterable, Mapping

from .measure import cpu_flags

# x86-64 encodings (VEX, opcode map 0F38). LDTILECFG and TILERELEASE: C4 E2 78 49; every AMX kernel
# loads a tile configuration. The int8 tile dot products TDPB{SS,SU,US,UU}D: C4 E2, then a byte
# with W = 0 and L = 0 (the tile registers and the signedness in between), opcode 5E, and a ModRM
# byte naming two tile registers (mod 11). Four given bytes occur by chance about once in 4 GB.
_TILE_CONFIG = re.compile(rb"\xc4\xe2\x78\x49")
_TILE_DOT = re.compile(rb"\xc4\xe2[\x00-\xff]\x5e[\xc0-\xff]")  # a class matches any byte, newline too
_W_OR_L = 0x84
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll", ".pyd")


def has_amx_int8_code(binary: bytes) -> bool:
    """Whether machine code holds both a tile configuration and an int8 tile dot product."""
    if _TILE_CONFIG.search(binary) is None:
        return False
    return any(match.group()[2] & _W_OR_L == 0 for match in _TILE_DOT.finditer(binary))


@functools.cache
def runtime_has_amx_int8(distribution: str) -> bool | None:
    """Whether an installed distribution's shared libraries hold AMX int8 kernels (None: not
    installed). Reads its files, about 0.1 s for the runtimes here, and nothing is imported."""
    try:
        files = importlib.metadata.files(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files or ():
        name = file.name
        if not (name.endswith(_LIBRARY_SUFFIXES) or ".so." in name):
            continue
        try:
            binary = file.locate().read_bytes()
        except OSError:
            continue
        if has_amx_int8_code(binary):
            return True
    return False


def amx_note(runtimes: Mapping[str, bool | None], flags: Iterable[str]) -> str | None:
    """One line for a bench report whose int8 runtimes (backend -> `runtime_has_amx_int8`) differ
    in AMX kernels on a CPU whose flags (`measure.cpu_flags`) include AMX-INT8; None otherwise."""
    if "amx_int8" not in flags:
        return None
    with_amx = sorted(b for b, amx in runtimes.items() if amx)
    without = sorted(b for b, amx in runtimes.items() if amx is False)
    if not with_amx or not without:
        return None
    return (f"note: this CPU has AMX-INT8; the installed {' and '.join(with_amx)} carry AMX int8 kernels, "
            f"{' and '.join(without)} none, so their int8 latencies differ here by their builds, not only "
            "by their graphs (no phone has AMX)")


def report_note(report: Mapping[str, Any], flags: Iterable[str] | None = None) -> str | None:
    """`amx_note` for the host runtimes with int8 results in a bench report (its JSON form)."""
    flags = cpu_flags() if flags is None else set(flags)
    if "amx_int8" not in flags:
        return None  # nothing to read from the binaries
    from ..converters import all_converters

    packages = {c.bench_backend: c.host_runtime_package for c in all_converters()}
    backends = {r["backend"] for r in report["results"]
                if r["precision"] == "int8" and r.get("source", "host") == "host" and r["backend"] in packages}
    return amx_note({b: runtime_has_amx_int8(packages[b]) for b in backends}, flags)
