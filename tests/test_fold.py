"""Norm affines folded into the layer after them (edge_mlp.ops.fold): the same outputs, in every
export form, with a multiply and an add less per folded norm."""

from __future__ import annotations

import pytest
import torch

from edge_mlp.models import create_model
from edge_mlp.ops.fold import fold_norm_affines
from edge_mlp.options import ExportForms, NormForm, ShiftLowering, using_forms

from .conftest import TEST_CLASSES, TEST_IMG, TEST_MODELS

# Which norms feed something other than a 1x1 conv / linear over their channels, by family: the
# AS-MLP stem's norm (the first block's residual), AxialShift.norm1 (a GELU), CycleMLP's norm1 (the
# CycleFCs, which zero-fill shifted-in borders) and Mixer's norm1 (the token MLP). Every other norm folds.
NOT_FOLDABLE = {
    "as_mlp_mobile": ("patch_embed.norm", "axial_shift.norm1"),
    "cycle_mlp_mobile": ("norm1",),
    "mixer_mobile": ("norm1",),
}


def _norms(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm))}


def _model(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, img_size=TEST_IMG, num_classes=TEST_CLASSES, **{**TEST_MODELS[name], **extra}).eval()
    for norm in _norms(model).values():  # affines far from (1, 0), as trained ones are
        torch.nn.init.uniform_(norm.weight, 0.2, 2.0)
        torch.nn.init.normal_(norm.bias, std=0.5)
    return model


def _call_ops(program: torch.export.ExportedProgram) -> list[str]:
    return [n.target.__name__ for n in program.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("form", [NormForm.XNNPACK, NormForm.CHANNELS_LAST])
@pytest.mark.parametrize("name", list(TEST_MODELS))
def test_folded_norms_export_the_same_outputs_with_two_ops_less_each(name: str, form: NormForm) -> None:
    model = _model(name)
    folded, names = fold_norm_affines(model)
    assert set(names) == {n for n in _norms(model) if not n.endswith(NOT_FOLDABLE[name])}
    assert all(m.weight is not None for m in _norms(model).values())  # the model itself is untouched
    x = torch.randn(2, 3, TEST_IMG, TEST_IMG)
    with torch.no_grad():
        expected = model(x)  # eager, stock kernels
    programs = {}
    with using_forms(ExportForms(shift=ShiftLowering.CONV, norms=form)):
        for key, m in (("model", model), ("folded", folded)):
            programs[key] = torch.export.export(m, (x,))
    with torch.no_grad():
        got = programs["folded"].module()(x)
    assert (got - expected).abs().max() <= 1e-5 * (expected.max() - expected.min())
    before, after = _call_ops(programs["model"]), _call_ops(programs["folded"])
    # A norm the form leaves as one stock op (LayerNorm outside ExecuTorch) loses its weight and
    # bias operands; a spelled-out one loses its multiply and add.
    stock_without_affine = sum(1 for n in programs["folded"].graph.nodes
                               if n.op == "call_function" and n.target.__name__ == "layer_norm.default"
                               and n.args[2:4] == (None, None))
    for op in ("mul.Tensor", "add.Tensor"):
        removed = before.count(op) - after.count(op)
        assert removed + stock_without_affine == len(names), (op, removed, stock_without_affine)


def test_a_backbone_folds_only_inside_its_blocks() -> None:
    """No final norm or head in a backbone; a feature map's last norm is a block's, never the output."""
    model = _model("as_mlp_mobile", features_only=True)
    folded, names = fold_norm_affines(model)
    assert names and not any(n == "norm" for n in names)
    x = torch.randn(1, 3, TEST_IMG, TEST_IMG)
    with torch.no_grad():
        for a, b in zip(model(x), folded(x)):
            assert (a - b).abs().max() <= 1e-5 * (a.max() - a.min())
