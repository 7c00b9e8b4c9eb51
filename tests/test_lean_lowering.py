"""The lean ExecuTorch lowering (converters.lean_lowering) writes the bytes ExecuTorch's own does,
LiteRT's lowering with one re-trace fewer (converters.tflite.one_retrace_for_layout) writes the
bytes of litert-torch's own, and shared provenance (converters.provenance) leaves every target's
artifact as it was."""

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


def test_the_edge_dtype_check_runs_once_per_distinct_graph_and_still_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """ExecuTorch re-runs its dtype check (an interpreter pass over the whole graph) for every
    program a pass rebuilds; within the lean lowering a graph whose ops see the dtypes of one
    already checked is not checked again (same bytes), and a violation still raises every time."""
    from executorch.exir.verification import verifier

    from edge_mlp.converters.lean_lowering import dtype_signature, lean_lowering

    runs: list[str] = []  # the graphs the real check ran on
    check = verifier._check_tensor_args_matching_op_allowed_dtype
    monkeypatch.setattr(verifier, "_check_tensor_args_matching_op_allowed_dtype",
                        lambda gm: (runs.append(dtype_signature(gm)), check(gm))[1])
    module, x = _ConvBatchNormReLU(), torch.randn(1, 3, 8, 8)
    full, _ = _lower(module, x, lean=False)
    full_runs, runs[:] = len(runs), []
    lean, skipped = _lower(module, x, lean=True)
    assert lean == full
    assert len(runs) == len(set(runs)) < full_runs
    assert skipped.count("dtype check") == full_runs - len(runs)

    def violation(gm: torch.fx.GraphModule) -> None:
        raise verifier.SpecViolationError("dtype violation")

    monkeypatch.setattr(verifier, "_check_tensor_args_matching_op_allowed_dtype", violation)
    gm = torch.fx.symbolic_trace(nn.ReLU())
    with lean_lowering():
        for _ in range(2):  # a graph that failed is not remembered as checked
            with pytest.raises(verifier.SpecViolationError):
                verifier._check_tensor_args_matching_op_allowed_dtype(gm)
    assert verifier._check_tensor_args_matching_op_allowed_dtype is violation  # restored


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
    """int8 (PT2E, then LiteRT's re-traces / Core ML's export of the Q/DQ graph) with the provenance
    copied as torch does, every histogram's params searched on each request, and, for LiteRT, all
    three of its re-traces: the same files as the suite's artifact, made with the provenance shared,
    each search done once and LiteRT's canonicalization skipped."""
    import edge_mlp.converters.provenance as provenance
    import edge_mlp.converters.pt2e as pt2e
    import edge_mlp.converters.tflite as tflite
    from edge_mlp.convert import convert

    monkeypatch.setattr(provenance, "shared_provenance", lambda: contextlib.nullcontext(False))
    monkeypatch.setattr(tflite, "one_retrace_for_layout", lambda: contextlib.nullcontext([]))
    monkeypatch.setattr(pt2e, "histogram_qparams_once", lambda: contextlib.nullcontext([0, 0]))
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


class _ConvGeluConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x))).mean((2, 3))


def _litert_bytes(module: nn.Module, example: torch.Tensor, tmp_path: Path, lean: bool) -> tuple[bytes, list[int]]:
    import litert_torch

    from edge_mlp.converters.tflite import one_retrace_for_layout

    with one_retrace_for_layout() if lean else contextlib.nullcontext([]) as skipped:
        path = tmp_path / f"{lean}.tflite"
        litert_torch.convert(module.eval(), (example,)).export(str(path))
    return path.read_bytes(), list(skipped)


def test_litert_skips_only_a_canonicalization_its_pre_lower_trace_repeats(tmp_path: Path) -> None:
    """Convs in NCHW: the layout pass wraps them in NHWC functions, and the canonicalization that
    would inline them is skipped (the pre-lower decomposition does it): the same `.tflite` bytes."""
    torch.manual_seed(0)
    module, x = _ConvGeluConv(), torch.randn(1, 3, 8, 8)
    lean, skipped = _litert_bytes(module, x, tmp_path, lean=True)
    full, _ = _litert_bytes(module, x, tmp_path, lean=False)
    assert skipped and lean == full


