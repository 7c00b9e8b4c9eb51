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


def test_set_reshapes_a_variant_by_its_official_names(capsys: pytest.CaptureFixture[str]) -> None:
    """`--set` takes each value as the variant's own kind (lists per stage, true/false) and the
    figures are those of the reshaped model."""
    assert main(["info", "cycle_mlp_mobile", "--set", "layers=1,1", "--set", "embed-dims=32,64",
                 "--set", "mlp_ratios=4,4", "--set", "transitions=true,false"]) == 0
    out = capsys.readouterr().out
    params = sum(p.numel() for p in edge_mlp.create_model(
        "cycle_mlp_mobile", layers=(1, 1), embed_dims=(32, 64), mlp_ratios=(4, 4), transitions=(True, False)).parameters())
    assert f"{params:,}" in out and "(True, False)" in out and "(32, 64)" in out
    assert main(["forward", "mixer_mobile", "--set", "num_blocks=1", "--img-size", "32"]) == 0


@pytest.mark.parametrize("argv,match", [
    (["info", "mixer_mobile", "--set", "num_blocks=0"],
     "mixer_mobile takes num_blocks as a whole number from 1 to 4096 (its own: 8), got 0"),
    (["info", "mixer_mobile", "--set", "num_blocks=2.5"], "got '2.5'"),
    (["info", "mixer_mobile", "--set", "num_blocks"], "--set takes KEY=VALUE"),
    (["info", "mixer_mobile", "--set", "num_blocks=2", "--set", "num_blocks=3"], "--set num_blocks is given twice"),
    (["info", "mixer_mobile", "--set", "img_size=64"], "has no setting 'img_size' for --set; use --img-size"),
    (["info", "mixer_mobile", "--set", "depths=2,2"],
     "has no setting 'depths' for --set (it takes patch_size, num_blocks, embed_dim, mlp_ratio)"),
    (["info", "as_mlp_mobile", "--set", "depths=1,1,1,1,1,1"],
     "with depths=1,1,1,1,1,1, as_mlp_mobile does not take image size 224: it takes multiples of 128"),
    (["forward", "as_mlp_mobile", "--set", "shift_size=4"],
     "as_mlp_mobile cannot be built with shift_size=4 for 224x224 inputs: shift_size must be a positive odd"),
    (["info", "cycle_mlp_mobile", "--set", "layers=1,1"], "layers, embed_dims and mlp_ratios need one entry per stage"),
    (["info", "mixer_mobile", "--set", "embed_dim=4096", "--set", "num_blocks=64"],
     "mixer_mobile with embed_dim=4096, num_blocks=64 has over 500 M parameters or 10,000 weight tensors"),
    (["info", "as_mlp_mobile", "--set", "depths=4096,4096,4096,4096"], "has over 500 M parameters"),
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
