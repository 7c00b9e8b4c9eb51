"""Bad conversion input: one line, exit 2, and no file left behind; interruptions leave nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import edge_mlp
from edge_mlp.cli import main
from edge_mlp.convert import ConvertJob, convert
from edge_mlp.fileio import sha256_path

from .conftest import TEST_CLASSES, TEST_IMG

SMALL = ["--img-size", str(TEST_IMG), "--num-classes", str(TEST_CLASSES)]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture()
def mobile_weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights" / "w.pth"
    path.parent.mkdir()
    model = edge_mlp.create_model("mixer_mobile", img_size=TEST_IMG, num_classes=TEST_CLASSES, num_blocks=1)
    torch.save({"model": model.state_dict()}, path)
    return path


def _expect_clean_failure(argv: list[str], out: Path, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-mlp") and "error: " in err and match in err, err
    assert "\n" not in err
    assert not out.exists() or _files(out) == []


@pytest.mark.parametrize("argv,match", [
    (["convert", "as_mlp_mobil", "--target", "onnx"], "unknown model 'as_mlp_mobil'"),
    (["convert", "as_mlp_mobile", "--target", "executorch", "--precision", "fp16"],
     "precision fp16 is not supported for target executorch (supported: fp32, int8)"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "w8"],
     "precision w8 is not supported for target onnx"),
    (["convert", "as_mlp_mobile", "--target", "all", "--precision", "fp16"], "not supported for target executorch"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "fp32,int9"],
     "argument --precision: invalid choice: 'int9' (choose from fp32, fp16, int8"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "fp32,w8"], "precision w8 is not supported for target onnx"),
    (["convert", "as_mlp_mobile", "--target", "all", "--jobs", "0"], "argument --jobs: must be from 1"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--weights", "nope.pth"], "weights file not found: nope.pth"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "int8", "--calib", "no/such/dir"],
     "calibration folder not found: no/such/dir"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "int8", "--calib-size", "0", *SMALL], "argument --calib-size: must be from 1"),
    (["convert", "mixer_mobile", "--target", "onnx", "--set", "patch_size=300", *SMALL],
     "mixer_mobile does not take image size 64: it takes multiples of 300"),
    (["convert", "mixer_mobile", "--target", "onnx", "--set", "num_blocks=2", "--weights", "demo"],
     "--weights demo fixes the model config (mixer_mobile for 32x32 Fashion-MNIST); drop --set num_blocks"),
])
def test_bad_arguments(tmp_path: Path, argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_clean_failure(argv, tmp_path / "out", match, capsys)


def test_unknown_target_in_library() -> None:
    with pytest.raises(edge_mlp.EdgeMlpError, match="unknown target 'tvm'; choose one of"):
        convert(ConvertJob(model="as_mlp_mobile", target="tvm"))


def test_corrupt_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    argv = ["convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", "--weights", str(bad), *SMALL]
    _expect_clean_failure(argv, tmp_path / "out", "not a readable PyTorch checkpoint", capsys)


def test_weights_that_do_not_fit(tmp_path: Path, mobile_weights: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", "--weights",
            str(mobile_weights), "--img-size", str(TEST_IMG), "--num-classes", "5"]
    _expect_clean_failure(argv, tmp_path / "out", "does not fit mixer_mobile", capsys)


def test_empty_and_unreadable_calibration_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    base = ["convert", "mixer_mobile", "--target", "onnx", "--precision", "int8", *SMALL]
    _expect_clean_failure([*base, "--calib", str(empty)], tmp_path / "out", "has no images", capsys)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "img.png").write_bytes(b"not a png")
    _expect_clean_failure([*base, "--calib", str(broken)], tmp_path / "out", "cannot read calibration image", capsys)


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", *SMALL,
                 "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write to --out" in err and "\n" not in err
    assert blocker.read_text() == "a file, not a folder"


def test_weights_with_labels_write_a_labels_file(tmp_path: Path, mobile_weights: Path) -> None:
    labels = [f"class {i}" for i in range(TEST_CLASSES)]
    (mobile_weights.parent / "labels.txt").write_text("\n".join(labels))
    (result,) = convert(ConvertJob(model="mixer_mobile", target="onnx", precision="fp32", weights=str(mobile_weights),
                                   img_size=TEST_IMG, num_classes=TEST_CLASSES, overrides={"num_blocks": 1},
                                   out_dir=str(tmp_path / "out")))
    m = result.manifest
    assert m.output.labels_file == "mixer_mobile.labels.txt"
    assert (tmp_path / "out" / m.output.labels_file).read_text().splitlines() == labels
    assert m.weights.file == str(mobile_weights) and len(m.weights.sha256) == 64
    assert _files(tmp_path / "out") == sorted([".edge-mlp.lock", result.artifact.name, result.manifest_path.name,
                                               m.output.labels_file])


# Moments of an int8 `--target all` conversion (`--target coreml` for "calibration"): (name, the
# progress lines to wait for, in order, extra delay in s). The CLI prints one line per finished
# stage when stdout is not a terminal; the targets convert in registry order (Core ML first, then
# ExecuTorch).
_MOMENTS = [
    ("import", (), 0.3),  # still importing the CLI's and the converters' modules
    # later in the imports (torch, coremltools, scipy): an interrupt a library swallows there can
    # leave a half-imported module that fails later, which must still end as this interruption
    ("import-later", (), 1.0),
    ("import-latest", (), 1.8),
    # the conversion workers' interpreters start up (the CLI has its resource tracker and a worker
    # as children): a Ctrl-C there once ended a worker with "Fatal Python error" on the terminal
    ("workers-starting", (), 0.03),
    # prepare_pt2e done: calibration runs next, in the CLI's own process (one artifact: no workers,
    # as the headline `convert MODEL --target coreml` runs)
    ("calibration", ("coreml quantize",), 0.0),
    # the second export of ExecuTorch int8 (after calibration) is done: two seconds into to_edge
    # and the XNNPACK lowering, the stage that once ran on for a minute after Ctrl-C
    ("lowering", ("executorch calibrate", "executorch export"), 2.0),
]


# SIGINT at every moment, sent to the process group as a terminal's Ctrl-C is (so the conversion
# workers get it with the CLI); SIGTERM, sent to the CLI alone as `kill` does, takes the same path
# once the handler is in place, so its exit code (143) is checked while still importing, and during
# the lowering, where the CLI stops its workers itself.
_SIGNALS = [(*m, signal.SIGINT) for m in _MOMENTS] + [(*m, signal.SIGTERM) for m in (_MOMENTS[0], _MOMENTS[-1])]


@pytest.mark.parametrize("moment,after_lines,delay,sig", _SIGNALS,
                         ids=[f"{m[0]}-{signal.Signals(m[3]).name}" for m in _SIGNALS])
def test_a_signal_at_any_moment_ends_the_run_within_5_s(tmp_path: Path, moment: str, after_lines: tuple[str, ...],
                                                      delay: float, sig: int) -> None:
    out = tmp_path / "out"
    # Mixer: the quickest model to reach ExecuTorch's lowering (after Core ML's int8 conversion)
    target = "coreml" if moment == "calibration" else "all"
    cmd = [sys.executable, "-m", "edge_mlp", "convert", "mixer_mobile", "--target", target, "--precision", "int8",
           "--calib", "synthetic", "--calib-size", "4", "--img-size", "32", "--num-classes", "10", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def as_from_a_terminal() -> None:
        # its own process group, as a shell's foreground job has; SIGINT at its default (a test
        # runner's worker may ignore it, and the CLI keeps an inherited "ignore", as a shell's
        # background jobs need)
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=as_from_a_terminal)
    try:
        assert proc.stdout is not None
        waiting, seen = list(after_lines), []
        while waiting:
            line = proc.stdout.readline()  # blocks until the next stage line
            if not line:
                pytest.fail(f"the run ended before {waiting[0]!r}: {''.join(seen)}{proc.stderr.read()}")
            seen.append(line)
            if waiting[0] in line:
                waiting.pop(0)
        if moment == "workers-starting":
            _wait_for_children(proc.pid, 2)
        time.sleep(delay)
        assert proc.poll() is None, "finished before it could be interrupted"
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        sent = time.monotonic()
        proc.wait(timeout=60)
        took = time.monotonic() - sent
        err = proc.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and any worker it left
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines() == [f"edge-mlp: interrupted by {signal.Signals(sig).name} (no partial files left)"], err
    assert took < 5.0, f"{took:.1f} s from the signal to the exit"
    # Nothing half-written: no staging folder, no ExecuTorch artifact; what a target finished
    # before the signal (Core ML, at the lowering moment) is complete, its manifest matching.
    left = [p for p in out.iterdir()] if out.exists() else []
    assert not any(p.name.startswith(".edge-mlp-tmp-") or "executorch" in p.name for p in left), left
    for manifest in out.glob("*.manifest.json"):
        data = json.loads(manifest.read_text())
        assert sha256_path(manifest.with_name(data["artifact"]["file"])) == data["artifact"]["sha256"]


def _wait_for_children(pid: int, count: int, timeout: float = 60.0) -> None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + timeout
    while len(children.read_text().split()) < count:
        assert time.monotonic() < deadline, f"the CLI never had {count} child processes"
        time.sleep(0.02)


def test_a_swallowed_interrupt_is_raised_again_before_publishing(tmp_path: Path) -> None:
    from edge_mlp import interrupts
    from edge_mlp.fileio import publish

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        # As from a terminal: a run started in the background inherits SIGINT ignored, which
        # install() keeps (a shell's background job), and the signal below would never arrive.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        interrupts.install()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the handler raises KeyboardInterrupt here...
        except:  # noqa: E722  ...and a library's bare except eats it, as coremltools' does
            pass
        staged = tmp_path / "staged.pte"
        staged.write_bytes(b"artifact")
        with pytest.raises(KeyboardInterrupt):
            publish(staged, tmp_path / "final.pte")
        assert not (tmp_path / "final.pte").exists()
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
        interrupts.reset()


def test_default_precisions_per_target() -> None:
    from edge_mlp.convert import plan

    steps = plan(ConvertJob(model="as_mlp_mobile", target="all")).steps
    assert {s.converter.target: s.precision for s in steps} == {
        "executorch": "int8", "tflite": "int8", "onnx": "int8", "coreml": "fp16"}
    assert [s.precision for s in plan(ConvertJob(model="as_mlp_mobile", target="all", precision="int8")).steps] == ["int8"] * 4


def test_a_lowering_named_by_a_string_is_parsed_when_the_job_is_made() -> None:
    from edge_mlp.convert import plan
    from edge_mlp.errors import EdgeMlpError
    from edge_mlp.options import ShiftLowering

    assert ConvertJob(model="as_mlp_mobile", target="onnx", shift_lowering="roll").shift_lowering is ShiftLowering.ROLL
    by_name = plan(ConvertJob(model="as_mlp_mobile", target="all", shift_lowering="auto")).steps
    default = plan(ConvertJob(model="as_mlp_mobile", target="all")).steps
    assert [(s.lowering, s.forms) for s in by_name] == [(s.lowering, s.forms) for s in default]
    assert all(isinstance(s.forms.shift, ShiftLowering) for s in by_name)
    with pytest.raises(EdgeMlpError, match="unknown shift lowering 'diagonal'"):
        ConvertJob(model="as_mlp_mobile", target="onnx", shift_lowering="diagonal")


def test_several_precisions_make_one_artifact_each_named_in_the_progress() -> None:
    from edge_mlp.convert import plan

    steps = plan(ConvertJob(model="as_mlp_mobile", target="all", precision="fp32,int8,fp32")).steps
    assert [(s.converter.target, s.precision) for s in steps] == [
        (t, p) for t in ("coreml", "executorch", "onnx", "tflite") for p in ("fp32", "int8")]
    assert [s.label for s in steps[:2]] == ["coreml fp32", "coreml int8"]
    assert [s.label for s in plan(ConvertJob(model="as_mlp_mobile", target="onnx", precision=["int8"])).steps] == ["onnx"]
