"""The int8 accuracy budget: blocks kept in float really stay float, and the loop's outcomes."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from edge_mlp import converters
import edge_mlp
from edge_mlp.converters.pt2e import quantize_pt2e
from edge_mlp.cli import main
from edge_mlp.convert import ConvertJob, convert
from edge_mlp.errors import EdgeMlpError
from edge_mlp.manifest import Manifest

SMALL = ["--img-size", "32", "--num-classes", "10"]


def _quantized_paths(graph: torch.fx.GraphModule) -> set[str]:
    """Module paths of linear / conv nodes whose weight arrives through a dequantize (int8 weights)."""
    paths = set()
    for node in graph.graph.nodes:
        if node.op == "call_function" and str(node.target).startswith(("aten.linear", "aten.conv")):
            weight = node.args[1]
            if isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target):
                paths |= {p for p, _ in (node.meta.get("nn_module_stack") or {}).values()}
    return paths


@pytest.mark.parametrize("target", ["executorch", "tflite", "coreml", "onnx"])
def test_float_modules_are_left_unquantized(target: str) -> None:
    model = edge_mlp.create_model("mixer_mobile", img_size=32, num_classes=10, num_blocks=2).eval()
    x = torch.randn(1, 3, 32, 32)
    conv = converters.get_converter(target)
    for float_modules, expect_block0 in (((), True), (("blocks.0",), False)):
        quantizer, rewrite, _ = conv.pt2e_recipe(float_modules)
        graph = quantize_pt2e(model, x, quantizer, [x], lambda _: nullcontext(), rewrite=rewrite)
        paths = _quantized_paths(graph)
        assert ("blocks.0" in paths) == expect_block0
        assert "blocks.1" in paths


def test_onnx_excludes_float_blocks_from_qdq(tmp_path: Path) -> None:
    import onnx

    from edge_mlp.converters import ConversionRequest

    model = edge_mlp.create_model("as_mlp_mobile", img_size=32, num_classes=10, depths=(1, 1, 1, 1)).eval()
    x = torch.randn(1, 3, 32, 32)
    request = ConversionRequest(model=model, example=x, precision="int8", calibration=[x], work_dir=tmp_path,
                                stem="m", num_classes=10, stage=lambda _: nullcontext(),
                                float_modules=("layers.0.blocks.0",))
    graph = onnx.load(str(converters.get_converter("onnx").convert(request).path)).graph
    inside = [n for n in graph.node if n.name.startswith("/layers.0/blocks.0/")]
    assert inside and not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in inside
                              if "Conv" in n.name or "conv" in n.name)
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)


def test_reachable_budget_records_the_measurement(tmp_path: Path) -> None:
    (result,) = convert(ConvertJob(model="mixer_mobile", target="onnx", precision="int8", img_size=32,
                                   num_classes=10, max_drop=100.0, calib="demo", out_dir=str(tmp_path)))
    budget = Manifest.read(result.manifest_path).quantization.accuracy_budget
    assert budget["max_drop_pts"] == 100.0 and budget["images"] == 256
    assert budget["drop_pts"] == pytest.approx(budget["reference_top1"] - budget["artifact_top1"], abs=1e-2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".edge-mlp.lock", result.artifact.name,
                                                                 result.manifest_path.name])


def test_unreachable_budget_fails_cleanly(tmp_path: Path) -> None:
    """Every block kept in float one by one, then one line and nothing written (one Mixer block:
    the loop is the same for any depth; the CLI turns the error into one line and exit 2)."""
    out = tmp_path / "out"
    with pytest.raises(EdgeMlpError) as failure:
        convert(ConvertJob(model="mixer_mobile", target="onnx", precision="int8", img_size=32, num_classes=10,
                           overrides={"num_blocks": 1}, calib="demo", max_drop=-100.0, out_dir=str(out)))
    assert "cannot meet --max-drop -100.0" in str(failure.value) and "\n" not in str(failure.value)
    assert "every block in float" in str(failure.value)
    assert list(out.iterdir()) == []  # no staging folder, no lock file left


@pytest.mark.parametrize("argv,match", [
    (["--precision", "fp32", "--max-drop", "1"], "--max-drop applies to int8 conversions"),
    (["--precision", "int8", "--calib", "synthetic", "--max-drop", "1"], "--max-drop measures accuracy"),
])
def test_budget_argument_errors(tmp_path: Path, argv: list[str], match: str, capsys) -> None:
    assert main(["convert", "mixer_mobile", "--target", "onnx", *SMALL, *argv, "--out", str(tmp_path)]) == 2
    assert match in capsys.readouterr().err
