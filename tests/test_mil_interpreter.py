"""edge-mlp's numpy MIL interpreter against PyTorch, op by op, on packages coremltools really wrote.

Each case is a small PyTorch module converted with coremltools (a MIL Builder program where PyTorch
cannot emit the op), saved as a .mlpackage, run by the interpreter and compared with PyTorch.
Bounds: fp32 programs max |diff| <= 1e-5 x max |PyTorch output|; fp16 programs <= 1e-2 x that
(each fp16 rounding is <= 2**-11 relative; a case chains a few ops, inputs included).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from edge_mlp.converters.coreml import earlier_objects_frozen, pipelines_validated_once
from edge_mlp.mil import KERNELS, MilInterpreter, MilProgramError, UnsupportedMilOpError
from edge_mlp.mil.interpreter import UnsupportedMilOpVersionError, UnsupportedMilShapeError

FP32_BOUND, FP16_BOUND = 1e-5, 1e-2


class Fn(nn.Module):
    """fn(module, *inputs) with optional submodules, so each case is one line."""

    def __init__(self, fn: Callable[..., Any], *modules: nn.Module):
        super().__init__()
        self.fn, self.m = fn, nn.ModuleList(modules)

    def forward(self, *xs: torch.Tensor) -> Any:
        return self.fn(self.m, *xs)


def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))) * scale


@dataclass
class OpCase:
    id: str
    ops: set[str]  # MIL ops the converted program must contain (the case is void otherwise)
    module: nn.Module
    inputs: list[torch.Tensor]
    program: Callable[[], Any] | None = None  # a MIL Builder program instead of converting `module`
    reference: nn.Module | None = None  # where Core ML's documented semantics differ from `module`


CASES = [
    OpCase("elementwise", {"add", "sub", "mul", "real_div"},
           Fn(lambda m, x, y: (x + y) * (x - y) / (y.abs() + 1.0)), [randn(2, 3, 4), randn(3, 4)]),
    OpCase("maximum_minimum_clip", {"maximum", "minimum", "clip"},
           Fn(lambda m, x, y: torch.maximum(x, y) + torch.minimum(x, y) * torch.clamp(x, -0.5, 0.7)),
           [randn(3, 4), randn(3, 4)]),
    # coremltools lowers torch.reciprocal to inverse(epsilon=1e-4): Core ML computes 1 / (x + 1e-4).
    OpCase("sqrt_rsqrt_inverse_pow", {"sqrt", "rsqrt", "inverse", "pow", "abs"},
           Fn(lambda m, x: torch.sqrt(x.abs()) + torch.reciprocal(x.abs() + 0.5) + torch.rsqrt(x.abs() + 0.5)
              + (x.abs() + 0.1) ** 1.7), [randn(3, 5)],
           reference=Fn(lambda m, x: torch.sqrt(x.abs()) + 1 / (x.abs() + 0.5 + 1e-4) + torch.rsqrt(x.abs() + 0.5)
                        + (x.abs() + 0.1) ** 1.7)),
    OpCase("group_norm", {"reshape", "reduce_mean", "sub", "square", "sqrt", "real_div"},  # AS-MLP's norm
           Fn(lambda m, x: m[0](x), nn.GroupNorm(1, 6)), [randn(1, 6, 4, 4, scale=2.0)]),
    OpCase("exp_log_tanh_erf", {"exp", "log", "tanh", "erf"},
           Fn(lambda m, x: torch.exp(x) + torch.log(x.abs() + 0.5) + torch.tanh(x) + torch.erf(x)), [randn(4, 6)]),
    OpCase("cast", {"cast"}, Fn(lambda m, x: x.to(torch.int32).to(torch.float32) + x), [randn(2, 5, scale=4.0)]),
    OpCase("conv2d_grouped_strided", {"conv"}, Fn(lambda m, x: m[0](x), nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)),
           [randn(1, 4, 9, 9)]),
    OpCase("conv2d_depthwise_dilated", {"conv"}, Fn(lambda m, x: m[0](x), nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=6)),
           [randn(1, 6, 8, 7)]),
    OpCase("conv3d_pools3d", {"conv", "max_pool", "avg_pool"},
           Fn(lambda m, x: m[1](m[0](x)) + m[2](m[0](x)), nn.Conv3d(4, 6, 3, stride=(1, 2, 1), padding=1, groups=2),
              nn.MaxPool3d(2), nn.AvgPool3d(2)), [randn(1, 4, 5, 6, 4)]),
    OpCase("conv1d", {"conv"}, Fn(lambda m, x: m[0](x), nn.Conv1d(4, 6, 3, padding=2, dilation=2)), [randn(1, 4, 11)]),
    OpCase("linear", {"linear"}, Fn(lambda m, x: m[0](x), nn.Linear(12, 7)), [randn(2, 5, 12)]),
    OpCase("matmul", {"matmul"}, Fn(lambda m, x, y: x @ y), [randn(2, 3, 4), randn(2, 4, 5)]),
    OpCase("reductions", {"reduce_mean", "reduce_sum", "reduce_max"},
           Fn(lambda m, x: x.mean(dim=1) + x.sum(dim=(1,)) * x.amax(dim=1)), [randn(2, 3, 4)]),
    OpCase("layer_norm", {"layer_norm"}, Fn(lambda m, x: m[0](x), nn.LayerNorm(8)), [randn(2, 5, 8, scale=3.0)]),
    OpCase("batch_norm", {"batch_norm"}, Fn(lambda m, x: m[0](x), nn.BatchNorm2d(3)), [randn(1, 3, 5, 5)]),
    OpCase("instance_norm", {"instance_norm"}, Fn(lambda m, x: m[0](x), nn.InstanceNorm2d(3, affine=True)),
           [randn(1, 3, 5, 5, scale=2.0)]),
    OpCase("gelu_exact", {"gelu"}, Fn(lambda m, x: F.gelu(x)), [randn(3, 8, scale=3.0)]),
    # coremltools 9.0 converts F.gelu(approximate="tanh") as EXACT (found by this interpreter),
    # so the tanh mode comes from a MIL Builder program.
    OpCase("gelu_tanh", {"gelu"}, Fn(lambda m, x: F.gelu(x, approximate="tanh")), [randn(3, 8, scale=3.0)],
           program=lambda: _builder_program((3, 8), lambda mb, x: mb.gelu(x=x, mode="TANH_APPROXIMATION"))),
    OpCase("gelu_sigmoid", {"gelu"}, Fn(lambda m, x: x * torch.sigmoid(1.702 * x)), [randn(3, 8, scale=3.0)],
           program=lambda: _builder_program((3, 8), lambda mb, x: mb.gelu(x=x, mode="SIGMOID_APPROXIMATION"))),
    OpCase("activations", {"softmax", "sigmoid", "relu", "silu"},
           Fn(lambda m, x: torch.softmax(x, 1) + torch.sigmoid(x) + torch.relu(x) + F.silu(x)), [randn(3, 4, 2)]),
    OpCase("transpose_reshape", {"transpose", "reshape"}, Fn(lambda m, x: x.permute(0, 2, 1).reshape(2, 12) * 2),
           [randn(2, 3, 4)]),
    OpCase("expand_squeeze", {"expand_dims", "squeeze"}, Fn(lambda m, x: x.unsqueeze(1) * 2 + x.squeeze(1)),
           [randn(3, 1, 4)]),
    OpCase("concat_split", {"concat", "split"},
           Fn(lambda m, x: torch.cat([torch.split(x, [1, 3], dim=1)[1], x.chunk(2, dim=1)[0] * 2], dim=1)),
           [randn(2, 4)]),
    OpCase("slice_by_index", {"slice_by_index"}, Fn(lambda m, x: x[:, 1:3, ::2] + x[:, -2:, 1::2]), [randn(2, 4, 6)]),
    OpCase("pad_modes", {"pad"},
           Fn(lambda m, x: F.pad(x, (1, 2, 2, 1), mode="reflect") + F.pad(x, (1, 2, 2, 1), mode="replicate")
              + F.pad(x, (1, 2, 2, 1), value=0.5)), [randn(1, 2, 5, 5)]),
    OpCase("gather", {"gather"}, Fn(lambda m, x: x[:, torch.tensor([2, 0, 1, 2])]), [randn(2, 3)]),
    OpCase("tile", {"tile"}, Fn(lambda m, x: x.repeat(2, 3)), [randn(2, 3)]),
    OpCase("pools", {"avg_pool", "max_pool"},
           Fn(lambda m, x: m[0](x) + m[1](x) + m[2](x), nn.AvgPool2d(3, stride=2, padding=1),
              nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), nn.MaxPool2d(3, stride=2, padding=1)),
           [randn(1, 2, 7, 7)]),
]


def _builder_program(shape: tuple[Any, ...], body: Callable[[Any, Any], Any], opset: str = "iOS17") -> Any:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=getattr(ct.target, opset))
    def program(x):
        return body(mb, x)

    return program


def _save(source: Any, path: Path, precision: str, opset: str = "iOS17", **convert_args: Any) -> Path:
    import coremltools as ct

    # frozen objects: a third of the MIL op tests' time otherwise; one validation per pass pipeline
    with warnings.catch_warnings(), earlier_objects_frozen(), pipelines_validated_once():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(source, minimum_deployment_target=getattr(ct.target, opset), convert_to="mlprogram",
                             compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
                             **convert_args)
    mlmodel.save(str(path))
    return path


def _export(module: nn.Module, inputs: list[torch.Tensor]) -> Any:
    return torch.export.export(module.eval(), tuple(inputs)).run_decompositions({})


def _interpret(path: Path, inputs: list[torch.Tensor], precision: str = "fp16") -> list[np.ndarray]:
    interpreter = MilInterpreter(path, precision=precision)
    outputs = interpreter(dict(zip(interpreter.inputs, (x.numpy() for x in inputs))))
    return [outputs[name] for name in interpreter.output_names]


def _program_ops(path: Path) -> set[str]:
    return {op.op_type for op in MilInterpreter(path).ops}


def _rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-12))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op_matches_pytorch(case: OpCase, precision: str, tmp_path: Path) -> None:
    source = case.program() if case.program else _export(case.module, case.inputs)
    path = _save(source, tmp_path / "case.mlpackage", precision)
    assert case.ops <= _program_ops(path), f"the converted program lacks {case.ops - _program_ops(path)}"
    with torch.no_grad():
        want = (case.reference or case.module).eval()(*case.inputs)
    (got,) = _interpret(path, case.inputs)
    assert got.shape == tuple(want.shape)
    assert _rel_error(got, want.numpy()) <= (FP32_BOUND if precision == "fp32" else FP16_BOUND)


def _grid_linear(features: int, low: int, high: int) -> nn.Linear:
    """A Linear whose weights are 0.01 x integers in [low, high], both ends present in every row,
    so a symmetric per-row int8 grid or a uniform LUT represents them exactly."""
    layer = nn.Linear(features, features)
    with torch.no_grad():
        q = torch.randint(low, high + 1, (features, features), generator=torch.Generator().manual_seed(0))
        q[:, 0], q[:, 1] = high, low
        layer.weight.copy_(q.float() * 0.01)
    return layer


def _compressed(layer: nn.Linear, x: list[torch.Tensor], compress: Callable[..., Any], op_config: Any, op: str,
                tmp_path: Path, opset: str = "iOS17") -> Path:
    """`layer` saved as fp32, its weights compressed by coremltools into `op`."""
    import coremltools as ct
    from coremltools.optimize.coreml import OptimizationConfig

    path = _save(_export(layer, x), tmp_path / "fp32.mlpackage", "fp32", opset=opset)
    compressed = tmp_path / "compressed.mlpackage"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compress(ct.models.MLModel(str(path), skip_model_load=True),
                 config=OptimizationConfig(global_config=op_config)).save(str(compressed))
    assert op in _program_ops(compressed)
    return compressed


def _compressed_linear_matches(layer: nn.Linear, x: list[torch.Tensor], compress: Callable[..., Any],
                               op_config: Any, op: str, tmp_path: Path) -> None:
    """Save `layer` as fp32, compress its weights with coremltools, and compare with PyTorch."""
    compressed = _compressed(layer, x, compress, op_config, op, tmp_path)
    with torch.no_grad():
        want = layer(*x).numpy()
    (got,) = _interpret(compressed, x)
    assert _rel_error(got, want) <= FP32_BOUND


def test_constexpr_affine_dequantize_matches_pytorch(tmp_path: Path) -> None:
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, linear_quantize_weights

    config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                     weight_threshold=0)
    _compressed_linear_matches(_grid_linear(32, -127, 127), [randn(4, 32)], linear_quantize_weights, config,
                               "constexpr_affine_dequantize", tmp_path)


def test_constexpr_lut_to_dense_matches_pytorch(tmp_path: Path) -> None:
    from coremltools.optimize.coreml import OpPalettizerConfig, palettize_weights

    config = OpPalettizerConfig(mode="uniform", nbits=4, weight_threshold=0)
    # 16 evenly spaced values: a uniform 4-bit LUT represents them exactly
    _compressed_linear_matches(_grid_linear(24, -8, 7), [randn(3, 24)], palettize_weights, config,
                               "constexpr_lut_to_dense", tmp_path)


@pytest.mark.parametrize("op", ["constexpr_blockwise_shift_scale", "constexpr_lut_to_dense"])
def test_ios18_compression_matches_coremltools_decompression(op: str, tmp_path: Path) -> None:
    """iOS18 per-block int4 weights (with offsets) and one 4-bit LUT per group of 4 output channels:
    our kernels against coremltools' own numpy decompression (decompress_weights) of the package."""
    import coremltools as ct
    from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OpPalettizerConfig, decompress_weights,
                                             linear_quantize_weights, palettize_weights)

    layer, x = nn.Linear(32, 16), [randn(3, 32)]
    compress, config = {
        "constexpr_blockwise_shift_scale": (linear_quantize_weights, OpLinearQuantizerConfig(
            mode="linear", dtype="int4", granularity="per_block", block_size=8, weight_threshold=0)),
        "constexpr_lut_to_dense": (palettize_weights, OpPalettizerConfig(
            mode="uniform", nbits=4, granularity="per_grouped_channel", group_size=4, weight_threshold=0)),
    }[op]
    compressed = _compressed(layer, x, compress, config, op, tmp_path, opset="iOS18")
    decompressed = tmp_path / "decompressed.mlpackage"
    decompress_weights(ct.models.MLModel(str(compressed), skip_model_load=True)).save(str(decompressed))
    assert not any(o.startswith("constexpr_") for o in _program_ops(decompressed))
    (got,), (want,) = _interpret(compressed, x, "fp32"), _interpret(decompressed, x, "fp32")
    assert _rel_error(got, want) <= FP32_BOUND


