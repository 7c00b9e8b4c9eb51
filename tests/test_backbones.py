"""Backbones for dense prediction: feature pyramids, non-square and multi-size artifacts, on every
target's real runtime (Core ML through the MIL interpreter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import edge_mlp
from edge_mlp import converters
from edge_mlp.cli import main
from edge_mlp.errors import ConfigError
from edge_mlp.parity import run_parity
from edge_mlp.weights import backbone_state, load_weights

from .conftest import TEST_MODELS
from .official_layouts import OFFICIAL_LAYOUTS

DATA = "edge_mlp/assets/fashion_mnist_eval2000.npz"
TARGETS = converters.list_targets()
# Small non-square sizes the two-stage test models take (AS-MLP: multiples of 8 here).
SIZES = [64, (64, 96)]  # a square and a non-square size: two entry points (a third costs a third more lowering)
FP32_REL = 1e-4  # max |diff| <= FP32_REL x each output's range
INT8_COSINE = 0.99


def _stage_outputs(model: torch.nn.Module, name: str, x: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's output in the classifier, caught with hooks: what the backbone must return."""
    caught: list[torch.Tensor] = []
    if name.startswith("as_mlp"):
        modules = [layer.blocks[-1] for layer in model.layers]
    elif name.startswith("cycle"):
        modules = [model.network[i] for i in model._stage_ends]
    else:
        modules = [model.norm]
    hooks = [m.register_forward_hook(lambda _m, _i, out: caught.append(out)) for m in modules]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    if name.startswith("cycle"):
        return [c.permute(0, 3, 1, 2) for c in caught]
    if name.startswith("mixer"):
        grid = model.stem.grid_size
        return [caught[0].reshape(len(x), *grid, -1).permute(0, 3, 1, 2)]
    return caught


@pytest.mark.parametrize("name,size", [("as_mlp_mobile", (64, 96)), ("cycle_mlp_mobile", (72, 40)),
                                       ("mixer_mobile", (48, 80))])
