"""Weight loading: wrappers and formats load; corrupt, wrong and malicious files give one clear error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import edge_mlp
from edge_mlp.errors import WeightsError
from edge_mlp.weights import load_weights, read_state_dict

TINY = dict(img_size=32, num_classes=10, depths=(1, 1, 1, 1), embed_dim=8)


def _model(**overrides):
    return edge_mlp.create_model("as_mlp_mobile", **{**TINY, **overrides}).eval()


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("wrap", ["raw", "model", "state_dict", "module_prefix", "nested"])
def test_pth_wrappers_load(tmp_path: Path, wrap: str) -> None:
    torch.manual_seed(1)
    src = _model()
    state = src.state_dict()
    obj = {
        "raw": state,
        "model": {"model": state, "epoch": 300, "max_accuracy": 81.3},
        "state_dict": {"state_dict": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
        "nested": {"model": {"state_dict": {f"module.{k}": v for k, v in state.items()}}},
    }[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    dst = load_weights(_model(), path)
    assert _params_equal(src, dst)


def test_safetensors_loads(tmp_path: Path) -> None:
    src = _model()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    assert _params_equal(src, load_weights(_model(), path))


def test_cycle_mlp_checkpoint_without_offsets_loads(tmp_path: Path) -> None:
    src = edge_mlp.create_model("cycle_mlp_mobile", num_classes=10, layers=(1, 1, 1, 1))
    state = {k: v for k, v in src.state_dict().items() if not k.endswith(".offset")}
    torch.save(state, tmp_path / "c.pth")
    dst = load_weights(edge_mlp.create_model("cycle_mlp_mobile", num_classes=10, layers=(1, 1, 1, 1)),
                       tmp_path / "c.pth")
    assert _params_equal(src, dst)


class _Exploit:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"model": {"head.weight": torch.zeros(1)}, "evil": _Exploit(marker)}
    path = tmp_path / "evil.pth"
    if how == "torch_zip":
        torch.save(payload, path)
    elif how == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload))
    # torch.save'd files name the blocked global (os.system); a raw protocol-4 pickle is already
    # rejected at its first opcode. Either way: a clear error, and the payload never ran.
    expected = "not a readable PyTorch checkpoint" if how == "plain_pickle" else "refusing to load .*could run code"
    with pytest.raises(WeightsError, match=expected):
        read_state_dict(path)
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    torch.save(_model().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint, possibly truncated"):
        read_state_dict(path)


@pytest.mark.parametrize("name,content", [
    ("notes.pth", b"these are not weights\n"),
    ("random.pt", bytes(range(256)) * 8),
    ("empty.pth", b""),
])
def test_not_a_checkpoint(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        read_state_dict(tmp_path / name)


def test_corrupt_safetensors(tmp_path: Path) -> None:
    (tmp_path / "w.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError, match="not a readable .safetensors file"):
        read_state_dict(tmp_path / "w.safetensors")


@pytest.mark.parametrize("obj,match", [
    ([torch.zeros(1)], "holds no state dict \\(found list\\)"),
    ({}, "holds no state dict"),
    ({"head.weight": torch.zeros(1), "epoch": 3}, "entry 'epoch' is a int, not a tensor"),
])
def test_not_a_state_dict(tmp_path: Path, obj: object, match: str) -> None:
    torch.save(obj, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match=match):
        read_state_dict(tmp_path / "x.pth")


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="weights file not found"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported weights file w.h5"):
        read_state_dict(tmp_path / "w.h5")


def test_mismatch_names_counts_and_keys_and_leaves_model_untouched(tmp_path: Path) -> None:
    state = _model(num_classes=1000).state_dict()  # wrong head size
    state["extra.weight"] = torch.zeros(3)
    del state["norm.bias"]
    torch.save(state, tmp_path / "w.pth")
    target = _model()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_weights(target, tmp_path / "w.pth")
    message = str(info.value)
    assert "\n" not in message
    assert "does not fit as_mlp_mobile: 1 missing, 1 unexpected, 2 wrong-shape keys" in message
    assert "missing: norm.bias" in message and "unexpected: extra.weight" in message
    assert "head.weight (file [1000, 64] vs model [10, 64])" in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_mismatch_lists_at_most_three_keys_per_kind(tmp_path: Path) -> None:
    torch.save(edge_mlp.create_model("mixer_mobile", img_size=32, num_blocks=1).state_dict(), tmp_path / "m.pth")
    with pytest.raises(WeightsError, match=r"unexpected: [^;]*\(\+\d+ more\)"):
        load_weights(_model(), tmp_path / "m.pth")