def test_quantize_dequantize_match_the_pt2e_simulation(tmp_path: Path) -> None:
    """A W8A8 program (our int8 recipe) against PyTorch's own simulation of the same Q/DQ graph.
    Bound: one int8 step of the output activation (ties may round differently: x/s vs x*(1/s))."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edge_mlp import converters

    model = Fn(lambda m, x: m[1](F.gelu(m[0](x)).flatten(1)), nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 36, 5))
    x = [randn(1, 3, 6, 6)]
    quantizer, _, _ = converters.get_converter("coreml").pt2e_recipe()
    prepared = prepare_pt2e(torch.export.export(model.eval(), tuple(x)).module(), quantizer)
    for i in range(8):  # calibration
        prepared(randn(1, 3, 6, 6) * (1 + 0.1 * i))
    simulated = convert_pt2e(prepared)
    program = torch.export.export(simulated, tuple(x)).run_decompositions({})  # no .eval() on PT2E graphs
    path = _save(program, tmp_path / "int8.mlpackage", "fp32")
    assert {"quantize", "dequantize"} <= _program_ops(path)
    with torch.no_grad():
        want = simulated(*x).numpy()
    (got,) = _interpret(path, x)
    step = float(np.abs(want).max()) / 127
    assert np.abs(got - want).max() <= step + 1e-5


@pytest.mark.parametrize("shape, axes", [((2, 3, 3), [1]), ((2, 3, 4), [1]), ((2, 3, 4, 5), [0, 2]),
                                         ((2, 3, 4), [-2, -1])])
def test_layer_norm_scales_the_normalized_axes(shape: tuple[int, ...], axes: list[int], tmp_path: Path) -> None:
    """gamma / beta have the shape x.shape[axes] and scale those dims, which need not be the trailing
    ones (nn.LayerNorm only makes trailing axes); against a numpy reference of the MIL definition."""
    rank = len(shape)
    kept = tuple(sorted(a % rank for a in axes))
    normalized = [shape[a] for a in kept]
    gamma = np.linspace(0.5, 2.0, int(np.prod(normalized)), dtype=np.float32).reshape(normalized)
    beta = np.linspace(-1.0, 1.0, int(np.prod(normalized)), dtype=np.float32).reshape(normalized)
    program = _builder_program(shape, lambda mb, x: mb.layer_norm(x=x, axes=axes, gamma=gamma, beta=beta, epsilon=1e-5))
    path = _save(program, tmp_path / "layer_norm.mlpackage", "fp32")
    x = randn(*shape, scale=3.0)
    (got,) = _interpret(path, [x], "fp32")
    xs = x.numpy().astype(np.float64)
    mean, var = xs.mean(axis=kept, keepdims=True), xs.var(axis=kept, keepdims=True)
    place = [n if i in kept else 1 for i, n in enumerate(shape)]
    want = (xs - mean) / np.sqrt(var + 1e-5) * gamma.reshape(place) + beta.reshape(place)
    assert _rel_error(got, want) <= FP32_BOUND


def test_flexible_input_shape_is_refused_in_one_line(tmp_path: Path) -> None:
    from coremltools.converters.mil.mil import get_new_symbol

    program = _builder_program((get_new_symbol(), 3), lambda mb, x: mb.relu(x=x))
    path = _save(program, tmp_path / "flexible.mlpackage", "fp32")
    with pytest.raises(UnsupportedMilShapeError, match=r"^tiny_model: input x has the flexible shape \(\w+, 3\); "
                                                       r"the Core ML interpreter runs fixed shapes only") as caught:
        MilInterpreter(path, model_name="tiny_model")
    assert "\n" not in str(caught.value)


def _ios18_lut_program() -> Any:
    """iOS18's constexpr_lut_to_dense: two 2-bit LUTs, one per half of the rows (coremltools' doc example)."""
    from coremltools.converters.mil.mil import types

    def body(mb: Any, x: Any) -> Any:
        indices = np.array([[2, 3], [3, 0], [1, 0], [3, 0], [2, 1], [0, 3]]).astype(types.np_uint2_dtype)
        lut = np.array([1, 5, 9, 13, 2, 10, 18, 26], dtype=np.float32).reshape(2, 1, 4, 1)
        return mb.add(x=x, y=mb.constexpr_lut_to_dense(indices=indices, lut=lut))

    return _builder_program((6, 2), body, opset="iOS18")


def test_ios18_lut_to_dense_uses_the_group_luts(tmp_path: Path) -> None:
    path = _save(_ios18_lut_program(), tmp_path / "lut18.mlpackage", "fp32", opset="iOS18")
    (got,) = _interpret(path, [torch.zeros(6, 2)], "fp32")
    np.testing.assert_array_equal(got, [[9, 13], [13, 1], [5, 1], [26, 2], [18, 10], [2, 26]])


def test_op_definition_without_a_kernel_is_refused_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later opset may redefine an op (iOS18's constexpr_lut_to_dense: per-group LUTs, no `shape`).
    Without the kernel of that definition, the package is refused when loaded, not run with the
    older meaning or failed midway (here the iOS18 kernel is taken out of the table)."""
    from edge_mlp.mil import kernels

    path = _save(_ios18_lut_program(), tmp_path / "lut18.mlpackage", "fp32", opset="iOS18")
    monkeypatch.delitem(kernels.DEFINITIONS, ("constexpr_lut_to_dense", "iOS18"))
    with pytest.raises(UnsupportedMilOpVersionError, match=r"tiny_model uses MIL op version\(s\) "
                                                            r"constexpr_lut_to_dense \(iOS18\) that the Core ML"):
        MilInterpreter(path, model_name="tiny_model")


