"""On-device latency: push artifacts to an Android phone with adb and run the runtimes' own benchmark
binaries there (LiteRT `benchmark_model`, ExecuTorch `executor_runner`), parsed into the bench schema.

Prepared here, run by users with a phone: these machines have no adb device. iOS latency comes from
the iOS sample app's XCTest performance test, which writes the same schema (README: On-device latency).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__
from ..converters import all_converters, get_converter
from ..errors import EdgeMlpError
from ..manifest import Manifest, open_artifact
from ..models import config_from_record
from ..stats import config_stats
from .schema import BACKENDS, BenchReport, BenchResult, Machine

DEVICE_DIR = "/data/local/tmp/edge-mlp"


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
        if get_converter(manifest.target.name).device_runner is None:
            runnable = sorted(c.suffix for c in all_converters() if c.device_runner)
            raise EdgeMlpError(f"{artifact.name}: --device android runs {' and '.join(runnable)} artifacts, not "
                               f"{manifest.target.name}")
    adb = Adb()
    adb.shell(f"mkdir -p {DEVICE_DIR}")
    for runner in {get_converter(m.target.name).device_runner for _, m in artifacts}:
        remote = f"{DEVICE_DIR}/{runner}"
        if runner_dir:
            local = Path(runner_dir) / str(runner)
            if not local.is_file():
                raise EdgeMlpError(f"--runner-dir {runner_dir} has no {runner}")
            adb.push(local, remote)
            adb.shell(f"chmod +x {remote}")
        if not adb.has(remote):
            raise EdgeMlpError(f"{runner} is not on the phone at {remote}: build it for arm64 "
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
    converter = get_converter(target)
    latency, memory = converter.run_on_device(adb, remote, f"{DEVICE_DIR}/{converter.device_runner}", threads,
                                              warmup, runs)
    macs = config_stats(config_from_record(manifest.model.name, manifest.model.config)).macs
    return BenchResult(
        model=manifest.model.name, backend=BACKENDS[target], precision=manifest.precision,
        shift_lowering=manifest.shift_lowering.used, latency=latency, throughput_ips=1000.0 / latency.median_ms,
        macs=macs, gflops=2 * macs / (latency.median_ms * 1e6), pct_of_gemm_peak=None, artifact=artifact.name,
        size_bytes=manifest.artifact.size_bytes, load_rss_mb=memory, source=f"android:{adb.serial}",
    )
