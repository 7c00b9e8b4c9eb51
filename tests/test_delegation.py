"""Delegation coverage of the mobile models, as the manifests record it (edge_mlp.ops.export_forms).

ExecuTorch: every compute op inside one XNNPACK partition, fp32 and int8. LiteRT: every op in one
partition, fp32 and int8 (the GELUs and softmaxes litert-torch makes int8 are rewritten to run in
float inside it: converters.tflite.float_islands_in_delegate), and no TRANSPOSE inside the graph.
ONNX Runtime: its optimized int8 graph keeps no layout Transposes around the QLinearConvs
(converters/onnx.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ["as_mlp_mobile", "cycle_mlp_mobile", "mixer_mobile"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_executorch_delegates_every_compute_op_in_one_partition(converted, model: str, precision: str) -> None:
    coverage = converted(model, "executorch", precision).manifest.coverage
    assert coverage["non_delegated_compute_ops"] == {}, coverage["non_delegated_compute_ops"]
    assert coverage["compute_ops_delegated"] == coverage["compute_ops_total"] > 0
    assert coverage["delegated_subgraphs"] == 1


@pytest.mark.parametrize("model", MODELS)
def test_executorch_int8_folds_constants_but_keeps_its_weights_int8(converted, model: str) -> None:
    """The ExecuTorch converter folds ops on constants in int8 too (the XNNPACK GroupNorm's
    averaging kernel, reshaped affines), skipping dequantize: folding a weight's dequantize would
    store it as float, about as large as the fp32 program."""
    fp32, int8 = (converted(model, "executorch", p).artifact.stat().st_size for p in ("fp32", "int8"))
    assert int8 < 0.4 * fp32, (int8, fp32)


def test_executorch_int8_group_norm_centres_and_scales_in_int8_with_a_float_variance() -> None:
    """ExecuTorch's int8 recipe (converters.pt2e.group_norm_ends_int8) on the XNNPACK GroupNorm:
    x - mu and (x - mu) * scale read int8 and write int8; the variance of x - mu is float (its
    square is never quantized); and the averaging conv's weight is int8 like any conv's."""
    from contextlib import nullcontext

    import edge_mlp
    from edge_mlp import converters
    from edge_mlp.converters.pt2e import quantize_pt2e
    from edge_mlp.options import ExportForms, NormForm, using_forms

    aten = torch.ops.aten
    torch.manual_seed(0)
    model = edge_mlp.create_model("as_mlp_mobile", img_size=32, num_classes=10, depths=(1, 1, 1, 1)).eval()
    norms = sum(type(m).__name__ == "GroupNorm1" for m in model.modules())
    x = torch.randn(3, 3, 32, 32)
    quantizer, rewrite, _ = converters.get_converter("executorch").pt2e_recipe()
    with using_forms(ExportForms(norms=NormForm.XNNPACK)):
        graph = quantize_pt2e(model, x[:1], quantizer, [x[1:2], x[2:]], lambda _: nullcontext(), rewrite=rewrite)

    def int8_in_and_out(node: torch.fx.Node) -> bool:
        return (all("dequantize" in str(a.target) for a in node.args[:2])
                and [str(u.target) for u in node.users] == ["quantized_decomposed.quantize_per_tensor.default"])

    subs = [n for n in graph.graph.nodes if n.target == aten.sub.Tensor]
    assert len(subs) == norms > 0
    for sub in subs:
        assert int8_in_and_out(sub)
        readers = [u for q in sub.users for dq in q.users for u in dq.users]
        squares = [u for u in readers if u.target == aten.mul.Tensor and u.args[0] is u.args[1]]
        scaled = [u for u in readers if u.target == aten.mul.Tensor and u.args[0] is not u.args[1]]
        assert len(squares) == 1 and [u.target for u in squares[0].users] == [aten.mean.dim]
        assert len(scaled) == 1 and int8_in_and_out(scaled[0])
        mu = sub.args[1].args[0].args[0]  # dequantize <- quantize <- the averaging conv
        assert mu.target == aten.conv2d.default and "dequantize_per_channel" in str(mu.args[1].target)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_tflite_runs_every_op_in_one_delegate_partition(converted, model: str, precision: str) -> None:
    coverage = converted(model, "tflite", precision).manifest.coverage
    assert coverage["non_delegated_ops"] == {} and coverage["ops_delegated"] == coverage["ops_total"] > 0
    assert coverage["delegate_partitions"] == 1
    assert coverage["transpose_ops"] <= TFLITE_TRANSPOSES[model]


# TRANSPOSE ops in the channels-last export (NormForm.CHANNELS_LAST): as_mlp and cycle_mlp keep
# only the NCHW input's; Mixer's token mixing transposes (tokens, channels) twice per block by design.
TFLITE_TRANSPOSES = {"as_mlp_mobile": 1, "cycle_mlp_mobile": 1, "mixer_mobile": 7}


class _GeluSoftmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc2(F.gelu(self.fc1(x))), dim=-1)


def test_int8_gelu_and_softmax_run_in_float_inside_the_delegate_with_the_same_codes(tmp_path: Path) -> None:
    """litert-torch makes GELU and softmax int8 kernels between int8 neighbours, which LiteRT's
    XNNPACK does not take; rewritten as DEQUANTIZE / float op / QUANTIZE they run inside it, and
    this model's int8 outputs keep their codes (LiteRT's int8 GELU is the float function tabulated;
    its int8 softmax approximates the float one, equal on these inputs)."""
    import contextlib
    import shutil

    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from edge_mlp.arm64.inroot import executed_ops
    from edge_mlp.converters.pt2e import quantize_pt2e
    from edge_mlp.converters.tflite import TFLiteConverter, _interpreter, float_islands_in_delegate

    torch.manual_seed(0)
    model, x = _GeluSoftmax().eval(), torch.randn(1, 49, 16)
    quantizer, rewrite, _ = TFLiteConverter().pt2e_recipe()
    graph = quantize_pt2e(model, x, quantizer, [torch.randn(1, 49, 16) for _ in range(8)],
                          lambda _: contextlib.nullcontext(), fold_quantize=False, rewrite=rewrite)
    before, after = tmp_path / "int8_ops.tflite", tmp_path / "float_islands.tflite"
    litert_torch.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(before))
    shutil.copy(before, after)
    assert float_islands_in_delegate(after) == {"GELU": 1, "SOFTMAX": 1}
    assert float_islands_in_delegate(after) == {}  # nothing int8 of those is left

    outside = {p: sorted(executed_ops(_interpreter(p, delegates=True))) for p in (before, after)}
    assert outside[before] == ["DELEGATE", "DELEGATE", "GELU", "SOFTMAX"]
    assert outside[after] == ["DELEGATE"]
    for delegates in (False, True):  # the reference kernels, then XNNPACK's
        codes = []
        for path in (before, after):
            it = _interpreter(path, delegates=delegates)
            inp, out = it.get_input_details()[0], it.get_output_details()[0]
            assert inp["dtype"] == out["dtype"] == np.int8
            batch = []
            for seed in range(4):
                it.set_tensor(inp["index"], np.random.default_rng(seed).integers(-128, 128, inp["shape"], np.int8))
                it.invoke()
                batch.append(it.get_tensor(out["index"]).astype(np.int32))
            codes.append(np.stack(batch))
        assert np.array_equal(codes[0], codes[1]), (delegates, np.abs(codes[0] - codes[1]).max())


def _ort_optimized_ops(artifact: Path, out: Path) -> list[str]:
    """The op types of the graph ONNX Runtime actually runs (its CPU optimizations applied)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(out)
    options.log_severity_level = 3  # its note that the dump holds CPU-specific (NCHWc) kernels
    ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(out)).graph.node]