def test_identity_passes_its_input_through(tmp_path: Path) -> None:
    """An fp32 program only: an fp16 one casts around identity, which coremltools then removes."""
    path = _save(_builder_program((2, 3), lambda mb, x: mb.identity(x=x)), tmp_path / "identity.mlpackage", "fp32")
    assert "identity" in _program_ops(path)
    x = randn(2, 3)
    (got,) = _interpret(path, [x], "fp32")
    np.testing.assert_array_equal(got, x.numpy())


def test_every_supported_op_is_tested() -> None:
    tested = set().union(*(c.ops for c in CASES)) | {
        "constexpr_affine_dequantize", "constexpr_lut_to_dense", "constexpr_blockwise_shift_scale", "quantize",
        "dequantize", "identity"}
    assert set(KERNELS) == tested


def test_fp32_mode_skips_fp16_rounding(tmp_path: Path) -> None:
    x = [randn(4, 64, scale=3.0)]
    module = Fn(lambda m, x: m[0](F.gelu(x)), nn.Linear(64, 16))
    path = _save(_export(module, x), tmp_path / "fp16.mlpackage", "fp16")
    with torch.no_grad():  # the package stores fp16 weights: only the activations' rounding is skipped
        for p in module.parameters():
            p.copy_(p.half().float())
        want = module(*x).numpy()
    (rounded,) = _interpret(path, x, "fp16")
    (exact,) = _interpret(path, x, "fp32")
    assert _rel_error(exact, want) <= FP32_BOUND < _rel_error(rounded, want) <= FP16_BOUND


