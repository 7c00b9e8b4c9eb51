"""The sample apps' preprocessing (and benchmark statistics) match Python's.

The vectors next to each app's preprocessing unit test must equal what the Python reference
(Pillow + numpy) produces now, and the Android app's Preprocessing.kt, compiled with kotlinc and run
on the JVM, must reproduce them bit for bit. The same holds for the latency statistics
(edge_mlp/timing.py `Latency.from_samples`, LatencyStats.kt) and the vectors that pin them. (No Swift
compiler exists here: the iOS ports are checked by their own XCTests on the same vectors, on a Mac,
and here by reading their source next to the Kotlin port that runs.)
"""

from __future__ import annotations

import json
import random
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .app_structs import block_after, code_only
from edge_mlp.apps import APPS, REPO_APPS, preprocess_vectors
from edge_mlp.preprocess import Preprocessing, quantize_input
from edge_mlp.timing import Latency

HARNESS = Path(__file__).parent / "kotlin" / "PreprocessingHarness.kt"
ANDROID = REPO_APPS / "android" / "app/src/main/java/dev/edgemlp/demo"
KOTLIN_PREPROCESSING = ANDROID / "core/Preprocessing.kt"
# The plain-Kotlin core files the harness runs (no Android or kotlinx imports, Kotlin 1.3 syntax).
KOTLIN_CORE = [KOTLIN_PREPROCESSING, ANDROID / "core/LatencyStats.kt", ANDROID / "core/PhotoSampling.kt"]
IOS_CORE = REPO_APPS / "ios" / "EdgeMLPCore/Sources/EdgeMLPCore"
LATENCY_VECTORS = {"android": "app/src/test/resources/latency_vectors.json",
                   "ios": "EdgeMLPCore/Tests/EdgeMLPCoreTests/Resources/latency_vectors.json"}


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


@pytest.fixture(scope="session")
def harness_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled once per run (kotlinc takes ~12 s), by whichever xdist worker asks first."""
    from filelock import FileLock

    from .conftest import run_folder

    if shutil.which("kotlinc") is None:
        pytest.skip("kotlinc not installed (make test installs Debian's kotlin when run as root)")
    jar = run_folder(tmp_path_factory, "kotlin") / "harness.jar"
    with FileLock(f"{jar}.lock"):
        if not jar.exists():
            staged = jar.with_suffix(".staged.jar")
            build = subprocess.run(["kotlinc", *map(str, KOTLIN_CORE), str(HARNESS), "-include-runtime", "-d",
                                    str(staged)], capture_output=True, text=True, timeout=300)
            assert build.returncode == 0, build.stderr
            staged.rename(jar)
    return jar


def _harness(jar: Path, mode: str | None, text: str) -> list[str]:
    run = subprocess.run(["java", "-cp", str(jar), "PreprocessingHarnessKt", *([mode] if mode else [])], input=text,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\n")


@pytest.mark.parametrize("mode", [None, "bytes"])
def test_android_preprocessing_kt_is_bit_exact(vectors: dict, harness_jar: Path, mode: str | None) -> None:
    """`bytes`: the pixels reach Preprocessing as the app reads a decoded Bitmap (the RGBA bytes
    `copyPixelsToBuffer` writes, rows padded, through `Preprocessing.argbOfRgbaBytes`)."""
    out = _harness(harness_jar, mode, _harness_input(vectors))
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


# --- pixels from a decoded photo ----------------------------------------------------------------


def test_android_reads_decoded_pixels_without_color_conversion() -> None:
    """Pillow applies no ICC profile and the iOS app converts no colors; `Bitmap.getPixels` returns
    sRGB-converted colors of a bitmap decoded in its own (e.g. Display P3) color space, so the
    Android app must read the stored bytes (`copyPixelsToBuffer`) of 8-bit, unpremultiplied decodes
    that keep the image's color space (no preferred / target color space)."""
    for f in sorted(ANDROID.rglob("*.kt")):
        assert not re.search(r"\bgetPixels\(", code_only(f.read_text())), f"{f.name} reads sRGB-converted pixels"
    images = code_only((ANDROID / "Images.kt").read_text())
    to_pixels = block_after(images, images.index("fun Bitmap.toPixels()"))
    assert "copyPixelsToBuffer(" in to_pixels and "Preprocessing.argbOfRgbaBytes(" in to_pixels
    assert "Bitmap.Config.ARGB_8888" in to_pixels and "isPremultiplied" in to_pixels
    assert "inPremultiplied = false" in images and "isUnpremultipliedRequired = true" in images
    assert not re.search(r"inPreferredColorSpace|setTargetColorSpace|targetColorSpace", images)
    # What feeds a model goes through those decoders; the display bitmaps are not read.
    for f in (ANDROID / "ui/DemoViewModel.kt", ANDROID / "Benchmarker.kt"):
        code = code_only(f.read_text())
        assert "toPixels()" not in code, f"{f.name} reads a bitmap decoded for display"
        assert re.search(r"Images\.(assetPixels|photoPixels)\(", code), f.name


