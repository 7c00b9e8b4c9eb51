"""`edge-mlp bundle`: each success and refusal path, on real converted artifacts.

Apps are stand-in folders with the app's marker file (the real apps/ are never written to).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from edge_mlp.apps import APPS
from edge_mlp.bundle import BundleJob, bundle
from edge_mlp.cli import main
from edge_mlp.errors import EdgeMlpError
from edge_mlp.fileio import sha256_path
from edge_mlp.manifest import Manifest, manifest_path


def _app(tmp_path: Path, name: str) -> Path:
    """An app folder as `bundle` sees it: the marker file and the bundle folder with its own files."""
    layout = APPS[name]
    app = tmp_path / f"{name}-app"
    (app / layout.bundle_dir).mkdir(parents=True)
    (app / layout.marker).write_text("")
    (app / layout.bundle_dir / ".gitkeep").write_text("")
    (app / layout.bundle_dir / "README.md").write_text("bundled artifacts go here\n")
    return app


def _gather(converted: Callable[..., Any], dest: Path, *combos: tuple[str, str]) -> list[Path]:
    """Copies of converted artifacts (with manifests) in one folder, as `convert --target all` leaves them."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for target, precision in combos:
        result = converted("mixer_mobile", target, precision)
        copy = dest / result.artifact.name
        shutil.copytree(result.artifact, copy) if result.artifact.is_dir() else shutil.copy2(result.artifact, copy)
        shutil.copy2(result.manifest_path, manifest_path(copy))
        out.append(copy)
    return out


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_android_bundle_copies_what_the_app_runs_and_skips_the_rest(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    pte, tfl, onnx = _gather(converted, tmp_path / "out", ("executorch", "fp32"), ("tflite", "int8"), ("onnx", "fp32"))
    result = bundle(BundleJob(sources=[str(tmp_path / "out")], app="android", app_dir=str(app)))
    where = app / APPS["android"].bundle_dir
    assert result.bundle_dir == where
    assert sorted(a.artifact.name for a in result.artifacts) == sorted([pte.name, tfl.name])
    assert result.skipped == [f"{onnx.name} (onnx)"]
    for src in (pte, tfl):
        assert sha256_path(where / src.name) == Manifest.read(manifest_path(src)).artifact.sha256
        assert (where / manifest_path(src).name).read_text() == manifest_path(src).read_text()
    assert not (where / onnx.name).exists()
    assert (where / ".gitkeep").exists() and (where / "README.md").exists()
    samples = sorted((where / "samples").iterdir())
    assert len(samples) == 10 and samples[0].name == "0_t-shirt-top.png"
    with Image.open(samples[0]) as im:
        assert im.size == (28, 28)
    assert not any(p.name.startswith(".edge-mlp-tmp-") for p in where.iterdir())


def test_ios_bundle_copies_an_mlpackage_folder_and_labels(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "ios")
    (package,) = _gather(converted, tmp_path / "out", ("coreml", "fp16"))
    labels = package.with_name("mixer_mobile.labels.txt")
    labels.write_text("\n".join(f"class {i}" for i in range(10)) + "\n")
    data = json.loads(manifest_path(package).read_text())
    data["output"]["labels_file"] = labels.name
    manifest_path(package).write_text(json.dumps(data))
    result = bundle(BundleJob(sources=[str(package)], app="ios", app_dir=str(app), samples=3))
    where = app / APPS["ios"].bundle_dir
    assert (where / package.name).is_dir() and sha256_path(where / package.name) == sha256_path(package)
    assert (where / labels.name).read_text() == labels.read_text()
    assert len(result.samples) == 3


def test_user_images_are_bundled_as_png(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    (pte,) = _gather(converted, tmp_path / "out", ("executorch", "fp32"))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(photos / "My Cat.jpg")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(photos / "dark.png")
    result = bundle(BundleJob(sources=[str(pte)], app="android", app_dir=str(app), images=[str(photos)]))
    assert result.samples == ["0_my-cat.png", "1_dark.png"]  # sorted by file name
    with Image.open(app / APPS["android"].bundle_dir / "samples" / "0_my-cat.png") as im:
        assert im.format == "PNG" and im.size == (30, 40)


def test_clean_removes_earlier_bundles_but_not_the_folders_own_files(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    where = app / APPS["android"].bundle_dir
    (where / "old-model.pte").write_bytes(b"old")
    pte, tfl = _gather(converted, tmp_path / "out", ("executorch", "fp32"), ("tflite", "fp32"))
    bundle(BundleJob(sources=[str(pte)], app="android", app_dir=str(app)))
    assert (where / "old-model.pte").exists()  # kept without --clean
    bundle(BundleJob(sources=[str(tfl)], app="android", app_dir=str(app), clean=True))
    assert not (where / "old-model.pte").exists() and not (where / pte.name).exists()
    assert (where / tfl.name).exists() and (where / ".gitkeep").exists() and (where / "README.md").exists()


def _refused(job: BundleJob, app: Path, match: str) -> None:
    where = app / APPS[job.app].bundle_dir
    before = _listing(where)
    with pytest.raises(EdgeMlpError, match=match):
        bundle(job)
    assert _listing(where) == before, "a refused bundle must copy nothing"


def test_refuses_an_artifact_whose_target_the_app_cannot_run(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    pte, onnx = _gather(converted, tmp_path / "out", ("executorch", "fp32"), ("onnx", "fp32"))
    _refused(BundleJob(sources=[str(pte), str(onnx)], app="android", app_dir=str(app)),
             app, r"the android app cannot run onnx artifacts .*convert with --target executorch")
    ios = _app(tmp_path, "ios")
    (tfl,) = _gather(converted, tmp_path / "out2", ("tflite", "fp32"))
    _refused(BundleJob(sources=[str(tmp_path / "out2")], app="ios", app_dir=str(ios)),
             ios, r"nothing the ios app can run .*runs coreml and executorch")


def test_refuses_a_tampered_artifact_and_copies_nothing(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    pte, tfl = _gather(converted, tmp_path / "out", ("executorch", "fp32"), ("tflite", "fp32"))
    data = bytearray(tfl.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, size unchanged
    tfl.write_bytes(bytes(data))
    _refused(BundleJob(sources=[str(tmp_path / "out")], app="android", app_dir=str(app)),
             app, rf"{tfl.name} does not match its manifest \(sha256 .*changed after conversion")


def test_refuses_a_tampered_mlpackage(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "ios")
    (package,) = _gather(converted, tmp_path / "out", ("coreml", "fp16"))
    weights = next(p for p in package.rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x80
    weights.write_bytes(bytes(data))
    _refused(BundleJob(sources=[str(package)], app="ios", app_dir=str(app)), app, "does not match its manifest")


def test_refuses_a_manifest_of_an_unknown_schema_version(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    (pte,) = _gather(converted, tmp_path / "out", ("executorch", "fp32"))
    data = json.loads(manifest_path(pte).read_text())
    data["schema_version"] = 99
    manifest_path(pte).write_text(json.dumps(data))
    _refused(BundleJob(sources=[str(pte)], app="android", app_dir=str(app)),
             app, r"manifest schema version 99 is not supported")


@pytest.mark.parametrize("damage,match", [
    ("no manifest", "has no manifest"),
    ("renamed", "describes .*, not renamed.pte"),
    ("not an app", "is not the edge-mlp android app .*settings.gradle.kts"),
    ("bad image", "cannot read sample image"),
    ("missing", "does not exist"),
])
def test_other_refusals(damage: str, match: str, converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _app(tmp_path, "android")
    (pte,) = _gather(converted, tmp_path / "out", ("executorch", "fp32"))
    job = BundleJob(sources=[str(pte)], app="android", app_dir=str(app))
    if damage == "no manifest":
        manifest_path(pte).unlink()
    elif damage == "renamed":
        moved = pte.with_name("renamed.pte")
        pte.rename(moved)
        manifest_path(pte).rename(manifest_path(moved))
        job.sources = [str(moved)]
    elif damage == "not an app":
        (app / APPS["android"].marker).unlink()
    elif damage == "bad image":
        (tmp_path / "notes.png").write_text("not an image")
        job.images = [str(tmp_path / "notes.png")]
    elif damage == "missing":
        job.sources = [str(tmp_path / "nope.pte")]
    _refused(job, app, match)


def test_cli_bundle_success_and_refusal_exit_codes(converted: Callable[..., Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    app = _app(tmp_path, "android")
    pte, onnx = _gather(converted, tmp_path / "out", ("executorch", "fp32"), ("onnx", "fp32"))
    assert main(["bundle", str(pte), "--app", "android", "--app-dir", str(app), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert pte.name[:16] in out and "sha256 verified" in out and "2 sample images" in out
    assert main(["bundle", str(onnx), "--app", "android", "--app-dir", str(app)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-mlp: error: the android app cannot run onnx") and "\n" not in err