def test_trace_lists_every_runtime_op_in_order(tmp_path: Path) -> None:
    x = [randn(2, 8)]
    module = Fn(lambda m, x: torch.relu(m[0](x)) * 2, nn.Linear(8, 4))
    path = _save(_export(module, x), tmp_path / "m.mlpackage", "fp32")
    interpreter = MilInterpreter(path, precision="fp32")
    trace = interpreter.trace({name: t.numpy() for name, t in zip(interpreter.inputs, x)})
    assert [t.op_type for t in trace] == ["linear", "relu", "mul"]
    with torch.no_grad():
        np.testing.assert_allclose(trace[1].outputs[0], torch.relu(module.m[0](x[0])).numpy(), rtol=1e-6, atol=1e-6)


def test_unknown_op_is_an_error_naming_op_and_model(tmp_path: Path) -> None:
    path = _save(_builder_program((2, 3), lambda mb, x: mb.sin(x=x)), tmp_path / "sin.mlpackage", "fp32")
    with pytest.raises(UnsupportedMilOpError, match=r"tiny_model uses MIL op\(s\) sin that the Core ML interpreter"):
        MilInterpreter(path, model_name="tiny_model")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    x = [randn(2, 8)]
    return _save(_export(Fn(lambda m, x: m[0](x), nn.Linear(8, 4)), x), tmp_path / "ok.mlpackage", "fp32")


