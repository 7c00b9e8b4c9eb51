"""Timing primitives: runtime loaders fixed to a thread count, interleaved timing, GEMM peak, RSS.

Every backend is timed in the same process, round-robin (one call each per round), so drift on a
shared machine (other jobs, thermal state) hits all of them alike and ratios stay meaningful.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .schema import Latency

Call = Callable[[], object]


@dataclass
class Runner:
    key: tuple  # identifies the row: (model, backend, precision, lowering)
    call: Call
    load_rss_mb: float


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def eager_call(model: nn.Module, x: np.ndarray, threads: int) -> Call:
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)

    def call() -> object:
        with torch.inference_mode():
            return model(xt)

    return call


def executorch_call(artifact: Path, x: np.ndarray, threads: int) -> Call:
    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    portable_lib._unsafe_reset_threadpool(threads)  # XNNPACK's pool; the only knob the pybindings expose
    method = Runtime.get().load_program(str(artifact)).load_method("forward")
    xt = torch.from_numpy(x)
    return lambda: method.execute([xt])


def litert_call(artifact: Path, x: np.ndarray, threads: int) -> Call:
    from ai_edge_litert.interpreter import Interpreter

    from converters.tflite import input_tensor

    it = Interpreter(model_path=str(artifact), num_threads=threads)  # XNNPACK delegate by default
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    feed = input_tensor(x, inp)

    def call() -> object:
        it.set_tensor(inp["index"], feed)
        it.invoke()
        return None

    return call


def onnxruntime_call(artifact: Path, x: np.ndarray, threads: int) -> Call:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(x, np.float32)}
    return lambda: session.run(None, feed)


ARTIFACT_LOADERS = {"executorch": executorch_call, "tflite": litert_call, "onnx": onnxruntime_call}


def load_runner(key: tuple, make: Callable[[], Call], warmup: int) -> Runner:
    """Load and warm up one backend, recording the resident memory that added."""
    before = current_rss_mb()
    call = make()
    for _ in range(warmup):
        call()
    return Runner(key, call, round(current_rss_mb() - before, 1))


def time_interleaved(runners: list[Runner], runs: int) -> dict[tuple, Latency]:
    samples: dict[tuple, list[float]] = {r.key: [] for r in runners}
    for _ in range(runs):
        for r in runners:
            start = time.perf_counter()
            r.call()
            samples[r.key].append((time.perf_counter() - start) * 1000.0)
    out = {}
    for key, ms in samples.items():
        a = np.asarray(ms)
        out[key] = Latency(
            median_ms=float(np.median(a)), p10_ms=float(np.percentile(a, 10)), p90_ms=float(np.percentile(a, 90)),
            mean_ms=float(a.mean()), min_ms=float(a.min()), runs=len(a),
        )
    return out


def gemm_peak_gflops(threads: int, n: int = 1024, seconds: float = 1.0) -> float:
    """Best fp32 GEMM throughput of PyTorch's CPU BLAS on `threads` threads: the roofline's compute
    ceiling for this machine, measured where the benchmarks run."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        torch.mm(a, b)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"
