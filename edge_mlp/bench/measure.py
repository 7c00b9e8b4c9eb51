"""Timing primitives: eager PyTorch at a thread count, interleaved timing, GEMM peak, RSS (the
targets' runtimes load through `Converter.load(artifact, threads)`).

Every backend is timed in the same process, round-robin (one call each per round), so drift on a
shared machine (other jobs, thermal state) hits all of them alike and ratios stay meaningful. Each
call starts once the process's other threads have gone idle (`settle`): thread pools spin for a
while after a call (PyTorch's OpenMP team for about 8 ms here), and a spinning pool takes a core
from whichever backend is timed next, so a backend's time would depend on its neighbour.
"""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..options import ExportForms, using_forms
from ..timing import Latency

Call = Callable[[], object]


@dataclass
class Runner:
    key: tuple  # identifies the row: (model, backend, precision, lowering)
    call: Call
    load_rss_mb: float
    # PyTorch intra-op threads the call runs with: eager's thread count; 1 for a target's runtime,
    # whose pybindings copy tensors with PyTorch ops (converters.executorch.execute says why 1).
    # Set before the call's timer starts: switching them costs ExecuTorch about 0.3 ms per call
    # when done inside it (as_mlp_mobile int8, 2 threads), time a deployed runner never spends.
    pytorch_threads: int = 1


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op threads for the timing, restored afterwards: a benchmark must not leave
    the process changed (conversions after it would compute with other threads, other bits)."""
    before = torch.get_num_threads()
    set_torch_threads(threads)
    try:
        yield
    finally:
        set_torch_threads(before)


def set_torch_threads(threads: int) -> None:
    """torch.set_num_threads, skipped when the count is already `threads` (the call inside
    converters.executorch.execute then costs nothing)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def eager_call(model: nn.Module, x: np.ndarray, forms: ExportForms) -> Call:
    """PyTorch eager with the ops in `forms` (the shift lowering of the artifact it is compared to);
    its threads are set by `torch_threads`."""
    xt = torch.from_numpy(x)

    def call() -> object:
        with torch.inference_mode(), using_forms(forms):
            return model(xt)

    return call


def load_runner(key: tuple, make: Callable[[], Call], warmup: int, pytorch_threads: int = 1) -> Runner:
    """Load and warm up one backend, recording the resident memory that added."""
    before = current_rss_mb()
    with torch_threads(pytorch_threads):
        call = make()
        for _ in range(warmup):
            call()
    return Runner(key, call, round(current_rss_mb() - before, 1), pytorch_threads)


def _runnable_threads() -> int | None:
    """Threads of this process, other than the caller, that are running or waiting for a CPU
    (state R in /proc); None where there is no /proc task list."""
    me = threading.get_native_id()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    runnable = 0
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread has just ended
            continue
        runnable += stat[stat.rindex(b")") + 2] == ord("R")  # the state follows "(comm) "
    return runnable


def settle(poll_s: float = 0.001, limit_s: float = 0.2) -> float:
    """Sleep until no other thread of the process is running or runnable, at most `limit_s`; the
    seconds waited. A pool spinning for its next task is runnable whether or not it has a CPU just
    then, so the thread states tell, also on a loaded machine: a CPU-time window (the first version)
    saw a spinning thread that the scheduler had set aside as idle. Without /proc, the process's CPU
    time over 5 ms windows (longer than a scheduler tick) stands in."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        runnable = _runnable_threads()
        if runnable == 0:
            break
        if runnable is None:
            cpu = time.process_time()
            time.sleep(0.005)
            if time.process_time() - cpu < 0.00025:
                break
        else:
            time.sleep(poll_s)
    return time.perf_counter() - start


def time_interleaved(runners: list[Runner], runs: int) -> dict[tuple, Latency]:
    """`runs` rounds of one call per runner, each call started on a settled process (`settle`) with
    its own PyTorch thread count (restored at the end)."""
    samples: dict[tuple, list[float]] = {r.key: [] for r in runners}
    with torch_threads(torch.get_num_threads()):
        for _ in range(runs):
            for r in runners:
                set_torch_threads(r.pytorch_threads)
                settle()
                start = time.perf_counter()
                r.call()
                samples[r.key].append((time.perf_counter() - start) * 1000.0)
    return {key: Latency.from_samples(ms) for key, ms in samples.items()}


def gemm_peak_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """Best fp32 GEMM throughput of PyTorch's CPU BLAS on its current threads (`torch_threads`):
    the roofline's compute ceiling for this machine, measured where the benchmarks run."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# The CPU features int8 speed hinges on, as /proc/cpuinfo flags name them: without a dot-product
# instruction (x86 VNNI, arm64 asimddp) XNNPACK's int8 GEMM is no faster than its fp32 one.
INT8_CPU_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                     "amx_int8": "AMX-INT8", "asimddp": "dot product", "i8mm": "I8MM", "sme": "SME"}


def cpu_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first CPU's /proc/cpuinfo fields (x86: "flags", arm64: "Features"); empty where unreadable."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(fields: dict[str, str] | None = None) -> set[str]:
    """The CPU's feature flags, from `cpu_fields` (read here when not given)."""
    fields = cpu_fields() if fields is None else fields
    return set((fields.get("flags") or fields.get("Features") or "").split())


def machine_description(cpuinfo: str | None = None) -> str:
    """CPU model, logical CPUs and the int8-relevant features present (`INT8_CPU_FEATURES`)."""
    fields = cpu_fields(cpuinfo)
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    flags = cpu_flags(fields)
    features = [name for flag, name in INT8_CPU_FEATURES.items() if flag in flags]
    return f"{cpu}, {os.cpu_count()} logical CPUs" + (f" ({', '.join(features)})" if features else "")