def test_folder_that_is_not_a_package_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MilProgramError, match="is not a .mlpackage"):
        MilInterpreter(tmp_path)


def test_corrupt_model_spec_is_refused(package: Path) -> None:
    (spec,) = package.glob("Data/com.apple.CoreML/*.mlmodel")
    spec.write_bytes(b"\x08\xff\xff garbage" * 10)
    with pytest.raises(MilProgramError, match="cannot read Core ML package"):
        MilInterpreter(package)


def test_truncated_weights_are_refused(package: Path) -> None:
    (weights,) = package.glob("Data/com.apple.CoreML/weights/weight.bin")
    weights.write_bytes(weights.read_bytes()[:64])
    with pytest.raises(MilProgramError, match="cannot load the MIL program"):
        MilInterpreter(package)


# --- batches: N images in one pass ----------------------------------------------------------------

def _per_image(interpreter: MilInterpreter, x: np.ndarray) -> dict[str, np.ndarray]:
    (name,) = interpreter.inputs
    runs = [interpreter({name: x[i:i + 1]}) for i in range(len(x))]
    return {out: np.concatenate([r[out] for r in runs]) for out in interpreter.output_names}


@pytest.mark.parametrize("precision", ["fp16", "int8", "pal4"])
@pytest.mark.parametrize("model", ["as_mlp_mobile", "cycle_mlp_mobile", "mixer_mobile"])
def test_a_batch_gives_each_image_what_it_gives_alone(converted, model: str, precision: str) -> None:
    """The three families' programs (shift slices, CycleMLP's row-folding reshapes, int8 Q/DQ, LUTs)
    run N images in one pass, and each image's outputs are bit for bit its own run's."""
    artifact = converted(model, "coreml", precision).artifact
    for mode in ("fp16", "fp32"):
        interpreter = MilInterpreter(artifact, precision=mode)
        (name,) = interpreter.inputs
        x = np.random.default_rng(0).standard_normal((5, *interpreter.inputs[name][0][1:])).astype(np.float32)
        assert interpreter._batched_args is not None, "this program should run batched"
        batched = interpreter({name: x})
        for out, alone in _per_image(interpreter, x).items():
            np.testing.assert_array_equal(batched[out], alone)


