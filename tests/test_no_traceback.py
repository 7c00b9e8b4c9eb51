"""No traceback reaches a user (issue 14): sizes, hostile images, parity inputs, outputs checked
before the work, concurrent publishing, overwrites, the calibration default and third-party noise.
Each case: one line, exit 2, nothing half-written."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

import edge_mlp
from edge_mlp.cli import main
from edge_mlp.data import read_image
from edge_mlp.fileio import sha256_path
from edge_mlp.manifest import manifest_path
from edge_mlp.models import MAX_IMG_SIZE, create_model, get_spec, input_sizes, list_models, resolve_config

from .conftest import TEST_CLASSES, TEST_IMG

SMALL = ["--img-size", str(TEST_IMG), "--num-classes", str(TEST_CLASSES)]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _one_line_exit_2(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("edge-mlp") and "error: " in err and match in err, err
    return err


# --- 1. sizes and counts ---------------------------------------------------------------------

@pytest.mark.parametrize("model,size", [
    ("as_mlp_mobile", 0), ("as_mlp_mobile", -5), ("as_mlp_mobile", 7), ("as_mlp_mobile", 48),
    ("as_mlp_mobile", 100000), ("cycle_mlp_mobile", 2), ("mixer_mobile", 20), ("mixer_mobile", MAX_IMG_SIZE + 16),
])
def test_unsupported_image_sizes_are_refused_up_front(model: str, size: int, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    err = _one_line_exit_2(["convert", model, "--target", "onnx", "--img-size", str(size), "--out", str(out)],
                           f"{model} does not take image size {size}: it takes", capsys)
    assert input_sizes(model).describe() in err
    assert _files(out) == []


@pytest.mark.parametrize("name", ["as_mlp_mobile", "as_mlp_tiny", "cycle_mlp_mobile", "cycle_mlp_b1", "mixer_mobile", "mixer_s32"])
def test_each_familys_size_rule_is_what_its_model_runs(name: str) -> None:
    """The sizes a family accepts build and run; the ones just outside its rule are refused."""
    rule = input_sizes(name)
    small = {"as_mlp": dict(embed_dim=8), "cycle_mlp": dict(embed_dims=(8, 8, 8, 8)), "mlp_mixer": dict(embed_dim=8, num_blocks=1)}
    overrides = small[get_spec(name).family]
    for size in (rule.minimum, rule.minimum + rule.step):
        model = create_model(name, img_size=size, num_classes=3, **overrides).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, size, size)).shape == (1, 3)
    for size in (rule.minimum - 1, rule.minimum + rule.step - 1) if rule.step > 1 else (rule.minimum - 1,):
        with pytest.raises(edge_mlp.EdgeMlpError, match="does not take image size"):
            resolve_config(name, img_size=size)
    if rule.step == 1:  # below the minimum the model itself cannot run: the rule is not too strict
        model = create_model(name, img_size=rule.minimum, num_classes=3, **overrides).eval()
        with pytest.raises(RuntimeError):
            model(torch.randn(1, 3, rule.minimum - 1, rule.minimum - 1))


def test_every_registered_model_has_a_size_rule_its_default_size_meets() -> None:
    for name in list_models():
        rule = input_sizes(name)
        assert rule.accepts(resolve_config(name).input_size[1]), name


@pytest.mark.parametrize("argv,match", [
    (["convert", "as_mlp_mobile", "--target", "onnx", "--num-classes", "0"], "number of classes must be from 1"),
    (["info", "as_mlp_mobile", "--num-classes", "-3"], "number of classes must be from 1"),
    (["info", "as_mlp_mobile", "--img-size", "33"], "does not take image size 33"),
    (["bundle", "x.pte", "--app", "android", "--samples", "-1"], "argument --samples: must be from 1"),
    (["bench", "mixer_mobile", "--threads", "0"], "argument --threads: must be from 1"),
    (["parity", "x.pte", "--limit", "0"], "argument --limit: must be from 1"),
    (["convert", "as_mlp_mobile", "--target", "onnx", "--max-drop", "nan"], "argument --max-drop: must be from -100 to 100"),
    (["parity", "x.pte", "--max-drop", "101"], "argument --max-drop: must be from -100 to 100"),
])
def test_counts_out_of_range_are_refused(argv: list[str], match: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(argv, match, capsys)
    assert _files(tmp_path) == []


# --- 2. hostile images -----------------------------------------------------------------------

def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG signature and IHDR claiming width x height, and no pixel data: a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width,height", [(30000, 30000), (12000, 9000)])  # Pillow refuses / only warns
def test_decompression_bombs_are_refused_in_one_line(width: int, height: int, converted: Callable[..., Any],
                                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    _png_header_only(calib / "huge.png", width, height)
    out = tmp_path / "out"
    _one_line_exit_2(["convert", "mixer_mobile", "--target", "onnx", "--precision", "int8", "--calib", str(calib),
                      *SMALL, "--out", str(out)], "downscale it first", capsys)
    assert _files(out) == []
    app = tmp_path / "app"
    (app / "app/src/main/assets/edge_mlp").mkdir(parents=True)
    (app / "settings.gradle.kts").write_text("")
    pte = converted("mixer_mobile", "executorch", "fp32").artifact
    _one_line_exit_2(["bundle", str(pte), "--app", "android", "--app-dir", str(app), "--images", str(calib / "huge.png")],
                     "sample image", capsys)
    assert _files(app / "app/src/main/assets/edge_mlp") == []


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = read_image(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]  # round(v * 255 / 65535), not min(v, 255)


# --- 3. parity inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["[]", "null", "3", '"text"', "{}", '{"schema_version": 1, "model": []}'])
def test_parity_refuses_a_manifest_that_is_not_one(content: str, converted: Callable[..., Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = converted("mixer_mobile", "onnx", "fp32").artifact
    artifact = tmp_path / source.name
    artifact.write_bytes(source.read_bytes())
    manifest_path(artifact).write_text(content)
    _one_line_exit_2(["parity", str(artifact), "--limit", "2"], "manifest", capsys)


def test_parity_refuses_a_truncated_npz(converted: Callable[..., Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from edge_mlp.demo import EVAL_SUBSET

    broken = tmp_path / "cut.npz"
    broken.write_bytes(EVAL_SUBSET.read_bytes()[:5000])
    artifact = converted("mixer_mobile", "onnx", "fp32").artifact
    _one_line_exit_2(["parity", str(artifact), "--data", str(broken)], "cannot read", capsys)


@pytest.mark.parametrize("target", ["executorch", "tflite", "onnx"])
def test_an_artifact_its_runtime_cannot_load_is_called_corrupt(target: str, converted: Callable[..., Any],
                                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its manifest's sha256 matches (rewritten to the damaged bytes): only the runtime can tell."""
    result = converted("mixer_mobile", target, "fp32")
    artifact = tmp_path / result.artifact.name
    data = bytearray(result.artifact.read_bytes())
    artifact.write_bytes(bytes(data[: len(data) // 3]))
    manifest = json.loads(result.manifest_path.read_text())
    manifest["artifact"]["sha256"] = sha256_path(artifact)
    manifest_path(artifact).write_text(json.dumps(manifest))
    _one_line_exit_2(["parity", str(artifact), "--limit", "2"], f"{target} artifact; re-convert it", capsys)


# --- 4. outputs checked before the work ------------------------------------------------------

@pytest.mark.parametrize("extra,match", [
    (["--json", "/proc/edge-mlp-none/r.json"], "--json /proc/edge-mlp-none/r.json"),
    (["--json", "report.txt"], "must end in .json"),
    (["--trace", "trace.npz"], "--trace runs Core ML programs op by op"),
    (["--trace", "trace.txt"], "must end in .npz"),
    (["--per-layer"], "--per-layer analyses int8 artifacts"),
])
def test_parity_checks_its_outputs_and_extras_before_running(extra: list[str], match: str, converted: Callable[..., Any],
                                                             tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_mlp.parity

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the parity run started before the bad option was refused")

    monkeypatch.setattr(edge_mlp.parity, "run_parity", never)
    monkeypatch.chdir(tmp_path)
    artifact = converted("mixer_mobile", "onnx", "fp32").artifact
    _one_line_exit_2(["parity", str(artifact), *extra], match, capsys)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("extra,match", [
    (["--json", "/proc/edge-mlp-none.json"], "cannot write there"),
    (["--plot", "chart.txt"], "must end in .png, .svg or .pdf"),
    (["--csv", "rows.json"], "must end in .csv"),
    (["--keep-artifacts", "/proc/kept"], "not a writable folder"),
])
def test_bench_checks_its_outputs_before_running(extra: list[str], match: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_mlp.bench

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the bench started before the bad output was refused")

    monkeypatch.setattr(edge_mlp.bench, "run_bench", never)
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(["bench", "mixer_mobile", *extra], match, capsys)
    assert _files(tmp_path) == []


# --- 6. concurrent conversions, 7. overwrites --------------------------------------------------

def _cli(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge_mlp", *argv], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_conversions_into_one_folder_publish_whole_artifacts(tmp_path: Path) -> None:
    """Two real processes convert the same model into one --out (a folder artifact and a file
    artifact each): both succeed, and every manifest matches its artifact."""
    small = ("--set", "num_blocks=2", "--img-size", "32", "--num-classes", "4", "--out", "out")
    argv = ("convert", "mixer_mobile", "--target", "coreml", "--precision", "fp32", *small)
    onnx = ("convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", *small)
    for first, second in ((argv, argv), (onnx, onnx)):
        procs = [_cli(*first, cwd=tmp_path), _cli(*second, cwd=tmp_path)]
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            assert "Traceback" not in err and err.strip() == "", err
    for manifest in (tmp_path / "out").glob("*.manifest.json"):
        data = json.loads(manifest.read_text())
        artifact = manifest.with_name(data["artifact"]["file"])
        assert sha256_path(artifact) == data["artifact"]["sha256"], artifact
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "mixer_mobile-coreml-fp32.mlpackage", "mixer_mobile-coreml-fp32.mlpackage.manifest.json",
        "mixer_mobile-onnx-fp32.onnx", "mixer_mobile-onnx-fp32.onnx.manifest.json"]


def test_publishing_under_the_folder_lock_never_shows_a_mismatch(tmp_path: Path) -> None:
    """Stress: two processes publish folder artifacts with their manifests 40 times each while a
    third verifies every read; no raw OSError, no mismatch."""
    code = """
import json, sys, tempfile
from pathlib import Path
from edge_mlp.fileio import folder_lock, publish, sha256_path, staging_dir
from edge_mlp.manifest import open_artifact
out, mode, tag = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "write":
    for i in range(40):
        with staging_dir(out) as work:
            art = work / "m.mlpackage"
            (art / "weights").mkdir(parents=True)
            (art / "weights" / "w.bin").write_bytes((tag * 1000 + str(i)).encode())
            (work / "m.json").write_text(json.dumps({"sha": sha256_path(art)}))
            with folder_lock(out):
                publish(art, out / "m.mlpackage")
                publish(work / "m.json", out / "m.mlpackage.check.json")
else:
    checked = 0
    while checked < 150:
        if not (out / "m.mlpackage.check.json").exists():
            continue
        with folder_lock(out, shared=True):
            expected = json.loads((out / "m.mlpackage.check.json").read_text())["sha"]
            assert sha256_path(out / "m.mlpackage") == expected
        checked += 1
"""
    out = tmp_path / "out"
    out.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out), mode, tag], stderr=subprocess.PIPE, text=True)
             for mode, tag in (("write", "a"), ("write", "b"), ("read", "-"))]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


def test_an_artifact_of_another_config_is_not_replaced_without_force(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    base = ["convert", "mixer_mobile", "--target", "onnx", "--precision", "fp32", "--num-classes", "4", "--out", str(out)]
    assert main([*base, "--img-size", "32"]) == 0
    artifact = out / "mixer_mobile-onnx-fp32.onnx"
    assert main([*base, "--img-size", "32"]) == 0  # the same config: replaced, and said
    assert "replaced mixer_mobile-onnx-fp32.onnx (same model config and weights)" in capsys.readouterr().out
    before = artifact.read_bytes(), manifest_path(artifact).read_text()
    err = _one_line_exit_2([*base, "--img-size", "64"], "exists from another conversion (img_size 32 -> 64", capsys)
    assert "--force" in err
    assert (artifact.read_bytes(), manifest_path(artifact).read_text()) == before
    assert main([*base, "--img-size", "64", "--force"]) == 0
    assert "replaced mixer_mobile-onnx-fp32.onnx (img_size 32 -> 64)" in capsys.readouterr().out
    assert json.loads(manifest_path(artifact).read_text())["model"]["config"]["img_size"] == 64


# --- 8. the calibration default ---------------------------------------------------------------

def test_int8_of_user_weights_needs_calibration_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.pth"
    torch.save({"model": create_model("mixer_mobile", img_size=32, num_classes=4).state_dict()}, weights)
    out = tmp_path / "out"
    _one_line_exit_2(["convert", "mixer_mobile", "--target", "onnx", "--precision", "int8", "--weights", str(weights),
                      "--img-size", "32", "--num-classes", "4", "--out", str(out)],
                     "int8 needs calibration images like the ones your weights were trained on", capsys)
    assert _files(out) == []


def test_demo_calibration_says_what_it_used() -> None:
    from edge_mlp.calibration import load_calibration
    from edge_mlp.preprocess import Preprocessing

    calib = load_calibration("demo", Preprocessing.for_model(resolve_config("mixer_mobile", img_size=32)), 32)
    assert calib.describe()["size"] == 32
    assert "evenly spaced over the 256" in calib.describe()["note"] and "demo checkpoints" in calib.describe()["note"]


# --- 9. noise --------------------------------------------------------------------------------

_STAGE_LINE = re.compile(r"^  (coreml|executorch|onnx|tflite) [a-z]+ [\d.]+s$")


def test_a_cli_conversion_prints_only_our_lines(converted: Callable[..., Any], tmp_path: Path) -> None:
    """int8 conversions and parity runs print nothing on stderr (no library warnings, logs or
    progress bars) and only our stage lines and tables on stdout. Core ML and the start of the
    ExecuTorch lowering are covered the same way by the interrupt test (test_convert_errors.py)."""
    from edge_mlp.demo import EVAL_SUBSET

    for target in ("tflite", "onnx"):
        proc = _cli("convert", "mixer_mobile", "--target", target, "--precision", "int8", "--calib", "synthetic",
                    "--calib-size", "4", "--set", "num_blocks=2", "--img-size", "32", "--num-classes", "10",
                    "--out", "out", cwd=tmp_path)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and err == "", err
        stages = [line for line in out.splitlines() if _STAGE_LINE.match(line)]
        assert stages and all(line.split()[0] == target for line in stages), out
        rest = [line for line in out.splitlines() if line.strip() and not _STAGE_LINE.match(line)
                and line.lstrip()[0] not in "┏┃┡│└" and not line.strip().startswith("out/")]
        assert rest == [], rest
        manifest = json.loads((tmp_path / "out" / f"mixer_mobile-{target}-int8{'.tflite' if target == 'tflite' else '.onnx'}"
                                                   ".manifest.json").read_text())
        assert manifest["model"]["config"]["num_blocks"] == 2  # --set reached the model and its record
    for artifact in (str(tmp_path / "out" / "mixer_mobile-tflite-int8.tflite"),
                     str(converted("mixer_mobile", "executorch", "fp32").artifact)):
        proc = _cli("parity", artifact, "--data", str(EVAL_SUBSET), "--limit", "8", cwd=tmp_path)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and err == "", err
        assert "top-1 agreement" in out