def test_android_decodes_a_photo_again_for_each_model(harness_jar: Path) -> None:
    """A photo downsampled for one model's input is not reused for another's: each input size gets
    its own decode, downsampled no further than that model allows (PerResizeDecode, PhotoSampling)."""
    photos = [(4032, 3024, [32, 224, 224, 32]), (3000, 4000, [56, 56, 160, 384])]
    out = _harness(harness_jar, "photo", "".join(f"{w} {h} {' '.join(map(str, r))}\n" for w, h, r in photos))
    for line, (w, h, resizes) in zip(out, photos):
        decodes, last = 0, None
        for token, resize in zip(line.split(), resizes, strict=True):
            decoded_for, count, sample = map(int, token.split(":"))
            assert decoded_for == resize, "pixels decoded for another model's input"
            decodes += resize != last
            last = resize
            assert count == decodes, "decoded again although the input size did not change"
            assert min(w, h) // sample >= 4 * resize > min(w, h) // (2 * sample)
    view_model = code_only((ANDROID / "ui/DemoViewModel.kt").read_text())
    assert re.search(r"PerResizeDecode\s*\{\s*resize\s*->\s*Images\.photoPixels\(", view_model)
    assert ".forResize(model.manifest.preprocessing.resize)" in view_model
    select_photo = block_after(view_model, view_model.index("fun selectPhoto("))
    assert "Pixels(" not in select_photo and "pixels" not in select_photo.lower().replace("photopixels", "")


# --- the manifest's preprocessing: both apps refuse the same things, in the same words -----------

IOS_PREPROCESSING = IOS_CORE / "Preprocessing.swift"
SPEC_FIELD = {"badCrop": "crop", "unsupportedColor": "color", "unsupportedLayout": "layout",
              "unsupportedInterpolation": "interpolation", "badStatistics": None}
# Each row changes a good spec; rows with two faults pin the order the checks run in.
SPEC_CASES = [
    ({}, None), ({"crop": [224, 192]}, None), ({"interpolation": "bilinear"}, None),
    ({"crop": [224]}, "badCrop"), ({"crop": []}, "badCrop"), ({"crop": [224, 224, 3]}, "badCrop"),
    ({"crop": [0, 224]}, "badCrop"), ({"color": "BGR"}, "unsupportedColor"), ({"color": "L"}, "unsupportedColor"),
    ({"layout": "NHWC"}, "unsupportedLayout"), ({"interpolation": "nearest"}, "unsupportedInterpolation"),
    ({"mean": [0.5]}, "badStatistics"), ({"std": [1.0, 1.0]}, "badStatistics"),
    ({"crop": [224], "color": "BGR"}, "badCrop"), ({"color": "BGR", "layout": "NHWC"}, "unsupportedColor"),
    ({"layout": "NHWC", "interpolation": "nearest"}, "unsupportedLayout"),
    ({"interpolation": "nearest", "mean": [0.5]}, "unsupportedInterpolation"),
]


def _good_spec() -> dict:
    """A spec as edge-mlp writes it, with Python's own color and layout defaults."""
    return Preprocessing(resize=256, crop=(224, 224), interpolation="bicubic", mean=(0.485, 0.456, 0.406),
                         std=(0.229, 0.224, 0.225)).to_dict()


def _swift_string(source: str, i: int) -> tuple[list[str], list[str]]:
    """The Swift string expression starting at source[i] (a quote; literals joined by `+` too): its
    literal parts and the expressions interpolated between them."""
    parts, exprs, end = _swift_literal(source, i)
    while m := re.compile(r"\s*\+\s*\"").match(source, end):
        more, more_exprs, end = _swift_literal(source, m.end() - 1)
        parts = parts[:-1] + [parts[-1] + more[0]] + more[1:]
        exprs += more_exprs
    return parts, exprs


