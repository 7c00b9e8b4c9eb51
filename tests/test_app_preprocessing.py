"""The sample apps' preprocessing matches Python's.

The vectors next to each app's preprocessing unit test must equal what the Python reference
(Pillow + numpy) produces now, and the Android app's Preprocessing.kt, compiled with kotlinc and run
on the JVM, must reproduce them bit for bit. (No Swift compiler exists here: the iOS port is
checked by its own XCTest on the same vectors, on a Mac.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_mlp.apps import APPS, REPO_APPS, preprocess_vectors
from edge_mlp.preprocess import Preprocessing, quantize_input

HARNESS = Path(__file__).parent / "kotlin" / "PreprocessingHarness.kt"
KOTLIN_PREPROCESSING = REPO_APPS / "android" / "app/src/main/java/dev/edgemlp/demo/core/Preprocessing.kt"


@pytest.fixture(scope="module")
def vectors() -> dict:
    return preprocess_vectors()


@pytest.mark.parametrize("app", sorted(APPS))
def test_committed_vectors_are_the_python_reference(app: str, vectors: dict) -> None:
    path = REPO_APPS / app / APPS[app].vectors
    committed = json.loads(path.read_text())
    assert committed == vectors, f"{path} is stale: run `make app-vectors` and rerun the app's unit tests"


def test_vectors_cover_the_cases_that_differ_between_resizers(vectors: dict) -> None:
    cases = vectors["cases"]
    kinds = {(c["preprocessing"]["interpolation"], c["width"] * c["height"] > (c["preprocessing"]["resize"] ** 2))
             for c in cases}
    assert kinds >= {("bilinear", False), ("bicubic", True), ("bicubic", False), ("bilinear", True)}
    assert any(c["preprocessing"]["crop"][0] != c["preprocessing"]["crop"][1] for c in cases)
    assert any(len(set(c["rgba"][3::4])) > 1 for c in cases)  # alpha varies and must be dropped
    assert any("quantization" in c for c in cases)


def test_vectors_are_what_parity_feeds_the_models(vectors: dict) -> None:
    """The expected values come from the same Preprocessing object parity and calibration use."""
    case = vectors["cases"][0]
    rgba = np.asarray(case["rgba"], np.uint8).reshape(case["height"], case["width"], 4)
    pre = case["preprocessing"]
    x = Preprocessing(**{**pre, "crop": tuple(pre["crop"]), "mean": tuple(pre["mean"]), "std": tuple(pre["std"])})(
        Image.fromarray(rgba[..., 0], "L"))  # the gray image the demo data holds
    np.testing.assert_array_equal(x.reshape(-1), np.asarray(case["expected"], np.float32))
    q = vectors["cases"][3]["quantization"]
    assert quantize_input(np.asarray(vectors["cases"][3]["expected"], np.float32), q["scale"],
                          q["zero_point"]).tolist() == q["expected"]


def _harness_input(vectors: dict) -> str:
    lines = [str(len(vectors["cases"]))]
    for c in vectors["cases"]:
        p, q = c["preprocessing"], c.get("quantization")
        lines += [
            f"{c['width']} {c['height']} {p['resize']} {p['crop'][0]} {p['crop'][1]} {p['interpolation']}",
            " ".join(repr(float(v)) for v in p["mean"]), " ".join(repr(float(v)) for v in p["std"]),
            repr(float(p["scale"])), f"{q['scale']!r} {q['zero_point']}" if q else "none",
            " ".join(map(str, c["rgba"])),
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def harness_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("kotlinc") is None:
        pytest.skip("kotlinc not installed (make test installs Debian's kotlin when run as root)")
    jar = tmp_path_factory.mktemp("kotlin") / "harness.jar"
    build = subprocess.run(["kotlinc", str(KOTLIN_PREPROCESSING), str(HARNESS), "-include-runtime", "-d", str(jar)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    return jar


def test_android_preprocessing_kt_is_bit_exact(vectors: dict, harness_jar: Path) -> None:
    run = subprocess.run(["java", "-cp", str(harness_jar), "PreprocessingHarnessKt"], input=_harness_input(vectors),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout.split("\n")
    for k, case in enumerate(vectors["cases"]):
        rgb = [int(v) for v in out[3 * k].split()]
        assert rgb == case["resized_rgb"], f"{case['name']}: resize/crop differs from Pillow"
        bits = np.asarray([int(v) for v in out[3 * k + 1].split()], np.int64).astype(np.uint32).view(np.float32)
        np.testing.assert_array_equal(bits, np.asarray(case["expected"], np.float32), err_msg=case["name"])
        if "quantization" in case:
            assert [int(v) for v in out[3 * k + 2].split()] == case["quantization"]["expected"], case["name"]


def test_android_preprocessing_kt_refuses_an_unsupported_interpolation(harness_jar: Path) -> None:
    """Nearest is not ported: the app says so instead of resizing differently from Python."""
    run = subprocess.run(["java", "-cp", str(harness_jar), "PreprocessingHarnessKt"],
                         input="1\n2 2 2 2 2 nearest\n0 0 0\n1 1 1\n1.0\nnone\n" + " ".join(["0"] * 16) + "\n",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "interpolation 'nearest' is not supported" in run.stderr