def test_litert_canonicalizes_what_the_layout_pass_did_not_write(tmp_path: Path) -> None:
    """An average pool: the layout pass wraps it in a function that the composite builders, which
    run before the pre-lower decomposition, must see inlined: canonicalized as litert-torch does."""
    torch.manual_seed(0)
    module, x = nn.Sequential(nn.Conv2d(3, 8, 1), nn.AvgPool2d(2)), torch.randn(1, 3, 8, 8)
    lean, skipped = _litert_bytes(module, x, tmp_path, lean=True)
    full, _ = _litert_bytes(module, x, tmp_path, lean=False)
    assert not skipped and lean == full


def test_litert_canonicalization_is_restored() -> None:
    from litert_torch._convert import fx_passes

    from edge_mlp.converters.tflite import one_retrace_for_layout

    before = fx_passes.CanonicalizePass.call
    with pytest.raises(KeyError), one_retrace_for_layout():
        assert fx_passes.CanonicalizePass.call is not before
        raise KeyError("a failing conversion")
    assert fx_passes.CanonicalizePass.call is before


def test_histogram_params_are_searched_once_per_observer_state() -> None:
    """convert_pt2e asks a shared observer once per node it quantizes: the same graph and params
    with each search done once; a changed histogram is searched again."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.observer import HistogramObserver
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edge_mlp.converters.pt2e import histogram_qparams_once

    def quantized(once: bool) -> tuple[str, dict[str, torch.Tensor], list[int]]:
        torch.manual_seed(0)
        module, x = _ConvGeluConv().eval(), torch.randn(1, 3, 8, 8)
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(module, (x,)).module(), quantizer)
        for _ in range(3):
            prepared(torch.randn(1, 3, 8, 8))
        with histogram_qparams_once() if once else contextlib.nullcontext([0, 0]) as counts:
            graph = convert_pt2e(prepared)
        return graph.code, {k: v.clone() for k, v in graph.state_dict().items()}, list(counts)

    code, state, (computed, reused) = quantized(once=True)
    code_each, state_each, _ = quantized(once=False)
    assert code == code_each and state.keys() == state_each.keys()
    assert all(torch.equal(state[k], state_each[k]) for k in state)
    assert computed > 0 and reused > 0

    search = HistogramObserver.calculate_qparams
    observer = HistogramObserver()
    observer(torch.randn(64))
    with histogram_qparams_once() as counts:
        first = observer.calculate_qparams()
        observer(torch.randn(64) * 10)
        second = observer.calculate_qparams()
    assert counts == [2, 0] and not torch.equal(first[0], second[0])
    assert HistogramObserver.calculate_qparams is search  # restored


def test_histogram_range_search_gives_torchaos_answer() -> None:
    """The range search in Python floats returns what torchao's own search returns, on crafted
    histograms: sparse spikes, ties, heavy tails, float32 counts up to 2^24 and a float64 one.
    Three of these 300 need the bounds rounded to float32 as torch's comparison does (without that
    rounding they differ)."""
    import numpy as np
    from torchao.quantization.pt2e.observer import HistogramObserver

    from edge_mlp.converters.pt2e import histogram_range_search

    rng = np.random.default_rng(1)
    for i in range(300):
        observer = HistogramObserver()
        kind = i % 4
        if kind == 0:
            counts = rng.integers(0, 5, observer.bins).astype(np.float32) * float(rng.integers(1, 1 << 20))
        elif kind == 1:
            counts = np.zeros(observer.bins, np.float32)
            spikes = rng.integers(0, observer.bins, int(rng.integers(1, 40)))
            counts[spikes] = rng.integers(1, 1 << 24, spikes.size)
            if i % 8 == 1:
                counts = counts.astype(np.float64)
        elif kind == 2:
            bump = np.exp(-((np.arange(observer.bins) - rng.uniform(0, observer.bins)) / rng.uniform(5, 500)) ** 2)
            counts = (bump * 10 ** rng.uniform(2, 8)).astype(np.float32).round()
        else:
            counts = rng.pareto(1.5, observer.bins).astype(np.float32) * 1000
        observer.histogram = torch.from_numpy(counts)
        observer.min_val = torch.tensor(float(rng.uniform(-10, 0)))
        observer.max_val = torch.tensor(float(rng.uniform(0.1, 10)))
        expected = observer._non_linear_param_search()
        assert all(torch.equal(a, b) for a, b in zip(histogram_range_search(observer), expected)), i
