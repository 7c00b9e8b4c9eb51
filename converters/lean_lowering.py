"""ExecuTorch's XNNPACK lowering without the work that cannot change its result.

Why: lowering costs tens of milliseconds per graph node, and most of it is re-tracing the whole
graph. Three kinds of re-trace change nothing for our models:
- XNNPACK's `preprocess` runs 17 passes, and most re-trace even when they found nothing to
  rewrite (an upsample pass, an SDPA pass, two batch-norm passes, a Conv1d pass...); the first two
  also trace their pattern graphs once per process (about 5 s);
- the partitioner's path of `to_edge_transform_and_lower` decomposes the program a third time
  after preserving the ops XNNPACK takes, when nothing is left to decompose;
- every re-trace deep-copies each node's provenance chain (`NodeSource.from_node`), which grows by
  one record per pass (converters/provenance.py).

Besides, each program a pass rebuilds is verified again, and the edge dialect's dtype check runs
the whole graph through an interpreter on fake tensors: as_mlp_mobile int8 at 224 ran it 10 times
on 2 distinct graphs, 3.6 s of a 37.8 s lowering.

`lean_lowering()` skips a pass while the op it rewrites is absent from the graph (a pass this
module does not know always runs), skips a decomposition of a program that is functional already
and holds none of the table's ops (ExecuTorch's own test on its other partitioner path), runs the
dtype check once per distinct graph (the same ops reading the same dtypes in the same argument
positions pass or fail it alike), and shares the provenance records instead of copying them. The
`.pte` bytes stay the same (tests/test_lean_lowering.py; measured on every model x precision);
int8 lowering takes about half the time.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .provenance import shared_provenance

if TYPE_CHECKING:
    import torch


_MAX_WITH_INDICES = ("aten.max_pool2d_with_indices.default", "aten.max.dim")


def _edge_ops(gm: torch.fx.GraphModule) -> set[Any]:
    return {n.target for n in gm.graph.nodes if n.op == "call_function"}


def _nodes(gm: torch.fx.GraphModule, target: Any) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target == target]


def _pass_triggers() -> dict[str, Callable[[torch.fx.GraphModule], bool]]:
    """Pass name -> whether the pass can find something to rewrite in this graph (each test is
    what the pass's own `call` looks for first: with no such node its only effect is a re-trace)."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.passes.memory_format_ops_pass import MemoryFormatOpsMap

    aten = exir_ops.edge.aten
    batch_norms = {aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default,
                   aten._native_batch_norm_legit.default}
    return {
        # its patterns are `upsample_bilinear2d.vec` graphs; it rewrites no other op
        "ConvertToUpsampleBilinear2d": lambda gm: aten.upsample_bilinear2d.vec in _edge_ops(gm),
        # its patterns need a softmax and batched matmuls
        "ConvertToSDPAPass": lambda gm: {aten._softmax.default, aten.bmm.default} <= _edge_ops(gm),
        "FuseBatchNormPass": lambda gm: bool(batch_norms & _edge_ops(gm)),
        "DecomposeBatchNorm": lambda gm: bool(batch_norms & _edge_ops(gm)),
        "PReLUReshapePass": lambda gm: aten._prelu_kernel.default in _edge_ops(gm),
        "Conv1dUnsqueezePass": lambda gm: any(n.meta["val"].dim() == 3 for n in _nodes(gm, aten.convolution.default)),
        "DecomposeConcatenate": lambda gm: any(len(n.args[0]) > 5 for n in _nodes(gm, aten.cat.default)),
        "RemoveRedundantCopyPass": lambda gm: aten._to_copy.default in _edge_ops(gm),
        "PropagateCustomMetaPass": lambda gm: any("custom" in n.meta for n in gm.graph.nodes),
        "FuseActivationPass": lambda gm: bool({aten.relu.default, aten.hardtanh.default} & _edge_ops(gm)),
        "DimOrderOpsRevertPass": lambda gm: bool(set(MemoryFormatOpsMap) & _edge_ops(gm)),
        # it rewrites the getitems of these two (by name, as the pass matches them)
        "RemoveGetItemPass": lambda gm: any(getattr(op, "__name__", "") in _MAX_WITH_INDICES for op in _edge_ops(gm)),
    }


def dtype_signature(gm: torch.fx.GraphModule) -> str:
    """What the edge dialect's dtype check of `gm` depends on: each op and the dtype at each of its
    tensor arguments and outputs (from the nodes' fake values), with every other argument as is."""
    import torch
    from torch.fx.node import map_arg

    def dtype(node: torch.fx.Node) -> Any:
        val = node.meta.get("val")
        if isinstance(val, (list, tuple)):
            return tuple(getattr(v, "dtype", None) for v in val)
        return getattr(val, "dtype", None)

    return repr([(str(n.target), map_arg((n.args, n.kwargs), dtype), dtype(n))
                 for n in gm.graph.nodes if n.op == "call_function"])


@contextmanager
def lean_lowering() -> Iterator[list[str]]:
    """Within: XNNPACK preprocess skips passes that cannot act, a decomposition with nothing to
    decompose is skipped, a graph the edge dtype check passed is not checked again, and provenance
    is shared. Yields what was skipped, in order: pass names (per lowered graph),
    "run_decompositions" and "dtype check"."""
    from executorch.backends.xnnpack import _passes as xnnpack_passes
    from executorch.backends.xnnpack._passes.xnnpack_pass import XNNPACKPass
    from executorch.exir.graph_module import contains_any_call_fn_target_op
    from executorch.exir.pass_base import ExportPass
    from executorch.exir.program._program import _transform
    from executorch.exir.verification import verifier
    from torch.export import ExportedProgram

    manager = xnnpack_passes.XNNPACKPassManager
    if getattr(manager.transform, "_edge_mlp_lean", False):  # already inside: nothing more to patch
        yield []
        return
    skipped: list[str] = []
    triggers = _pass_triggers()

    def transform(self: Any) -> Any:
        # XNNPACKPassManager.transform, with the skip (ExecuTorch 1.5's loop, otherwise unchanged)
        program = self.exported_program
        for pass_type in self.passes:
            can_act = triggers.get(pass_type.__name__)
            if can_act is not None and not can_act(program.graph_module):
                skipped.append(pass_type.__name__)
                continue
            if issubclass(pass_type, XNNPACKPass):
                program = _transform(program, pass_type(program))
            elif issubclass(pass_type, ExportPass):
                program = _transform(program, pass_type())
            else:
                raise RuntimeError(f"Expecting ExportPass or ExportPass(), but got pass: {pass_type}")
        return program

    transform._edge_mlp_lean = True  # type: ignore[attr-defined]
    original_transform = manager.transform

    original_decompose = ExportedProgram.run_decompositions
    functional: weakref.WeakSet[ExportedProgram] = weakref.WeakSet()

    def run_decompositions(self: ExportedProgram, decomp_table: Any = None, *args: Any, **kwargs: Any) -> ExportedProgram:
        # A program that came out of run_decompositions is functional already; with none of the
        # table's ops in it, another run only re-traces (ExecuTorch skips it so on its other
        # partitioner path; XNNPACK's path runs it after preserving the ops it takes)
        if self in functional and decomp_table is not None and not contains_any_call_fn_target_op(self.graph_module, decomp_table):
            skipped.append("run_decompositions")
            return self
        program = original_decompose(self, decomp_table, *args, **kwargs)
        functional.add(program)
        return program

    original_dtype_check = verifier._check_tensor_args_matching_op_allowed_dtype
    checked: set[str] = set()

    def check_dtypes(gm: torch.fx.GraphModule) -> None:
        signature = dtype_signature(gm)
        if signature in checked:
            skipped.append("dtype check")
            return
        original_dtype_check(gm)  # raises on a violation: the signature is remembered only if it passed
        checked.add(signature)

    manager.transform = transform
    ExportedProgram.run_decompositions = run_decompositions  # type: ignore[method-assign]
    verifier._check_tensor_args_matching_op_allowed_dtype = check_dtypes
    try:
        with shared_provenance():
            yield skipped
    finally:
        manager.transform = original_transform
        ExportedProgram.run_decompositions = original_decompose  # type: ignore[method-assign]
        verifier._check_tensor_args_matching_op_allowed_dtype = original_dtype_check
