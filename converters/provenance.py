"""torch.fx provenance shared instead of copied, for the lowering stages that re-trace a graph.

Why: every re-trace records, per node, where it came from (`NodeSource`), and its constructor
deep-copies the node's whole provenance chain, which grows by one record per pass. With the many
re-traces of ExecuTorch's, LiteRT's and Core ML's lowering of a model of ~1,500 nodes that copying
costs seconds per conversion. Nothing mutates a recorded chain, so a new list of the same records
is enough; the artifacts' bytes stay the same (tests/test_lean_lowering.py checks each target).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def shared_provenance() -> Iterator[bool]:
    """Within: `NodeSource` shares its predecessors' records. Yields whether it applies (a torch
    whose `NodeSource.__init__` has another signature keeps its own; so does a nested use)."""
    import torch.fx.traceback as fx_traceback

    node_source = fx_traceback.NodeSource
    original_init = node_source.__init__
    applies = (not getattr(original_init, "_edge_mlp_shared", False)
               and list(inspect.signature(original_init).parameters) == ["self", "node", "pass_name", "action"])
    if not applies:
        yield False
        return

    def init(self: Any, node: Any, pass_name: str = "", action: Any = None) -> None:
        # NodeSource.__init__ with `from_node` shared: the original deep-copies the whole chain
        original_init(self, None, pass_name, action)
        if node:
            self.node_info = node_source.NodeInfo(name=node.name, target=str(node.target), graph_id=id(node.graph))
            self.from_node = list(node.meta.get("from_node", ()))

    init._edge_mlp_shared = True  # type: ignore[attr-defined]
    node_source.__init__ = init
    try:
        yield True
    finally:
        node_source.__init__ = original_init
