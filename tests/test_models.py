"""Model zoo: exact official sizes and state-dict layouts, small-size forward passes, overrides."""

from __future__ import annotations

import pytest
import torch

import edge_mlp
from edge_mlp.errors import ConfigError, UnknownModelError
from edge_mlp.models import resolve_config
from edge_mlp.options import ExportForms, ShiftLowering, using_forms
from edge_mlp.stats import model_stats

from .official_layouts import OFFICIAL_LAYOUTS, as_mlp_layout, cycle_mlp_layout, mixer_layout

OFFICIAL_PARAMS = {  # published counts at 224x224 with 1000 classes
    "as_mlp_tiny": 28_282_696,
    "as_mlp_small": 49_594_696,
    "as_mlp_base": 87_752_808,
    "cycle_mlp_b1": 15_155_400,
    "cycle_mlp_b5": 75_747_280,
    "mixer_s16": 18_528_264,
}
SMALL = 32  # every family works at 32x32: AS-MLP needs a multiple of 32, Mixer of its patch


def test_registry_lists_every_variant() -> None:
    assert set(edge_mlp.list_models()) == set(OFFICIAL_LAYOUTS)
    assert edge_mlp.list_models("mlp_mixer") == ["mixer_s32", "mixer_s16", "mixer_b32", "mixer_b16", "mixer_mobile"]


@pytest.mark.parametrize("name,params", OFFICIAL_PARAMS.items())
def test_official_parameter_counts_are_exact(name: str, params: int) -> None:
    assert model_stats(name).params == params


@pytest.mark.parametrize("name,params_m,gmacs", [
    ("as_mlp_mobile", 7.3, 1.1), ("mixer_mobile", 5.0, 1.0), ("cycle_mlp_mobile", 4.0, None),
])
def test_mobile_variants_have_the_documented_budget(name: str, params_m: float, gmacs: float | None) -> None:
    stats = model_stats(name)
    assert abs(stats.params / 1e6 - params_m) / params_m < 0.1
    if gmacs is not None:
        assert abs(stats.gmacs - gmacs) / gmacs < 0.1


@pytest.mark.parametrize("name", list(OFFICIAL_LAYOUTS))
def test_state_dict_layout_equals_official(name: str) -> None:
    with torch.device("meta"):
        model = edge_mlp.create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = OFFICIAL_LAYOUTS[name]()
    assert sorted(set(ours) ^ set(official)) == []
    assert ours == official


@pytest.mark.parametrize("name,layout,overrides", [
    ("as_mlp_tiny", as_mlp_layout(96, (2, 2, 6, 2), num_classes=10), {"num_classes": 10}),
    ("cycle_mlp_b1", cycle_mlp_layout((2, 2, 4, 2), (64, 128, 320, 512), (4, 4, 4, 4), num_classes=10),
     {"num_classes": 10}),
    ("mixer_s16", mixer_layout(16, 8, 512, img_size=64, num_classes=10), {"num_classes": 10, "img_size": 64}),
])
def test_official_layout_state_dict_loads_strict(name: str, layout: dict, overrides: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in layout.items()}
    for k in state:
        if k.endswith(".offset"):  # CycleFC offsets are the official constants, not weights
            state[k] = edge_mlp.create_model(name, **overrides).state_dict()[k]
    model = edge_mlp.create_model(name, **overrides)
    model.load_state_dict(state, strict=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(OFFICIAL_LAYOUTS))
def test_every_model_runs_in_eval_at_small_size(name: str) -> None:
    torch.manual_seed(0)
    model = edge_mlp.create_model(name, img_size=SMALL, num_classes=10).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, SMALL, SMALL))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name,size", [("as_mlp_mobile", 64), ("cycle_mlp_mobile", 48)])
def test_exact_lowerings_give_identical_models(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = edge_mlp.create_model(name, img_size=size, num_classes=10).eval()
    x = torch.randn(2, 3, size, size)
    outputs = {}
    with torch.inference_mode():
        for lowering in ShiftLowering:
            with using_forms(ExportForms(shift=lowering)):
                outputs[lowering] = model(x)
    for lowering in ShiftLowering.exact():
        assert torch.equal(outputs[ShiftLowering.SLICE], outputs[lowering]), lowering
    assert not torch.equal(outputs[ShiftLowering.SLICE], outputs[ShiftLowering.IDENTITY])  # forms reach the shift


@pytest.mark.parametrize("hw", [(32, 32), (33, 47), (72, 56), (100, 20)])
def test_cycle_mlp_takes_any_input_size(hw: tuple[int, int]) -> None:
    model = edge_mlp.create_model("cycle_mlp_mobile", num_classes=10).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, *hw))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_mixer_refuses_an_input_of_another_size_clearly() -> None:
    model = edge_mlp.create_model("mixer_mobile", img_size=64).eval()
    with pytest.raises(ValueError, match="built for 64x64 inputs, got 32x32"):
        model(torch.randn(1, 3, 32, 32))


def test_overrides_use_official_names_and_are_recorded() -> None:
    model = edge_mlp.create_model("as_mlp_mobile", img_size=64, num_classes=10, depths=(1, 1, 1, 1),
                                  shift_size=3, mlp_ratio=2.0)
    config = model.edge_config
    assert config.name == "as_mlp_mobile" and config.family == "as_mlp"
    assert config.input_size == (3, 64, 64) and config.num_classes == 10
    assert config.kwargs["embed_dim"] == 48 and config.kwargs["depths"] == (1, 1, 1, 1)
    assert config.to_dict()["kwargs"]["depths"] == [1, 1, 1, 1]
    assert len(model.layers[0].blocks) == 1
    cycle = edge_mlp.create_model("cycle_mlp_mobile", layers=(1, 1, 1, 1), embed_dims=(8, 16, 24, 32),
                                  mlp_ratios=(2, 2, 2, 2), transitions=(True, True, True, True))
    assert cycle.head.in_features == 32
    mixer = edge_mlp.create_model("mixer_mobile", patch_size=8, num_blocks=2, embed_dim=64, mlp_ratio=(0.5, 2.0))
    assert len(mixer.blocks) == 2 and mixer.blocks[0].mlp_channels.fc1.out_features == 128


def test_config_resolution_errors_are_clear() -> None:
    with pytest.raises(UnknownModelError, match="did you mean as_mlp_mobile"):
        edge_mlp.create_model("as_mlp_mobil")
    with pytest.raises(ConfigError, match="does not accept override\\(s\\) layers; accepted: img_size"):
        resolve_config("as_mlp_tiny", layers=(1, 1))
    with pytest.raises(ConfigError, match="invalid config for as_mlp_tiny: .*odd"):
        edge_mlp.create_model("as_mlp_tiny", shift_size=4)
    with pytest.raises(ConfigError, match="does not accept override\\(s\\) shift_lowering"):
        edge_mlp.create_model("cycle_mlp_b1", shift_lowering="roll")  # an export form, not a config
