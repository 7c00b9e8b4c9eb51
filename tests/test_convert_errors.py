"""Bad conversion input: one line, exit 2, and no file left behind; interruptions leave nothing."""

from __future__ import annotations

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
    assert err.startswith("edge-mlp: error: ") and match in err, err
    assert "\n" not in err
    assert not out.exists() or _files(out) == []


@pytest.mark.parametrize("argv,match", [
    (["convert", "as_mlp_mobil", "--target", "onnx"], "unknown model 'as_mlp_mobil'"),
    (["convert", "as_mlp_mobile", "--target", "executorch", "--precision", "fp16"],
     "precision fp16 is not supported for target executorch (supported: fp32, int8)"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "w8"],
     "precision w8 is not supported for target onnx"),
    (["convert", "as_mlp_mobile", "--target", "all", "--precision", "fp16"], "not supported for target executorch"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--weights", "nope.pth"], "weights file not found: nope.pth"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "int8", "--calib", "no/such/dir"],
     "calibration folder not found: no/such/dir"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "int8", "--calib-size", "0", *SMALL], "--calib-size must be at least 1"),
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
    assert "cannot write to output folder" in err and "\n" not in err
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
    assert _files(tmp_path / "out") == sorted([result.artifact.name, result.manifest_path.name, m.output.labels_file])


@pytest.mark.parametrize("target,precision,sig,delay", [
    ("executorch", "fp32", signal.SIGTERM, 1.0),
    ("executorch", "fp32", signal.SIGINT, 1.0),
    # Lands while coremltools imports scikit-learn inside a bare `except:` that swallows the
    # KeyboardInterrupt: the remembered signal must still stop the run at the next stage boundary.
    ("coreml", "int8", signal.SIGINT, 0.3),
])
def test_interrupted_conversion_leaves_nothing(tmp_path: Path, target: str, precision: str, sig: int,
                                               delay: float) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edge_mlp", "convert", "as_mlp_mobile", "--target", target,
           "--precision", precision, *SMALL, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(p.name.startswith(".edge-mlp-tmp-") for p in out.glob("*")):
            assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "conversion never started staging"
            time.sleep(0.05)
        time.sleep(delay)  # inside export / lowering
        os.kill(proc.pid, sig)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert time.monotonic() - sent < 60, "took too long to stop"
    assert _files(out) == []


def test_a_swallowed_interrupt_is_raised_again_before_publishing(tmp_path: Path) -> None:
    from edge_mlp import interrupts
    from edge_mlp.fileio import publish

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
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
        interrupts._pending = False


def test_default_precisions_per_target() -> None:
    from edge_mlp.convert import plan

    steps = plan(ConvertJob(model="as_mlp_mobile", target="all")).steps
    assert {s.converter.target: s.precision for s in steps} == {
        "executorch": "int8", "tflite": "int8", "onnx": "fp32", "coreml": "fp16"}
    assert [s.precision for s in plan(ConvertJob(model="as_mlp_mobile", target="all", precision="int8")).steps] == ["int8"] * 4
