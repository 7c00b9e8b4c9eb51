"""The edge shift ops equal the official semantics: bit for bit for the shift, 1e-5 for CycleFC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_mlp.ops import LOWERINGS, CycleFC, axial_shift, official_offset
from edge_mlp.options import ExportForms, NormForm, ShiftLowering, using_forms

from .reference import (
    axial_shift_reference,
    cycle_fc_reference,
    deform_sample_reference,
    gen_offset_reference,
)

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def nchw(draw, max_c: int = 20, max_hw: int = 9) -> np.ndarray:
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, max_c)),
        draw(st.integers(1, max_hw)),
        draw(st.integers(1, max_hw)),
    )
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@SETTINGS
@given(x=nchw(), k=st.sampled_from([1, 3, 5, 7]), dim=st.sampled_from([2, 3]),
       lowering=st.sampled_from(LOWERINGS))
def test_axial_shift_is_bit_exact(x: np.ndarray, k: int, dim: int, lowering: str) -> None:
    out = axial_shift(torch.from_numpy(x), k, dim, lowering)
    assert out.shape == x.shape
    assert torch.equal(out, torch.from_numpy(axial_shift_reference(x, k, dim)))


@pytest.mark.parametrize("channels", [1, 2, 4, 6, 7, 9, 11])  # C < k and C % k != 0 included
@pytest.mark.parametrize("lowering", LOWERINGS)
def test_axial_shift_channel_grouping_edge_cases(channels: int, lowering: str) -> None:
    x = torch.randn(1, channels, 3, 2)
    for dim in (2, 3):
        ref = axial_shift_reference(x.numpy(), 5, dim)
        assert torch.equal(axial_shift(x, 5, dim, lowering), torch.from_numpy(ref))


def test_axial_shift_rejects_bad_arguments() -> None:
    x = torch.zeros(1, 4, 4, 4)
    with pytest.raises(ValueError, match="odd"):
        axial_shift(x, 4, 2)
    with pytest.raises(ValueError, match="H \\(2\\) or W \\(3\\)"):
        axial_shift(x, 3, 1)
    with pytest.raises(ValueError, match="lowering"):
        axial_shift(x, 3, 2, "gather")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NCHW"):
        axial_shift(torch.zeros(4, 4, 4), 3, 2)


@pytest.mark.parametrize("kernel", [(1, 3), (3, 1), (1, 5), (7, 1), (1, 1)])
@pytest.mark.parametrize("channels", [1, 2, 5, 64])
def test_cycle_fc_offset_buffer_is_official(kernel: tuple[int, int], channels: int) -> None:
    assert np.array_equal(official_offset(channels, kernel).numpy(), gen_offset_reference(channels, kernel))
    assert torch.equal(CycleFC(channels, 4, kernel).offset, official_offset(channels, kernel))


@SETTINGS
@given(x=nchw(max_c=12, max_hw=8), out_channels=st.integers(1, 8),
       k=st.sampled_from([1, 3, 5, 7]), vertical=st.booleans(), bias=st.booleans(),
       lowering=st.sampled_from(LOWERINGS), seed=st.integers(0, 2**16))
def test_cycle_fc_matches_deform_conv_semantics(
    x: np.ndarray, out_channels: int, k: int, vertical: bool, bias: bool, lowering: str, seed: int
) -> None:
    torch.manual_seed(seed)
    kernel = (k, 1) if vertical else (1, k)
    fc = CycleFC(x.shape[1], out_channels, kernel, bias=bias)
    xt = torch.from_numpy(x)
    offset = fc.offset.numpy()
    # The shift alone is exact: integer offsets make the bilinear weights 1 and 0.
    sampled = deform_sample_reference(x, offset)
    ref = cycle_fc_reference(x, offset, fc.weight.detach().numpy(),
                             fc.bias.detach().numpy() if bias else None)
    with using_forms(ExportForms(shift=ShiftLowering(lowering))):
        assert torch.equal(fc.shift(xt, 1, fc.shift_axis), torch.from_numpy(sampled))
        out = fc(xt)
        out_nhwc = fc.forward_nhwc(xt.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_nhwc.detach().numpy(), ref, rtol=1e-5, atol=1e-5)


def test_cycle_fc_has_official_parameters() -> None:
    fc = CycleFC(8, 6, (1, 3))
    shapes = {k: tuple(v.shape) for k, v in fc.state_dict().items()}
    assert shapes == {"weight": (6, 8, 1, 1), "bias": (6,), "offset": (1, 16, 1, 1)}


def test_cycle_fc_accepts_checkpoint_without_offset_and_refuses_foreign_offsets() -> None:
    src, dst = CycleFC(6, 6, (1, 3)), CycleFC(6, 6, (1, 3))
    state = {k: v for k, v in src.state_dict().items() if k != "offset"}
    dst.load_state_dict(state, strict=True)
    assert torch.equal(dst.weight, src.weight)
    bad = dict(src.state_dict(), offset=torch.zeros(1, 12, 1, 1))
    with pytest.raises(RuntimeError, match="offsets differ"):
        dst.load_state_dict(bad, strict=True)


class _CycleShift(torch.nn.Module):
    """CycleFC's shift alone, channels-last as CycleMLP blocks run it."""

    def __init__(self, fc: CycleFC) -> None:
        super().__init__()
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc.shift(x, 3, self.fc.shift_axis - 1)


