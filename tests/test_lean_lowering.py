"""The lean ExecuTorch lowering (converters.lean_lowering) writes the bytes ExecuTorch's own does,
and shared provenance (converters.provenance) leaves every target's artifact as it was."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.nn as nn

from .conftest import small_job


def _lower(module: nn.Module, example: torch.Tensor, lean: bool) -> tuple[bytes, list[str]]:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from edge_mlp.converters.lean_lowering import lean_lowering

    program = torch.export.export(module.eval(), (example,))
    with lean_lowering() if lean else contextlib.nullcontext([]) as skipped:
        buffer = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    return buffer, list(skipped)


class _ConvBatchNormReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # one partition: one lowered graph
        return torch.relu(self.bn(self.conv(x)))


def test_a_pass_whose_op_is_in_the_graph_still_runs() -> None:
    """Batch norm and ReLU are there: their passes run (the fused graph is the same bytes); the
    passes for ops that are absent are skipped."""
    torch.manual_seed(0)
    module, x = _ConvBatchNormReLU(), torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    lean, skipped = _lower(module, x, lean=True)
    full, _ = _lower(module, x, lean=False)
    assert lean == full
    assert "ConvertToSDPAPass" in skipped and "ConvertToUpsampleBilinear2d" in skipped
    assert not {"FuseBatchNormPass", "FuseActivationPass"} & set(skipped)


def test_lowering_restores_executorch_and_torch_as_they_were() -> None:
    import torch.fx.traceback as fx_traceback
    from executorch.backends.xnnpack._passes import XNNPACKPassManager
    from torch.export import ExportedProgram

    from edge_mlp.converters.lean_lowering import lean_lowering

    def patched() -> tuple[Any, ...]:
        return XNNPACKPassManager.transform, ExportedProgram.run_decompositions, fx_traceback.NodeSource.__init__

    before = patched()
    with pytest.raises(KeyError), lean_lowering():
        during = patched()
        assert all(now is not then for now, then in zip(during, before))
        with lean_lowering() as inner:  # nested: the outer patches stay
            assert inner == []
        assert patched() == during
        raise KeyError("a failing lowering")
    assert patched() == before


def test_a_zoo_model_lowers_to_the_same_bytes(converted: Callable[..., Any], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """AS-MLP (its shift as depthwise convs, the norms in XNNPACK's form, GELU, patch merging)
    through the real converter, without the lean lowering: the bytes of the suite's own artifact."""
    import edge_mlp.converters.lean_lowering as lean_module
    import edge_mlp.converters.provenance as provenance
    from edge_mlp.convert import convert

    monkeypatch.setattr(lean_module, "lean_lowering", lambda: contextlib.nullcontext([]))
    monkeypatch.setattr(provenance, "shared_provenance", lambda: contextlib.nullcontext(False))
    (full,) = convert(small_job("as_mlp_mobile", "executorch", "fp32", str(tmp_path)))
    lean = converted("as_mlp_mobile", "executorch", "fp32")
    digest = [hashlib.sha256(r.artifact.read_bytes()).hexdigest() for r in (full, lean)]
    assert digest[0] == digest[1]


def _contents(artifact: Path) -> dict[str, str]:
    """sha256 of an artifact's files; a Core ML package's Manifest.json is left out (a fresh UUID
    per save)."""
    files = [artifact] if artifact.is_file() else sorted(p for p in artifact.rglob("*") if p.is_file())
    return {str(p.relative_to(artifact.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.name != "Manifest.json"}


@pytest.mark.parametrize("model,target", [("as_mlp_mobile", "tflite"), ("mixer_mobile", "coreml")])
def test_shared_provenance_leaves_the_artifact_as_it_was(converted: Callable[..., Any], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, model: str,
                                                         target: str) -> None:
    """int8 (PT2E, then LiteRT's three re-traces / Core ML's export of the Q/DQ graph) with the
    provenance copied as torch does: the same files as the suite's artifact, made with it shared."""
    import edge_mlp.converters.provenance as provenance
    from edge_mlp.convert import convert

    monkeypatch.setattr(provenance, "shared_provenance", lambda: contextlib.nullcontext(False))
    (copied,) = convert(small_job(model, target, "int8", str(tmp_path)))
    shared = converted(model, target, "int8")
    files = list(_contents(copied.artifact).values())
    assert files and files == list(_contents(shared.artifact).values())


def test_shared_provenance_restores_torch_and_nests() -> None:
    import torch.fx.traceback as fx_traceback

    from edge_mlp.converters.provenance import shared_provenance

    before = fx_traceback.NodeSource.__init__
    with pytest.raises(KeyError), shared_provenance() as applied:
        assert applied and fx_traceback.NodeSource.__init__ is not before
        with shared_provenance() as inner:
            assert not inner
        assert fx_traceback.NodeSource.__init__ is not before
        raise KeyError("a failing conversion")
    assert fx_traceback.NodeSource.__init__ is before
