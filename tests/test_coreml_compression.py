"""Core ML w4 / pal4 / pal6: iOS 18 weight compression end to end.

Each family's small test model is converted with each precision (the same cached conversions as
tests/test_convert.py) and its package is checked for what was asked of coremltools (int4 blocks of
32 input channels, 16- / 64-entry LUTs per 16 output channels, the iOS 18 target in the manifest),
then run on the MIL interpreter against PyTorch. Also: the accuracy budget's kept blocks, and the
refusals of the other targets and of an iOS app that deploys to an older iOS.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

import edge_mlp
from edge_mlp import converters
from edge_mlp.apps import APPS, parse_version
from edge_mlp.bundle import BundleJob, bundle
from edge_mlp.calibration import synthetic_images
from edge_mlp.cli import main
from edge_mlp.convert import ConvertJob, convert
from edge_mlp.errors import EdgeMlpError
from edge_mlp.manifest import Manifest, manifest_path
from edge_mlp.mil import load_program
from edge_mlp.models import config_from_record
from edge_mlp.options import Precision, using_forms
from edge_mlp.parity import reference_model
from edge_mlp.preprocess import Preprocessing
from edge_mlp.sensitivity import block_names

from .conftest import TEST_CLASSES, TEST_IMG, TEST_MODELS

LOW_BIT = [str(p) for p in Precision if p.low_bit]
NBITS = {"pal4": 4, "pal6": 6}
# Measured (16 synthetic images, each family x precision, interpreter in fp16 mode against PyTorch
# running the package's own decompressed weights): cosine >= 0.9999993, max |diff| <= 5.0e-4 x the
# logit range, top-1 identical on every image. What remains is fp16 rounding of activations and of
# the uncompressed weights, as in an fp16 package. Bounds: cosine 0.9999 and 2e-3 x the range (4x
# the worst difference measured). A kernel that reads a block or LUT group wrongly (block index
# `i % g` for `i // (n // g)` in kernels._blocks) fails all nine cases.
COSINE_MIN, MAX_DIFF_REL = 0.9999, 2e-3


def _images(manifest: Manifest, n: int) -> np.ndarray:
    config = config_from_record(manifest.model.name, manifest.model.config)
    return np.concatenate(synthetic_images(Preprocessing.for_model(config), n, seed=123))


def _compression_ops(artifact: Path) -> list[Any]:
    return [op for op in load_program(artifact).operations if op.op_type.startswith("constexpr_")]


@pytest.mark.parametrize("precision", LOW_BIT)
@pytest.mark.parametrize("model", list(TEST_MODELS))
def test_package_is_compressed_as_declared_for_ios18(converted: Callable[..., Any], model: str, precision: str) -> None:
    from coremltools.converters.mil.mil import types

    result = converted(model, "coreml", precision)
    m = result.manifest
    assert m.coverage["minimum_deployment_target"] == "iOS18" and m.coverage["spec_version"] >= 9
    assert m.quantization is not None and "iOS 18" in m.quantization.scheme
    assert m.quantization.tool.endswith("linear_quantize_weights" if precision == "w4" else "palettize_weights")
    ops = _compression_ops(result.artifact)
    assert ops and {op.op_type for op in ops} == {
        "constexpr_blockwise_shift_scale" if precision == "w4" else "constexpr_lut_to_dense"}
    fallback = m.coverage["weights_with_fallback"]
    for op in ops:
        weight = re.sub(r"_(quantized|palettized)$", "", op.outputs[0].name)  # the fp16 const it replaced
        if precision == "w4":  # symmetric int4, one scale per 32 input channels of one output channel
            data, scale = op.inputs["data"], op.inputs["scale"]
            assert types.builtin_to_string(data.dtype) == "int4" and op.inputs.get("offset") is None
            assert scale.shape[0] == data.shape[0] and all(s == 1 for s in scale.shape[2:])
            block = _largest_divisor(data.shape[1], 32)  # an RGB stem's 3 inputs: 3, said in the manifest
            assert data.shape[1] == block * scale.shape[1]
            assert (fallback[weight] == f"int4, one scale per {block} input channel(s)") if block != 32 \
                else weight not in fallback
        else:  # one LUT of 2**nbits scalars per 16 output channels (a 10-class head: per 10)
            indices, lut = op.inputs["indices"], op.inputs["lut"]
            assert types.builtin_to_string(indices.dtype) == f"uint{NBITS[precision]}"
            assert all(s == 1 for s in lut.shape[1:len(indices.shape)])
            assert lut.shape[-2:] == (2 ** NBITS[precision], 1)
            group = _largest_divisor(indices.shape[0], 16)
            assert indices.shape[0] == group * lut.shape[0]
            assert (fallback[weight] == f"{NBITS[precision]}-bit LUT per {group} output channel(s)") if group != 16 \
                else weight not in fallback
    # Every linear / conv weight over coremltools' size threshold (2048) is compressed.
    assert m.coverage["weights_left_fp16"] == []


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, at_most + 1) if n % d == 0)


def _with_decompressed_weights(artifact: Path, model: torch.nn.Module) -> torch.nn.Module:
    """`model` with each weight the package compresses replaced by coremltools' own decompression
    of it (decompress_weights): PyTorch then computes what the package's program should.

    Weights are matched by value (the parameter with the same size nearest to it), not by name:
    coremltools folds some (CycleFC's reshaped weights become `view_N` consts)."""
    import coremltools as ct
    from coremltools.optimize.coreml import decompress_weights

    compressed = {op.outputs[0].name for op in _compression_ops(artifact)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = decompress_weights(ct.models.MLModel(str(artifact), skip_model_load=True))
    values = {op.name: op.outputs[0].val for op in dense._mil_program.functions["main"].operations
              if op.op_type == "const" and op.name in compressed}
    assert set(values) == compressed
    params = dict(model.named_parameters())
    matched = set()
    with torch.no_grad():
        for name, value in values.items():
            def distance(p: torch.Tensor) -> float:
                v = torch.from_numpy(np.asarray(value, np.float32)).reshape(p.shape)
                return float((v - p).norm() / p.norm())

            candidates = [(distance(p), n) for n, p in params.items() if p.numel() == value.size]
            rel, param = min(candidates)
            assert rel < 0.3 and param not in matched, (name, param, rel)  # 4-bit error is ~0.1
            matched.add(param)
            params[param].copy_(torch.from_numpy(np.asarray(value, np.float32)).reshape(params[param].shape))
    return model


@pytest.mark.parametrize("precision", LOW_BIT)
@pytest.mark.parametrize("model", list(TEST_MODELS))
def test_interpreter_matches_pytorch_running_the_same_weights(converted: Callable[..., Any], model: str,
                                                              precision: str) -> None:
    """The whole program on the interpreter (fp16 mode), its constexpr kernels included, against
    PyTorch with the package's weights: the compression error itself is not the interpreter's."""
    result = converted(model, "coreml", precision)
    x = _images(result.manifest, 8)
    torch_model = _with_decompressed_weights(result.artifact, reference_model(result.manifest))
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy().astype(np.float64)
    out = converters.get_converter("coreml").predict(result.artifact, x, mil_precision="fp16").astype(np.float64)
    cosine = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
    assert cosine.min() >= COSINE_MIN, cosine
    assert np.abs(out - ref).max() <= MAX_DIFF_REL * float(ref.max() - ref.min())
    assert (out.argmax(1) == ref.argmax(1)).all()


def _convert_request(model_name: str, precision: str, kept: tuple[str, ...], work: Path) -> Any:
    from edge_mlp.converters import ConversionRequest

    model = edge_mlp.create_model(model_name, img_size=TEST_IMG, num_classes=TEST_CLASSES,
                                  **TEST_MODELS[model_name]).eval().requires_grad_(False)
    conv = converters.get_converter("coreml")
    request = ConversionRequest(model=model, example=torch.randn(1, 3, TEST_IMG, TEST_IMG), precision=precision,
                                calibration=[], work_dir=work, stem="m", num_classes=TEST_CLASSES,
                                stage=lambda _: nullcontext(), float_modules=kept)
    with warnings.catch_warnings(), using_forms(conv.export_forms(conv.preferred_lowering)):
        warnings.simplefilter("ignore")
        return conv.convert(request)


@pytest.mark.parametrize("model_name,precision,block", [
    ("mixer_mobile", "w4", "blocks.0"),
    # CycleFC's weights reach MIL as folded `view_N` consts: found through the ops that use them
    ("cycle_mlp_mobile", "pal4", "network.2.0"),
])
def test_kept_block_weights_get_8_bit_luts(model_name: str, precision: str, block: str, tmp_path: Path) -> None:
    output = _convert_request(model_name, precision, (block,), tmp_path)
    assert "blocks kept by the accuracy budget: 8-bit palettization" in output.quantization.scheme
    ops = _compression_ops(output.path)
    kept = [op.name for op in ops if op.op_type == "constexpr_lut_to_dense" and op.inputs["lut"].shape[-2] == 256]
    others = [op for op in ops if op.name not in kept]
    prefix = "p_" + block.replace(".", "_") + "_"
    assert kept and others
    assert all(name.startswith((prefix, "view_")) for name in kept), kept
    assert not any(op.name.startswith(prefix) for op in others)
    assert sum(name.startswith("view_") for name in kept) == (2 if model_name == "cycle_mlp_mobile" else 0)
    low = "constexpr_blockwise_shift_scale" if precision == "w4" else "constexpr_lut_to_dense"
    assert all(op.op_type == low for op in others)


def test_a_block_without_weights_cannot_be_kept(tmp_path: Path) -> None:
    with pytest.raises(EdgeMlpError, match=r"no Core ML weights found for block\(s\) blocks\.9: cannot keep"):
        _convert_request("mixer_mobile", "w4", ("blocks.9",), tmp_path)


# --- the accuracy budget (--max-drop) ------------------------------------------------------------

def _labelled_folder(folder: Path, manifest: Manifest, images: np.ndarray, labels: np.ndarray) -> Path:
    """Class subfolders (c0..c9) of PNGs `NNN.png` of `images` (the model inputs, un-normalized):
    what `--calib DIR` reads for the budget."""
    pre = Preprocessing.for_model(config_from_record(manifest.model.name, manifest.model.config))
    mean, std = np.asarray(pre.mean).reshape(3, 1, 1), np.asarray(pre.std).reshape(3, 1, 1)
    for c in range(TEST_CLASSES):
        (folder / f"c{c}").mkdir(parents=True)
    for i, (x, label) in enumerate(zip(images, labels)):
        pixels = np.clip(np.rint((x * std + mean) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        Image.fromarray(pixels).save(folder / f"c{label}" / f"{i:03d}.png")
    return folder


def test_budget_keeps_the_most_sensitive_blocks_until_the_drop_fits(converted: Callable[..., Any],
                                                                     tmp_path: Path) -> None:
    """Labels are PyTorch's own predictions, so the reference is 100 % and the drop is the share of
    images the w4 package classifies differently. The set holds one such image (the one PyTorch is
    surest of), so --max-drop 0 must keep blocks, worst int8 SQNR first, until it agrees again."""
    from edge_mlp.budget import labelled_holdout

    plain = converted("as_mlp_mobile", "coreml", "w4")
    model = reference_model(plain.manifest)
    preprocess = Preprocessing.for_model(config_from_record(plain.manifest.model.name, plain.manifest.model.config))
    # The inputs as the budget reads them back from PNGs, then PyTorch's and the package's classes.
    probe = _labelled_folder(tmp_path / "probe", plain.manifest, _images(plain.manifest, 24), np.zeros(24, int))
    x, _, _ = labelled_holdout(str(probe), preprocess, TEST_CLASSES)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    agree = ref.argmax(1) == converters.get_converter("coreml").predict(plain.artifact, x, mil_precision="fp16").argmax(1)
    assert agree.any() and (~agree).any(), "the probe set needs images the w4 package gets right and wrong"
    margin = np.sort(ref, 1)[:, -1] - np.sort(ref, 1)[:, -2]
    picks = np.flatnonzero(agree)[:7].tolist() + [int(np.flatnonzero(~agree)[np.argmax(margin[~agree])])]
    folder = tmp_path / "data"
    for i in picks:  # the probe's files (read back in name order), now under PyTorch's class
        (folder / f"c{ref[i].argmax()}").mkdir(parents=True, exist_ok=True)
        shutil.copy2(probe / "c0" / f"{i:03d}.png", folder / f"c{ref[i].argmax()}" / f"{i:03d}.png")
    for c in range(TEST_CLASSES):
        (folder / f"c{c}").mkdir(exist_ok=True)
    out_dir = tmp_path / "out"
    (result,) = convert(ConvertJob(model="as_mlp_mobile", target="coreml", precision="w4", img_size=TEST_IMG,
                                   num_classes=TEST_CLASSES, overrides=dict(TEST_MODELS["as_mlp_mobile"]),
                                   calib=str(folder), max_drop=0.0, out_dir=str(out_dir)))
    m = Manifest.read(result.manifest_path)
    budget = m.quantization.accuracy_budget
    assert budget["reference_top1"] == 100.0 and budget["drop_pts"] <= 0.0 and budget["images"] == 8
    kept = budget["kept_blocks"]
    assert kept and set(kept) <= set(block_names(model)) and m.quantization.float_blocks == []
    assert budget["kept_as"].startswith("8-bit palettization") and "kept by the accuracy budget" in m.quantization.scheme
    assert any(op.op_type == "constexpr_lut_to_dense" and op.inputs["lut"].shape[-2] == 256
               for op in _compression_ops(result.artifact))
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([".edge-mlp.lock", result.artifact.name,
                                                                result.manifest_path.name])


def test_unreachable_budget_fails_cleanly(tmp_path: Path) -> None:
    """Every block kept at 8 bits and still over the budget: refused, nothing published. Also proves
    each of the model's blocks maps to Core ML weights (else that error would come first)."""
    folder = tmp_path / "data"
    for c in range(TEST_CLASSES):
        (folder / f"c{c}").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (TEST_IMG, TEST_IMG, 3), dtype=np.uint8)).save(folder / f"c{i}" / "x.png")
    out = tmp_path / "out"
    with pytest.raises(EdgeMlpError, match=r"^w4 coreml cannot meet --max-drop -100.0: the drop is .* even with every "
                                           r"block in 8-bit palettization \(uniform LUT"):
        convert(ConvertJob(model="mixer_mobile", target="coreml", precision="w4", img_size=TEST_IMG,
                           num_classes=TEST_CLASSES, overrides=dict(TEST_MODELS["mixer_mobile"]), calib=str(folder),
                           max_drop=-100.0, out_dir=str(out)))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("weights,match", [
    (None, "--max-drop measures accuracy: use labelled calibration data"),
    ("w.pth", "--max-drop measures accuracy on labelled images like the ones your weights were trained on"),
])
def test_budget_argument_errors(weights: str | None, match: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    extra = []
    if weights is not None:
        (tmp_path / weights).write_bytes(b"not read: the plan fails first")
        extra = ["--weights", str(tmp_path / weights)]
    out = tmp_path / "out"
    assert main(["convert", "mixer_mobile", "--target", "coreml", "--precision", "pal4", "--max-drop", "1", *extra,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err
    assert not out.exists() or list(out.iterdir()) == []


# --- refusals: other targets, and iOS apps that deploy to an older iOS ---------------------------

@pytest.mark.parametrize("precision", LOW_BIT)
@pytest.mark.parametrize("target", ["executorch", "tflite", "onnx", "all"])
def test_other_targets_refuse_the_low_bit_precisions(target: str, precision: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["convert", "as_mlp_mobile", "--target", target, "--precision", precision, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    refused = "executorch" if target == "all" else target
    assert f"precision {precision} is not supported for target {refused} (supported: " in err and "\n" not in err
    assert not out.exists()


def _ios_app(tmp_path: Path, deployment_target: str | None) -> Path:
    """A stand-in iOS app: the real project.yml (its deployment target replaced if given)."""
    layout = APPS["ios"]
    app = tmp_path / "ios-app"
    (app / layout.bundle_dir).mkdir(parents=True)
    text = (layout.default_dir() / layout.marker).read_text()
    if deployment_target is not None:
        assert 'iOS: "17.0"' in text
        text = text.replace('iOS: "17.0"', f'iOS: "{deployment_target}"')
    (app / layout.marker).write_text(text)
    return app


def _package(converted: Callable[..., Any], precision: str, dest: Path) -> Path:
    result = converted("mixer_mobile", "coreml", precision)
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / result.artifact.name
    shutil.copytree(result.artifact, copy)
    shutil.copy2(result.manifest_path, manifest_path(copy))
    return copy


def test_the_ios_apps_deployment_target_is_read_from_its_project() -> None:
    layout = APPS["ios"]
    assert layout.deployment_target(layout.default_dir()) == (17, 0)
    assert APPS["android"].deployment_target(APPS["android"].default_dir()) is None
    assert parse_version("iOS18", "iOS") == (18,) and parse_version("17.0") == (17, 0)


@pytest.mark.parametrize("precision", LOW_BIT)
def test_bundle_refuses_a_package_newer_than_the_ios_app(converted: Callable[..., Any], precision: str,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = _ios_app(tmp_path, None)
    package = _package(converted, precision, tmp_path / "out")
    fp16 = _package(converted, "fp16", tmp_path / "out")
    where = app / APPS["ios"].bundle_dir
    capsys.readouterr()  # the conversions' progress bars
    for source in (package, tmp_path / "out"):  # named, or found in a folder beside an fp16 package
        assert main(["bundle", str(source), "--app", "ios", "--app-dir", str(app)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"edge-mlp: error: {package.name} needs iOS 18+ (minimum_deployment_target iOS18) "
                              "but the ios app deploys to iOS 17.0 (project.yml)"), err
        assert "\n" not in err and list(where.iterdir()) == []
    assert bundle(BundleJob(sources=[str(fp16)], app="ios", app_dir=str(app))).artifacts  # iOS 17: fine


def test_bundle_takes_the_package_once_the_app_deploys_to_ios18(converted: Callable[..., Any], tmp_path: Path) -> None:
    app = _ios_app(tmp_path, "18.0")
    package = _package(converted, "w4", tmp_path / "out")
    result = bundle(BundleJob(sources=[str(package)], app="ios", app_dir=str(app), samples=1))
    assert [a.artifact.name for a in result.artifacts] == [package.name]
    assert json.loads(manifest_path(result.artifacts[0].artifact).read_text())["coverage"][
        "minimum_deployment_target"] == "iOS18"