# The ops each lowering exports to, at least (aten op names in the exported graph).
_LOWERED_TO = {"slice": {"narrow", "cat"}, "roll": {"roll"}, "conv": {"conv2d"}}


def _graph_ops(program: torch.export.ExportedProgram) -> set[str]:
    return {str(n.target).split(".")[1] for n in program.graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("lowering", LOWERINGS)
def test_exported_shifts_stay_exact(lowering: str) -> None:
    """What a target exports (the forms as traced) equals the official shift bit for bit."""
    from edge_mlp.models.as_mlp import Shift

    torch.manual_seed(0)
    x = torch.randn(2, 11, 7, 9)  # 11 channels: groups of ceil(11/5) = 3 (a short last one)
    fc = CycleFC(10, 6, (3, 1))
    x_nhwc = torch.randn(2, 5, 6, 10)  # 10 channels: not a multiple of the period 3
    with using_forms(ExportForms(shift=ShiftLowering(lowering))):
        shifts = {dim: torch.export.export(Shift(5, dim, 11), (x,)) for dim in (2, 3)}
        cycle = torch.export.export(_CycleShift(fc), (x_nhwc,))
    for dim, program in shifts.items():
        assert _LOWERED_TO[lowering] <= _graph_ops(program), _graph_ops(program)
        assert torch.equal(program.module()(x), torch.from_numpy(axial_shift_reference(x.numpy(), 5, dim)))
    assert _LOWERED_TO[lowering] <= _graph_ops(cycle)
    expected = deform_sample_reference(x_nhwc.permute(0, 3, 1, 2).numpy(), fc.offset.numpy())
    assert torch.equal(cycle.module()(x_nhwc), torch.from_numpy(expected).permute(0, 2, 3, 1))


def test_conv_lowering_is_one_depthwise_conv_per_shift() -> None:
    from edge_mlp.models.as_mlp import Shift

    x = torch.randn(1, 8, 6, 6)
    with using_forms(ExportForms(shift=ShiftLowering.CONV)):
        program = torch.export.export(Shift(5, 3, 8), (x,))
    convs = [n for n in program.graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    assert len(convs) == 1 and not {"narrow", "slice", "cat", "roll", "pad"} & _graph_ops(program)
    assert Shift(5, 3, 8).kernel.sum(-1).eq(1).all()  # one 1 per channel
    assert "kernel" not in Shift(5, 3, 8).state_dict()  # official checkpoints load unchanged


@pytest.mark.parametrize("form", list(NormForm))
def test_exported_space_to_depth_is_the_official_one_in_every_norm_form(form: NormForm) -> None:
    """AS-MLP's PatchMerging as each target exports it: strided slices (stock), one permute
    (XNNPACK), four one-hot stride-2 depthwise convs (channels-last): the same values, bit for bit."""
    from edge_mlp.models.as_mlp import PatchMerging

    torch.manual_seed(0)
    merge = PatchMerging(6).eval()
    x = torch.randn(2, 6, 8, 10)
    official = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], 1)
    with using_forms(ExportForms(norms=form)):
        program = torch.export.export(_SpaceToDepth(merge), (x,))
    assert torch.equal(program.module()(x), official)
    if form is NormForm.CHANNELS_LAST:
        ops = _graph_ops(program)
        assert "conv2d" in ops and not {"slice", "permute", "view", "reshape"} & ops, ops
    assert "space_to_depth_kernel" not in merge.state_dict()  # official checkpoints load unchanged


class _SpaceToDepth(torch.nn.Module):
    def __init__(self, merge: torch.nn.Module) -> None:
        super().__init__()
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from edge_mlp.ops.export_forms import space_to_depth

        return space_to_depth(x, self.merge.space_to_depth_kernel)


