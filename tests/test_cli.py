"""The CLI: tables from the registry, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import edge_mlp
from edge_mlp.cli import main


def test_list_shows_every_model_with_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in edge_mlp.list_models():
        assert name in out
    assert "28,282,696" in out and "18,528,264" in out


def test_info_prints_config_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "as_mlp_mobile"]) == 0
    out = capsys.readouterr().out
    assert "7,285,144" in out and "config.embed_dim" in out and "48" in out and "bicubic" in out


@pytest.mark.parametrize("argv,match", [
    (["info", "as_mlp_mobil"], "unknown model 'as_mlp_mobil'; did you mean as_mlp_mobile"),
    (["forward", "mixer_mobile", "--weights", "missing.pth"], "weights file not found: missing.pth"),
    (["info", "mixer_mobile", "--img-size", "8"], "mixer_mobile does not take image size 8: it takes multiples of 16"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-mlp: error: ") and match in err
    assert "\n" not in err and "Traceback" not in err


def test_forward_with_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = edge_mlp.create_model("cycle_mlp_mobile", img_size=32, num_classes=7)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    argv = ["forward", "cycle_mlp_mobile", "--img-size", "32", "--num-classes", "7", "--weights", str(tmp_path / "w.pth")]
    assert main(argv) == 0
    assert "logits [1, 7]" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "edge-mlp"
    result = subprocess.run([str(exe), "info", "nope"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown model 'nope'" in result.stderr


def test_convert_prints_a_summary_and_writes_artifact_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", "--img-size", "32",
            "--num-classes", "10", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "onnx" in out and "fp32" in out and "nodes" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # and the folder's publishing lock
        ".edge-mlp.lock", "mixer_mobile-onnx-fp32.onnx", "mixer_mobile-onnx-fp32.onnx.manifest.json"]


def test_convert_of_a_shift_model_uses_the_auto_lowering_by_default(tmp_path: Path) -> None:
    """The CLI's default `--shift-lowering auto` (a string) picks the measured lowering, as the
    library's None does (make demo's path: 6fcc20c broke it and no test converted a shift model
    through the CLI)."""
    from edge_mlp.convert import ConvertJob, auto_lowering
    from edge_mlp.converters import get_converter
    from edge_mlp.manifest import Manifest
    from edge_mlp.options import Precision

    argv = ["convert", "as_mlp_mobile", "--target", "onnx", "--precision", "fp32", "--img-size", "32",
            "--num-classes", "10", "--out", str(tmp_path)]
    assert main(argv) == 0
    used = Manifest.read(tmp_path / "as_mlp_mobile-onnx-fp32.onnx.manifest.json").shift_lowering
    expected = auto_lowering(get_converter("onnx"), Precision.parse("fp32"), "as_mlp")
    assert (used.requested, used.used, used.reason) == ("auto", expected.lowering, expected.reason)
    assert ConvertJob(model="as_mlp_mobile", target="onnx", shift_lowering="auto").shift_lowering is None


def test_a_bug_is_one_line_exit_70_and_its_traceback_goes_to_a_file(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An exception that is not an EdgeMlpError is ours: no stack dump on the terminal. A bug is
    injected into `info`; a conversion worker's error, whose message is the worker's traceback, is
    named by that traceback's last line."""
    import edge_mlp.cli as cli

    def broken(args: Any) -> int:
        raise RuntimeError("a conversion worker failed:\nTraceback (most recent call last):\n  File \"x.py\", "
                           "line 1, in f\nValueError: 'auto' is not a valid ShiftLowering")

    monkeypatch.setattr(cli, "cmd_info", broken)
    monkeypatch.delenv("EDGE_MLP_TRACEBACK", raising=False)
    assert main(["info", "mixer_mobile"]) == 70
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-mlp: internal error: ValueError: 'auto' is not a valid ShiftLowering. This is a bug")
    assert "\n" not in err and "Traceback" not in err
    report = Path(err.split("the traceback is in ", 1)[1].split(": please", 1)[0])
    try:
        assert "RuntimeError: a conversion worker failed" in report.read_text() and "broken" in report.read_text()
    finally:
        report.unlink()
    monkeypatch.setattr(cli, "cmd_info", lambda args: 1 // 0)
    assert main(["info", "mixer_mobile"]) == 70
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-mlp: internal error: ZeroDivisionError: integer division or modulo by zero. ")
    Path(err.split("the traceback is in ", 1)[1].split(": please", 1)[0]).unlink()
    monkeypatch.setenv("EDGE_MLP_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", "mixer_mobile"])
