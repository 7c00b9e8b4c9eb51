"""Conversions in worker processes (`convert --jobs`): results in order, errors and interrupts end
every worker, and nothing a worker staged survives it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edge_mlp import workers
from edge_mlp.convert import ConvertJob, convert
from edge_mlp.errors import EdgeMlpError
from edge_mlp.fileio import TEMP_PREFIX, sha256_path

from .conftest import TEST_CLASSES, TEST_IMG, TEST_MODELS


class _Recorder:
    def __init__(self, interrupt_on: str | None = None) -> None:
        self.events: list[tuple[str, str, bool, float]] = []
        self.interrupt_on = interrupt_on

    def stage(self, target: str, stage: str, done: bool, seconds: float) -> None:
        self.events.append((target, stage, done, seconds))
        if stage == self.interrupt_on:
            raise KeyboardInterrupt  # as the parent's signal handler does on Ctrl-C


# Workers import these by name: module level.
def _double(x: int, progress: Any) -> int:
    progress.stage(f"task {x}", "work", True, 0.0)
    return 2 * x


def _refuse_two(x: int, progress: Any) -> int:
    if x == 2:
        raise EdgeMlpError("task 2 is bad input: a one-line reason")
    return x


def _die(x: int, progress: Any) -> int:
    os._exit(3)


def _stage_then_hang(folder: str, progress: Any) -> None:
    """A worker stuck where signals do not reach Python (native code), holding a staging folder."""
    from edge_mlp.fileio import staging_dir

    with staging_dir(folder):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        progress.stage("stuck", "staged", True, 0.0)
        time.sleep(120)


def test_results_come_back_in_order_with_the_progress_of_each() -> None:
    progress = _Recorder()
    assert workers.run(_double, [1, 2, 3], 2, progress, []) == [2, 4, 6]
    assert sorted(e[0] for e in progress.events) == ["task 1", "task 2", "task 3"]
    progress = _Recorder()  # the caller's names for the progress lines of each task
    assert workers.run(_double, [1, 2, 3], 2, progress, [], labels=["a", "b", "c"]) == [2, 4, 6]
    assert sorted(e[0] for e in progress.events) == ["a", "b", "c"]


def test_a_user_error_in_a_worker_keeps_its_one_line_message() -> None:
    with pytest.raises(EdgeMlpError, match="^task 2 is bad input: a one-line reason$"):
        workers.run(_refuse_two, [1, 2, 3], 2, None, [])


def test_a_worker_that_dies_fails_the_run_with_one_line() -> None:
    with pytest.raises(EdgeMlpError, match=r"a conversion worker stopped \(exit code 3\) after 0 of 2 artifacts"):
        workers.run(_die, [1, 2], 2, None, [])


def test_an_interrupt_kills_a_stuck_worker_and_removes_its_staging(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        workers.run(_stage_then_hang, [str(tmp_path)], 1, _Recorder(interrupt_on="staged"), [tmp_path])
    assert time.monotonic() - start < 30
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_all_targets_in_two_workers_publish_what_one_process_does(tmp_path: Path, converted: Any) -> None:
    progress = _Recorder()
    results = convert(ConvertJob(model="mixer_mobile", target="all", precision="fp32", img_size=TEST_IMG,
                                 num_classes=TEST_CLASSES, overrides=dict(TEST_MODELS["mixer_mobile"]),
                                 out_dir=str(tmp_path), jobs=2), progress)
    assert [r.manifest.target.name for r in results] == ["coreml", "executorch", "onnx", "tflite"]
    for r in results:
        assert sha256_path(r.artifact) == r.manifest.artifact.sha256
    assert {(e[0], e[1]) for e in progress.events if e[2]} >= {("executorch", "lower"), ("tflite", "lower")}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    # the same bits as the suite's conversions in one process (Core ML packages carry fresh UUIDs)
    for r in results[1:]:
        alone = converted("mixer_mobile", r.manifest.target.name, "fp32")
        assert r.manifest.artifact.sha256 == alone.manifest.artifact.sha256, r.manifest.target.name


def test_workers_start_the_longest_conversion_first() -> None:
    """`convert --jobs N` orders its artifacts by each converter's `typical_seconds`, which stay
    within 1.5x of the committed benchmarks/results/convert_time.json run (as_mlp_mobile at 224),
    or within 2 s of it: ONNX fp32's 1.2 s measured 1.1-3.2 s across runs on this shared host, and
    a second either way does not change which conversion starts first."""
    import json

    from edge_mlp import converters
    from edge_mlp.convert import ConvertJob, expected_seconds, plan

    committed = json.loads((Path(__file__).parents[1] / "benchmarks/results/convert_time.json").read_text())
    for row in committed["rows"]:
        typical = converters.get_converter(row["target"]).typical_seconds[row["precision"]]
        assert row["seconds"] / 1.5 <= typical <= row["seconds"] * 1.5 or abs(typical - row["seconds"]) <= 2.0, row
    steps = plan(ConvertJob(model="as_mlp_mobile", target="all", precision=("fp32", "int8"), out_dir="unused",
                            calib="synthetic")).steps
    longest = max(steps, key=expected_seconds)
    assert longest.precision.calibrated and longest.converter.target != "onnx"


def test_calibration_runs_on_one_thread_whatever_the_process_uses() -> None:
    """Observers' statistics follow the float summation order, which follows the thread count:
    calibrated on one thread always, an int8 artifact is the same bits converted in a worker (one
    thread each) or alone in the CLI's process (`--jobs 1`, every core)."""
    import contextlib

    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    from edge_mlp.converters.pt2e import quantize_pt2e

    threads: list[int] = []

    class Recorded(list):  # the calibration batches, noting the thread count as each is used
        def __iter__(self) -> Any:
            for batch in super().__iter__():
                threads.append(torch.get_num_threads())
                yield batch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(1, 3, 8, 8)
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        quantize_pt2e(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)).eval(), x, quantizer, Recorded([x, x]),
                      lambda name: contextlib.nullcontext())
        assert threads == [1, 1]
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)


# A worker stopped inside a quiet.native_stderr block, as in the lowering stage. Ctrl-C reaches it
# with the process group and the parent's SIGTERM follows (both real signals here, to the real
# handler). A SIGTERM that lands while the handler is switching both signals to SIG_IGN is reported
# by Python as "OSError: Signal 15 ignored due to race condition" with a traceback, on sys.stderr,
# while the interrupt unwinds; that window cannot be forced, so the block writes that report itself.
# CI saw it reach the terminal: the block captured it, gave fd 2 back and passed the report on.
_STOPPED_IN_A_QUIET_BLOCK = """
import os, signal, sys
from edge_mlp import quiet, workers
sys.unraisablehook = workers._quiet_unraisable
both = [signal.SIGINT, signal.SIGTERM]
for signum in both:
    signal.signal(signum, workers._raise_interrupt)
try:
    with quiet.native_stderr():
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, both)
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, both)
            for _ in range(1000):
                pass
        finally:
            sys.stderr.write("OSError: Signal 15 ignored due to race condition\\n")
            os.write(2, b"a native stack dump while unwinding\\n")
    sys.exit(1)  # not reached: the handler raised KeyboardInterrupt
except KeyboardInterrupt:
    pass
sys.stderr.write("written after the interrupt\\n")
os.write(2, b"native write after the interrupt\\n")
sys.exit(3)
"""


def test_a_stopped_worker_prints_nothing_even_inside_a_quiet_block() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _STOPPED_IN_A_QUIET_BLOCK], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "" and done.stderr == "", done.stderr