def calls_on_input(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    """The op calls the user input flows through, in graph order (not those on weights alone)."""
    user_input = program.graph_signature.user_inputs[0]
    on_data: set = set()
    for node in program.graph.nodes:
        if node.name == user_input or any(a in on_data for a in node.all_input_nodes):
            on_data.add(node)
    return [n for n in program.graph.nodes if n in on_data and n.op == "call_function"]


@pytest.mark.parametrize("form", [NormForm.XNNPACK, NormForm.CHANNELS_LAST])
def test_a_folded_patch_merging_exports_as_one_strided_conv(form: NormForm) -> None:
    """In the delegate forms a folded PatchMerging normalizes its input and runs one 2x2 stride-2
    conv: no space-to-depth (permute, one-hot convs, concat), the official outputs up to float
    summation order."""
    from edge_mlp.models.as_mlp import PatchMerging
    from edge_mlp.ops.fold import fold_norm_affines

    torch.manual_seed(0)
    merge = PatchMerging(6).eval()
    torch.nn.init.normal_(merge.norm.weight)
    torch.nn.init.normal_(merge.norm.bias)
    x = 3 * torch.randn(2, 6, 8, 10) + 1
    official = merge(x)
    folded, names = fold_norm_affines(merge)
    assert names == ["norm"]
    with using_forms(ExportForms(norms=form)):
        program = torch.export.export(folded, (x,))
    exported = program.module()(x)
    assert exported.shape == official.shape == (2, 12, 4, 5)
    assert (exported - official).abs().max() <= 1e-5 * (official.max() - official.min())
    on_data = calls_on_input(program)  # (the kernel's reshape / permute fold away)
    ops = {str(n.target).split(".")[1] for n in on_data}
    assert not {"permute", "cat", "slice", "view", "reshape"} & ops, ops
    convs = [tuple(n.args[1].meta["val"].shape) for n in on_data if "conv" in str(n.target)]
    averaging = (1, 6, 1, 1)  # the XNNPACK norm's channel means of its statistics
    assert [shape for shape in convs if shape != averaging] == [(12, 6, 2, 2)], convs


@pytest.mark.parametrize("form", list(NormForm))
def test_exported_group_norm_forms_match_the_stock_kernel(form: NormForm) -> None:
    from edge_mlp.ops.export_forms import GroupNorm1

    torch.manual_seed(0)
    norm = GroupNorm1(1, 12).eval()
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = 3 * torch.randn(2, 12, 7, 5) + 1
    with using_forms(ExportForms(norms=form)):
        program = torch.export.export(norm, (x,))
    assert torch.allclose(program.module()(x), torch.nn.functional.group_norm(x, 1, norm.weight, norm.bias, norm.eps),
                          atol=1e-5, rtol=1e-5)
    if form is NormForm.CHANNELS_LAST:  # every op 4-D: litert's layout pass runs it channels-last
        shapes = [n.meta["val"].dim() for n in program.graph.nodes
                  if n.op == "call_function" and hasattr(n.meta.get("val"), "dim") and n.args[0].op != "get_attr"]
        assert all(d == 4 for d in shapes), shapes


def test_the_channels_last_group_norm_takes_each_statistic_in_one_mean() -> None:
    """LiteRT's form averages (C, H, W) in one MEAN per statistic (mean, variance), not a
    per-channel mean and then one over the channels: one op fewer per statistic, and faster."""
    from edge_mlp.ops.export_forms import GroupNorm1

    norm = GroupNorm1(1, 12).eval()
    x = torch.randn(2, 12, 7, 5)
    with using_forms(ExportForms(norms=NormForm.CHANNELS_LAST)):
        program = torch.export.export(norm, (x,))
    means = [n for n in program.graph.nodes if n.op == "call_function" and str(n.target).startswith("aten.mean")]
    assert [sorted(int(d) % 4 for d in n.args[1]) for n in means] == [[1, 2, 3], [1, 2, 3]], means


def test_the_xnnpack_group_norm_averages_the_channels_with_a_1x1_conv() -> None:
    """ExecuTorch's form takes each statistic's channel mean as a 1x1 conv of weight 1/C, with eps
    as the variance conv's bias: no reshape, permute or add of eps on the tiny statistics, each of
    which was one more XNNPACK kernel for the runtime to go around."""
    from edge_mlp.ops.export_forms import GroupNorm1

    norm = GroupNorm1(1, 12, eps=1e-3).eval()
    x = torch.randn(2, 12, 7, 5)
    with using_forms(ExportForms(norms=NormForm.XNNPACK)):
        program = torch.export.export(norm, (x,))
    on_data = calls_on_input(program)
    ops = [str(n.target).split(".")[1] for n in on_data]
    assert sorted(ops) == sorted(["mean", "conv2d", "sub", "mul", "mean", "conv2d", "rsqrt", "mul", "mul", "add"]), ops
    convs = [n for n in on_data if "conv" in str(n.target)]
    assert [tuple(n.args[1].meta["val"].shape) for n in convs] == [(1, 12, 1, 1)] * 2
    assert [len(n.args) > 2 and n.args[2] is not None for n in convs] == [False, True]  # eps rides the variance's
    assert torch.allclose(program.module()(x), torch.nn.functional.group_norm(x, 1, norm.weight, norm.bias, 1e-3),
                          atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", [NormForm.XNNPACK, NormForm.CHANNELS_LAST])
def test_an_unfolded_group_norm_multiplies_the_full_tensor_twice(form: NormForm) -> None:
    """gamma joins the tiny rsqrt scale before it meets the activation: the full-size multiplies
    are the variance's square and the scaling, not a third `* gamma` (a full pass in the delegates)."""
    from edge_mlp.ops.export_forms import GroupNorm1

    norm = GroupNorm1(1, 12).eval()
    x = torch.randn(2, 12, 7, 5)
    with using_forms(ExportForms(norms=form)):
        program = torch.export.export(norm, (x,))
    full_muls = [n for n in program.graph.nodes if n.op == "call_function" and str(n.target).startswith("aten.mul")
                 and tuple(n.meta["val"].shape) == tuple(x.shape)]
    assert len(full_muls) == 2, [str(n.target) for n in full_muls]