def test_backbone_returns_the_classifiers_stage_maps_with_their_strides(name: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    classifier = edge_mlp.create_model(name, img_size=size).eval()
    backbone = edge_mlp.create_model(name, img_size=size, features_only=True).eval()
    state, dropped = backbone_state(backbone, classifier.state_dict())
    backbone.load_state_dict(state, strict=True)
    assert "head.weight" in dropped and all(k.split(".")[0] in ("head", "norm") for k in dropped)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        maps = backbone(x)
    expected = _stage_outputs(classifier, name, x)
    assert len(maps) == len(expected) == len(backbone.feature_info)
    for m, e, info in zip(maps, expected, backbone.feature_info):
        assert torch.equal(m, e)
        assert m.shape[1] == info.channels
        assert (m.shape[2], m.shape[3]) == (-(-size[0] // info.stride), -(-size[1] // info.stride))
    assert [f.to_dict() for f in backbone.feature_info] == [f.to_dict() for f in backbone.edge_config.features()]


def test_out_indices_choose_the_stages() -> None:
    backbone = edge_mlp.create_model("as_mlp_mobile", features_only=True, out_indices=(1, 3)).eval()
    maps = backbone(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [96, 384] and [f.stride for f in backbone.feature_info] == [8, 32]


@pytest.mark.parametrize("name", ["as_mlp_tiny", "cycle_mlp_b1", "mixer_s16", "as_mlp_mobile", "cycle_mlp_mobile"])
def test_official_checkpoint_layouts_load_into_backbones(tmp_path: Path, name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in OFFICIAL_LAYOUTS[name]().items()}
    reference = edge_mlp.create_model(name)
    for k in state:
        if k.endswith(".offset"):  # CycleFC offsets are the official constants
            state[k] = reference.state_dict()[k]
    path = tmp_path / "official.pth"
    torch.save({"model": state}, path)
    backbone = load_weights(edge_mlp.create_model(name, features_only=True), path)  # strict
    loaded = backbone.state_dict()
    assert loaded and all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert {k for k in state if k not in loaded} == (
        {"head.weight", "head.bias"} if name.startswith("mixer") else {"head.weight", "head.bias", "norm.weight", "norm.bias"})


@pytest.mark.parametrize("overrides,match", [
    (dict(features_only=True, out_indices=(4,)), "cannot return feature stages 4"),
    (dict(features_only=True, out_indices=(2, 1)), "cannot return feature stages 2,1"),
    (dict(out_indices=(1,)), "features_only=True"),
    (dict(img_size=(64, 100)), "does not take image size 64x100"),
])
def test_bad_backbone_configs_are_refused_in_one_line(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        edge_mlp.create_model("as_mlp_mobile", **overrides)
    assert "\n" not in str(err.value)


def test_mixer_has_one_scale() -> None:
    with pytest.raises(ConfigError, match="one feature scale"):
        edge_mlp.create_model("mixer_mobile", features_only=True, out_indices=(0, 1))


@pytest.mark.parametrize("argv,match", [
    (["--features-only", "--out-indices", "0,5"], "cannot return feature stages 0,5"),
    (["--out-indices", "1"], "add --features-only"),
    (["--features-only", "--out-indices", "a"], "argument --out-indices"),
    (["--img-size", "64x100"], "nearest: width 96 or 128"),
    (["--img-size", "64,96x7"], "does not take image size 96x7"),
    (["--img-size", "64x"], "argument --img-size"),
    (["--img-size", "64,96", "--precision", "int8"], "int8 calibrates one graph per input size"),
])
def test_bad_backbone_arguments_fail_in_one_line_writing_nothing(
        tmp_path: Path, argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["convert", "as_mlp_mobile", "--target", "tflite", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_a_size_tied_model_refuses_several_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "mixer_mobile", "--target", "onnx", "--img-size", "64,128", "--out", str(tmp_path)]) == 2
    assert "takes one input size per model" in capsys.readouterr().err


def _multi_size(converted, model: str, target: str):
    return converted(model, target, "fp32", features_only=True, img_size=SIZES)


# Suite time: every target for each case across the two families, not every pair (the full-size
# figures of every pair come from benchmarks/backbones.py).
MULTI_SIZE_CASES = [("as_mlp_mobile", t) for t in TARGETS] + [("cycle_mlp_mobile", t) for t in ("onnx", "coreml")]
# AS-MLP on ExecuTorch: its feature maps also feed the fused PatchMerging, which once left an int8
# output channels-last and the program failing at run time (edge_mlp/models/as_mlp.py).
INT8_CASES = [("cycle_mlp_mobile", t) for t in TARGETS] + [("as_mlp_mobile", "tflite"), ("as_mlp_mobile", "executorch")]


@pytest.mark.parametrize("model,target", MULTI_SIZE_CASES)
def test_multi_size_backbone_matches_pytorch_at_every_size(converted, model: str, target: str) -> None:
    result = _multi_size(converted, model, target)
    m = result.manifest
    assert m.sizes() == [(64, 64), (64, 96)]
    entries = [s.entry for s in m.input_sizes]
    assert len(set(entries)) == (1 if target == "onnx" else 2)  # ONNX: one graph, dynamic axes
    stages = len(TEST_MODELS[model].get("depths", TEST_MODELS[model].get("layers")))
    assert [f.index for f in m.features] == list(range(stages)) and m.output.num_classes == 0
    assert [f.tensor.shape for f in m.features] == [[1, f.channels, 64 // f.stride, 64 // f.stride] for f in m.features]
    report = run_parity(result.artifact, data=DATA, limit=3, mil_precision="fp32" if target == "coreml" else None)
    assert report.top1_reference is None
    assert sorted({o.size for o in report.outputs}) == ["64", "64x96"]
    assert len(report.outputs) == 2 * stages
    worst = max(o.max_abs_diff_rel for o in report.outputs)
    assert worst <= FP32_REL, report.outputs


@pytest.mark.parametrize("model,target", INT8_CASES)
def test_int8_backbone_keeps_each_output_close(converted, model: str, target: str) -> None:
    result = converted(model, target, "int8", features_only=True, img_size=(64, 96))
    m = result.manifest
    assert m.sizes() == [(64, 96)]
    if target == "tflite":
        # The converter leaves an output int8 or float32 (float where it also feeds a float
        # GroupNorm): the manifest must say which, per output, as the interpreter reports it.
        from edge_mlp.converters.tflite import _interpreter, signature_io

        _, outs = signature_io(_interpreter(result.artifact, delegates=False).get_signature_runner("serving_default"))
        assert [f.tensor.dtype for f in m.features] == [np.dtype(d["dtype"]).name for _, d in outs]
        for f, (_, d) in zip(m.features, outs):
            assert f.tensor.dtype in ("int8", "float32")
            if f.tensor.dtype == "int8":
                assert (f.tensor.quantization.scale, f.tensor.quantization.zero_point) == pytest.approx(d["quantization"])
            else:
                assert f.tensor.quantization is None
    report = run_parity(result.artifact, data=DATA, limit=3)
    assert [o.size for o in report.outputs] == ["64x96"] * len(m.features)
    assert min(o.cosine_min for o in report.outputs) >= INT8_COSINE, report.outputs


def test_a_runtime_output_is_each_feature_map_in_order(converted) -> None:
    """Outputs must not be permuted (TFLite orders tensors its own way): each output's shape is
    its stage's, at a non-square size that tells the axes apart."""
    result = converted("as_mlp_mobile", "tflite", "int8", features_only=True, img_size=(64, 96))
    host = converters.get_converter("tflite").open_model(result.artifact)
    outs = host.outputs(np.zeros((1, 3, 64, 96), np.float32))
    assert [list(o.shape) for o in outs] == [[1, f.channels, 64 // f.stride, 96 // f.stride] for f in result.manifest.features]


def test_a_multi_size_classifier_runs_each_size(converted) -> None:
    result = converted("cycle_mlp_mobile", "onnx", "fp32", img_size=[64, (64, 96)])
    report = run_parity(result.artifact, data=DATA, limit=3)
    assert report.top1_reference is not None
    assert [o.size for o in report.outputs] == ["64", "64x96"]
    assert max(o.max_abs_diff_rel for o in report.outputs) <= FP32_REL


def test_bundle_refuses_backbones(converted, capsys: pytest.CaptureFixture[str]) -> None:
    result = converted("as_mlp_mobile", "tflite", "int8", features_only=True, img_size=(64, 96))
    assert main(["bundle", str(result.artifact), "--app", "android"]) == 2
    assert "is a backbone" in capsys.readouterr().err
