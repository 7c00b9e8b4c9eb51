"""On-device latency: push artifacts to an Android phone with adb and run the runtimes' own benchmark
binaries there (LiteRT `benchmark_model`, ExecuTorch `executor_runner`), parsed into the bench schema.

Prepared here, run by users with a phone: these machines have no adb device. iOS latency comes from
the iOS sample app's XCTest performance test, which writes the same schema (README: On-device latency).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import EdgeMlpError
from ..manifest import Manifest, open_artifact
from ..models import config_from_record
from ..stats import config_stats
from .schema import BACKENDS, BenchReport, BenchResult, Latency, Machine

DEVICE_DIR = "/data/local/tmp/edge-mlp"
RUNNERS = {"tflite": "benchmark_model", "executorch": "executor_runner"}
EXECUTOR_RUNNER_REPEATS = 5  # executor_runner reports one mean per process: p10/p90 come from repeats

_STAT_LINE = re.compile(r"count=(?P<count>\d+) first=\S+ curr=\S+ min=(?P<min>[\d.e+]+) max=(?P<max>[\d.e+]+) "
                        r"avg=(?P<avg>[\d.e+]+) std=(?P<std>[\d.e+]+)"
                        r"(?: p5=(?P<p5>[\d.e+]+) median=(?P<median>[\d.e+]+) p95=(?P<p95>[\d.e+]+))?")
_TIMINGS = re.compile(r"Inference timings in us: Init: (?P<init>[\d.e+]+), First inference: (?P<first>[\d.e+]+), "
                      r"Warmup \(avg\): [\d.e+]+, Inference \(avg\): (?P<avg>[\d.e+]+)")
_MEMORY = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     r"init=(?P<init>[\d.e+]+) overall=(?P<overall>[\d.e+]+)")
_EXECUTED = re.compile(r"Model executed successfully (?P<count>\d+) time\(s\) in (?P<ms>[\d.]+) ms")


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """LiteRT/TFLite `benchmark_model` output -> timings in ms (the last stat line is the measured run,
    earlier ones are warm-up) and memory in MB."""
    stats = list(_STAT_LINE.finditer(text))
    timings = _TIMINGS.search(text)
    if not stats or timings is None:
        raise EdgeMlpError("benchmark_model output has no timing summary (did it fail? its output is above)")
    last = stats[-1]
    us = {k: float(v) for k, v in last.groupdict().items() if v is not None}
    out = {
        "runs": int(us["count"]), "mean_ms": us["avg"] / 1000, "min_ms": us["min"] / 1000, "std_ms": us["std"] / 1000,
        "median_ms": us["median"] / 1000 if "median" in us else None,
        "p5_ms": us["p5"] / 1000 if "p5" in us else None, "p95_ms": us["p95"] / 1000 if "p95" in us else None,
        "init_ms": float(timings["init"]) / 1000, "first_ms": float(timings["first"]) / 1000,
    }
    memory = _MEMORY.search(text)
    out["memory_overall_mb"] = float(memory["overall"]) if memory else None
    return out


def parse_executor_runner(text: str) -> tuple[int, float]:
    """ExecuTorch `executor_runner` output -> (executions, mean ms per execution)."""
    match = _EXECUTED.search(text)
    if match is None:
        raise EdgeMlpError("executor_runner output has no 'Model executed successfully N time(s) in X ms' line "
                           "(an older runner without --num_executions timing, or it failed)")
    count = int(match["count"])
    return count, float(match["ms"]) / count


def benchmark_model_latency(parsed: dict[str, Any]) -> Latency:
    median = parsed["median_ms"] if parsed["median_ms"] is not None else parsed["mean_ms"]
    return Latency(median_ms=median, p10_ms=None, p90_ms=None, mean_ms=parsed["mean_ms"], min_ms=parsed["min_ms"],
                   runs=parsed["runs"], p5_ms=parsed["p5_ms"], p95_ms=parsed["p95_ms"])


def executor_runner_latency(means_ms: list[float], executions: int) -> Latency:
    ordered = sorted(means_ms)
    quantile = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) > 1 else ordered * 9
    return Latency(median_ms=statistics.median(ordered), p10_ms=quantile[0], p90_ms=quantile[-1],
                   mean_ms=statistics.fmean(ordered), min_ms=ordered[0], runs=executions * len(ordered))


class Adb:
    def __init__(self, serial: str | None = None):
        self.exe = shutil.which("adb")
        if self.exe is None:
            raise EdgeMlpError("--device android needs adb on PATH (Android SDK platform-tools) and a phone with "
                               "USB debugging on; `adb devices` must list it")
        serials = [line.split("\t")[0] for line in self._run("devices").splitlines()[1:]
                   if line.strip().endswith("\tdevice")]
        if not serials:
            raise EdgeMlpError("adb lists no device: connect a phone with USB debugging on and accept the prompt "
                               "(`adb devices` must show it as 'device')")
        self.serial = serial or serials[0]

    def _run(self, *args: str) -> str:
        cmd = [self.exe, *args] if not getattr(self, "serial", None) else [self.exe, "-s", self.serial, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise EdgeMlpError(f"adb {' '.join(args)} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return done.stdout + done.stderr

    def push(self, local: Path, remote: str) -> None:
        self._run("push", str(local), remote)

    def shell(self, command: str) -> str:
        return self._run("shell", command)

    def has(self, remote: str) -> bool:
        return "yes" in self.shell(f"[ -x {remote} ] && echo yes || echo no")


def run_on_device(device: str, sources: list[str], threads: int, warmup: int, runs: int,
                  runner_dir: str | None = None) -> dict[str, Any]:
    if device == "ios":
        raise EdgeMlpError("--device ios: iPhone latency is measured by the iOS sample app's XCTest performance "
                           "test (README: On-device latency), which writes this same JSON schema")
    artifacts = [open_artifact(s) for s in sources]
    for artifact, manifest in artifacts:
        if manifest.target.name not in RUNNERS:
            raise EdgeMlpError(f"{artifact.name}: --device android runs .tflite and .pte artifacts, not "
                               f"{manifest.target.name}")
    adb = Adb()
    adb.shell(f"mkdir -p {DEVICE_DIR}")
    for target in {m.target.name for _, m in artifacts}:
        remote = f"{DEVICE_DIR}/{RUNNERS[target]}"
        if runner_dir:
            local = Path(runner_dir) / RUNNERS[target]
            if not local.is_file():
                raise EdgeMlpError(f"--runner-dir {runner_dir} has no {RUNNERS[target]}")
            adb.push(local, remote)
            adb.shell(f"chmod +x {remote}")
        if not adb.has(remote):
            raise EdgeMlpError(f"{RUNNERS[target]} is not on the phone at {remote}: build it for arm64 "
                               "(README: On-device latency) and pass --runner-dir")
    model_name = adb.shell("getprop ro.product.model").strip()
    soc = adb.shell("getprop ro.soc.model").strip()
    results = [_run_one(adb, artifact, manifest, threads, warmup, runs) for artifact, manifest in artifacts]
    machine = Machine(description=f"{model_name} ({soc})" if soc else model_name, platform=f"android:{adb.serial}",
                      threads=threads, gemm_peak_gflops=None, gemm="not measured on device",
                      process_peak_rss_mb=None)
    report = BenchReport(machine, {"warmup": warmup, "runs": runs, "interleaved": False, "batch": 1},
                         results, edge_mlp_version=__version__)
    return report.to_dict()


def _run_one(adb: Adb, artifact: Path, manifest: Manifest, threads: int, warmup: int, runs: int) -> BenchResult:
    remote = f"{DEVICE_DIR}/{artifact.name}"
    adb.push(artifact, remote)
    target = manifest.target.name
    runner = f"{DEVICE_DIR}/{RUNNERS[target]}"
    memory = None
    if target == "tflite":
        parsed = parse_benchmark_model(adb.shell(
            f"{runner} --graph={remote} --num_threads={threads} --warmup_runs={warmup} --num_runs={runs} "
            "--use_xnnpack=true --report_peak_memory_footprint=true"))
        latency, memory = benchmark_model_latency(parsed), parsed["memory_overall_mb"]
    else:
        means = []
        for _ in range(EXECUTOR_RUNNER_REPEATS):
            count, mean = parse_executor_runner(adb.shell(
                f"{runner} --model_path={remote} --num_executions={runs} --cpu_threads={threads}"))
            means.append(mean)
        latency = executor_runner_latency(means, count)
    macs = config_stats(config_from_record(manifest.model.name, manifest.model.config)).macs
    return BenchResult(
        model=manifest.model.name, backend=BACKENDS[target], precision=manifest.precision,
        shift_lowering=manifest.shift_lowering.used, latency=latency, throughput_ips=1000.0 / latency.median_ms,
        macs=macs, gflops=2 * macs / (latency.median_ms * 1e6), pct_of_gemm_peak=None, artifact=artifact.name,
        size_bytes=manifest.artifact.size_bytes, load_rss_mb=memory, source=f"android:{adb.serial}",
    )