def _swift_literal(source: str, i: int) -> tuple[list[str], list[str], int]:
    """One Swift string literal starting at source[i]: parts, interpolations, the index after it."""
    assert source[i] == '"'
    parts, exprs, text, i = [], [], [], i + 1
    while source[i] != '"':
        if source.startswith("\\(", i):
            depth, j, in_string = 1, i + 2, False
            while depth:
                ch = source[j]
                if ch == '"':
                    in_string = not in_string
                elif not in_string:
                    depth += {"(": 1, ")": -1}.get(ch, 0)
                j += 1
            parts.append("".join(text))
            exprs.append(source[i + 2:j - 1])
            text, i = [], j
        elif source[i] == "\\":
            text.append(source[i + 1])
            i += 2
        else:
            text.append(source[i])
            i += 1
    parts.append("".join(text))
    return parts, exprs, i + 1


def _swift_preprocessing() -> dict:
    """What Preprocessing.swift accepts, in which order it checks, and how it words each refusal."""
    source = IOS_PREPROCESSING.read_text()
    code = code_only(source)
    lists = {name: re.findall(r'"([^"]*)"', body)
             for name, body in re.findall(r"static let (\w+)\s*=\s*\[([^\]]*)\]", code)}
    filters = re.findall(r'case "(\w+)": return Filter\(', code)
    described = {}
    for m in re.finditer(r"case (?:let )?\.(\w+)(?:\([^)]*\))?:\s*return (?=\")", source):
        described[m.group(1)] = _swift_string(source, m.end())
    spec_init = code.index("public init(_ spec: PreprocessingSpec)")
    spec_body = block_after(code, spec_init)
    main_body = block_after(code, code.index("public init(resize: Int"))
    order = re.findall(r"throw Error\.(\w+)", spec_body) + re.findall(r"throw Error\.(\w+)", main_body)
    return dict(lists=lists, filters=filters, described=described, order=order, spec_body=spec_body)


def _swift_refusal(swift: dict, spec: dict) -> str | None:
    """Which error Preprocessing.swift throws for `spec`: its checks in its order."""
    fails = {
        "badCrop": not (len(spec["crop"]) == 2 and all(v > 0 for v in spec["crop"])),
        "unsupportedColor": spec["color"] not in swift["lists"]["supportedColors"],
        "unsupportedLayout": spec["layout"] not in swift["lists"]["supportedLayouts"],
        "unsupportedInterpolation": spec["interpolation"] not in swift["filters"],
        "badStatistics": not (len(spec["mean"]) == 3 and len(spec["std"]) == 3),
    }
    return next((check for check in swift["order"] if fails[check]), None)