@pytest.mark.parametrize("body,one_pass", [
    (lambda mb, x: mb.transpose(x=x, perm=[1, 0, 2]), False),  # moves the batch dim
    (lambda mb, x: mb.reduce_sum(x=mb.exp(x=x), axes=[0, 2], keep_dims=False), False),  # sums over it
    (lambda mb, x: mb.softmax(x=x, axis=0), False),
    (lambda mb, x: mb.mul(x=x, y=np.arange(3, dtype=np.float32).reshape(3, 1, 1)), False),  # broadcasts dim 0
    (lambda mb, x: mb.add(x=x, y=np.arange(12, dtype=np.float32).reshape(1, 3, 4)), True),
    (lambda mb, x: mb.reshape(x=mb.exp(x=x), shape=[-1, 2]), True),  # rows: widened to N x 6
], ids=["transpose-dim0", "reduce-dim0", "softmax-dim0", "mul-broadcast-dim0", "add-const", "reshape-rows"])
def test_batches_are_exact_or_run_image_by_image(body: Callable[[Any, Any], Any], one_pass: bool,
                                                 tmp_path: Path) -> None:
    """Ops that would mix images when given N at once are refused by the batch plan, so such a
    program runs image by image; either way each image gets its own result."""
    path = _save(_builder_program((1, 3, 4), body), tmp_path / "batch.mlpackage", "fp32")
    interpreter = MilInterpreter(path, precision="fp32")
    assert (interpreter._batched_args is not None) == one_pass
    (name,) = interpreter.inputs
    x = np.random.default_rng(1).standard_normal((4, 3, 4)).astype(np.float32)  # 4 images of (1, 3, 4)
    batched = interpreter({name: x})
    for out, alone in _per_image(interpreter, x).items():
        np.testing.assert_array_equal(batched[out], alone)