def test_onnx_int8_as_mlp_runs_channels_last_without_transposes(converted, tmp_path: Path) -> None:
    """ORT runs QLinearConv channels-last; with the GroupNorms taking NHWC its layout optimizer
    cancels every Transpose pair around them (116 remained in as_mlp_mobile at 224 before), and
    GELU is one op (opset 20), not Div/Erf/Add/Mul/Mul between dequantize and quantize."""
    ops = _ort_optimized_ops(converted("as_mlp_mobile", "onnx", "int8").artifact, tmp_path / "optimized.onnx")
    assert ops.count("QLinearConv") >= 10
    assert ops.count("Transpose") <= 2, ops.count("Transpose")
    assert "Erf" not in ops and ops.count("Gelu") >= 4


def test_onnx_group_norm_rewrite_is_exact_up_to_rounding(converted) -> None:
    """The NHWC GroupNorm rewrite the int8 path applies, on the fp32 graph: same outputs up to the
    order of the float sums, on the real runtime."""
    import onnx
    import onnxruntime as ort

    from edge_mlp.converters.onnx import _group_norms_channels_last

    artifact = converted("as_mlp_mobile", "onnx", "fp32").artifact
    model = onnx.load(str(artifact))
    norms = sum(n.op_type == "InstanceNormalization" for n in model.graph.node)
    assert _group_norms_channels_last(model) == norms > 0
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).standard_normal((1, *_input_shape(artifact)), dtype=np.float32)
    before = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(after - before).max() <= 1e-4 * (before.max() - before.min())


def _input_shape(artifact: Path) -> tuple[int, ...]:
    import onnx

    dims = onnx.load(str(artifact)).graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims[1:])