def _swift_message(swift: dict, error: str, spec: dict) -> str:
    """The description Preprocessing.swift gives `error` for `spec` (Swift renders [Int] as "[1, 2]")."""
    parts, exprs = swift["described"][error]
    values = []
    for expr in exprs:
        if m := re.fullmatch(r'Preprocessing\.(\w+)\.joined\(separator: "(.*)"\)', expr):
            values.append(m.group(2).join(swift["lists"][m.group(1)]))
        else:
            value = spec[SPEC_FIELD[error]]
            values.append("[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value))
    return "".join(p + v for p, v in zip(parts, values + [""]))


def test_both_apps_check_the_manifest_preprocessing_alike(harness_jar: Path) -> None:
    """Same accepted values (Python's defaults among them), same order of checks, same messages:
    the Kotlin checks run here; the Swift ones are read from Preprocessing.swift (no Swift compiler)."""
    swift = _swift_preprocessing()
    assert swift["order"] == list(SPEC_FIELD), "Preprocessing.swift checks in another order, or skips one"
    # The crop is checked before it is indexed (it used to be indexed unchecked).
    body = swift["spec_body"]
    assert "spec.crop.count == 2" in body and body.index("spec.crop.count == 2") < body.index("spec.crop[0]")
    specs = [{**_good_spec(), **change} for change, _ in SPEC_CASES]
    lines = ["|".join([str(s["resize"]), ",".join(map(str, s["crop"])), s["interpolation"],
                       ",".join(map(repr, s["mean"])), ",".join(map(repr, s["std"])), repr(s["scale"]), s["color"],
                       s["layout"]]) for s in specs]
    out = _harness(harness_jar, "spec", "\n".join(lines) + "\n")
    assert len(out) == len(specs) + 1, out
    for spec, (change, refusal), kotlin in zip(specs, SPEC_CASES, out, strict=False):
        assert _swift_refusal(swift, spec) == refusal, (change, "iOS")
        if refusal is None:
            assert kotlin == "ok", (change, kotlin)
        else:
            assert kotlin == f"error: {_swift_message(swift, refusal, spec)}", (change, "Android and iOS differ")


# --- latency statistics: the apps' median and deciles are Python's ---------------------------------


def _latency_vectors(app: str) -> dict:
    return json.loads((REPO_APPS / app / LATENCY_VECTORS[app]).read_text())


@pytest.mark.parametrize("app", sorted(APPS))
def test_committed_latency_vectors_are_the_python_reference(app: str) -> None:
    cases = _latency_vectors(app)["cases"]
    assert _latency_vectors("android") == _latency_vectors("ios")
    for c in cases:
        lat = Latency.from_samples(c["samples_ms"])
        assert (c["median_ms"], c["p10_ms"], c["p90_ms"], c["mean_ms"], c["min_ms"], c["runs"]) == (
            lat.median_ms, lat.p10_ms, lat.p90_ms, lat.mean_ms, lat.min_ms, lat.runs), c["name"]
    counts = {len(c["samples_ms"]) for c in cases}
    assert 1 in counts and any(n % 2 == 0 for n in counts) and any(n % 2 == 1 and n > 1 for n in counts)
    # An even count where the mean of the middle runs is neither of them (what rounding an index would pick).
    assert any(c["median_ms"] not in c["samples_ms"] for c in cases)


def test_android_latency_statistics_are_pythons(harness_jar: Path) -> None:
    rng = random.Random(3)
    runs = [c["samples_ms"] for c in _latency_vectors("android")["cases"]]
    runs += [[rng.lognormvariate(0.5, 0.4) for _ in range(n)] for n in (1, 2, 3, 4, 9, 10, 11, 20, 49, 50, 51, 200)]
    out = _harness(harness_jar, "latency", "".join(" ".join(map(repr, r)) + "\n" for r in runs))
    assert len(out) == len(runs) + 1, out
    for run, line in zip(runs, out, strict=False):
        got = np.asarray([int(v) for v in line.split()], np.int64).view(np.float64).tolist()
        ordered = sorted(run)
        deciles = statistics.quantiles(ordered, n=10, method="inclusive") if len(run) > 1 else ordered * 9
        assert got == [statistics.median(ordered), *deciles], len(run)
        lat = Latency.from_samples(run)
        assert (got[0], got[1], got[9]) == (lat.median_ms, lat.p10_ms, lat.p90_ms)
    bench_report = code_only((ANDROID / "core/BenchReport.kt").read_text())
    latency_of = block_after(bench_report, bench_report.index("fun latencyOf("))
    assert "LatencyStats.median(sorted)" in latency_of and "LatencyStats.deciles(sorted)" in latency_of
    assert "round(" not in latency_of


def test_ios_latency_statistics_are_the_same_port() -> None:
    """No Swift compiler here: the Swift port is read next to the Kotlin one that ran above (its
    XCTest checks it on the committed vectors on a Mac). Nearest-rank (`rounded()`, ties away from
    zero) is gone; median and deciles follow `statistics.median` / `statistics.quantiles`."""
    code = code_only((IOS_CORE / "BenchReport.swift").read_text())
    ext = block_after(code, code.index("init(samplesMs: [Double])"))
    assert "rounded" not in ext
    assert re.search(r"medianMs:\s*Self\.median\(sorted\)", ext)
    assert re.search(r"p10Ms:\s*deciles\[0\],\s*p90Ms:\s*deciles\[8\]", ext)

    def flat(text: str) -> str:
        return re.sub(r"\s+", "", text)

    median = flat(block_after(code, code.index("static func median(")))
    assert "n%2==1?sorted[n/2]:(sorted[n/2-1]+sorted[n/2])/2" in median
    deciles = flat(block_after(code, code.index("static func deciles(")))
    assert "Array(repeating:sorted[0],count:9)" in deciles and "(1..<10)" in deciles
    assert "letj=i*m/10,delta=i*m%10" in deciles
    assert "(sorted[j]*Double(10-delta)+sorted[j+1]*Double(delta))/10" in deciles
    tests = (REPO_APPS / "ios" / "EdgeMLPCore/Tests/EdgeMLPCoreTests/BenchReportTests.swift").read_text()
    assert '"latency_vectors"' in tests
