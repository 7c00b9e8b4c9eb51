"""ExecuTorch `.pte` with the XNNPACK delegate (fp32, or int8 via XNNPACKQuantizer PT2E)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edge_mlp.manifest import QuantizationInfo
from edge_mlp.ops.export_forms import delegate_forms

from ._pt2e import quantize_request
from .base import ConversionOutput, ConversionRequest, Converter, float_spec, register

# Graph bookkeeping nodes that are neither compute nor a delegation failure.
_BOOKKEEPING = {"getitem", "executorch_call_delegate", "output", "placeholder"}


@register
class ExecuTorchConverter(Converter):
    target = "executorch"
    suffix = ".pte"
    precisions = ("fp32", "int8")
    default_precision = "int8"
    preferred_lowering = "slice"
    lowering_reason = (
        "slice: XNNPACK delegates pad/slice/cat; torch.roll stays outside the delegate "
        "(probe: 117 vs 35 non-delegated nodes)"
    )
    runtime_packages = ("executorch", "torch", "torchao")
    host_runtime_package = "executorch"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        # Norms, means and space-to-depth in forms XNNPACK takes whole (edge_mlp.ops.export_forms).
        with delegate_forms():
            return self._convert(request)

    def _convert(self, request: ConversionRequest) -> ConversionOutput:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower
        from executorch.exir.passes.constant_prop_pass import constant_prop_pass

        model, x = request.model, request.example
        quantization = None
        if request.precision == "int8":
            model, _ = quantize_request(self, request)
            quantization = QuantizationInfo(
                scheme="static int8: per-channel symmetric weights, per-tensor affine activations "
                       "(PT2E Q/DQ; ops XNNPACKQuantizer does not annotate stay float)",
                tool="executorch XNNPACKQuantizer + torchao PT2E",
            )
        with request.stage("export"):
            program = torch.export.export(model, (x,))
            if request.precision == "fp32":
                # Fold ops on weights (CycleFC's flatten of its conv-shaped weight) into constants:
                # XNNPACK takes an fp32 Linear only with a constant weight. Not for int8, where it
                # would fold the weights' dequantize and store them as float.
                with torch.no_grad():  # folded weights are constants, not parameters needing grad
                    program = constant_prop_pass(program)
        with request.stage("lower"):
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            info = get_delegation_info(edge.exported_program().graph_module)
            buffer = edge.to_executorch().buffer
        with request.stage("save"):
            path = request.work_dir / f"{request.stem}{self.suffix}"
            path.write_bytes(buffer)
        by_op = {
            op: {"delegated": b.delegated, "non_delegated": b.non_delegated}
            for op, b in sorted(info.delegation_by_operator.items())
        }
        outside = {op: c["non_delegated"] for op, c in by_op.items()
                   if c["non_delegated"] and op not in _BOOKKEEPING}
        delegated = sum(c["delegated"] for c in by_op.values())
        coverage = {
            "delegate": "XnnpackBackend",
            "delegated_subgraphs": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes,
            "non_delegated_nodes": info.num_non_delegated_nodes,
            "compute_ops_delegated": delegated,
            "compute_ops_total": delegated + sum(outside.values()),
            "non_delegated_compute_ops": outside,
            "by_operator": by_op,
        }
        return ConversionOutput(
            path=path,
            input=float_spec("input", x.shape, "NCHW"),
            output=float_spec("logits", (1, request.num_classes), "NC"),
            quantization=quantization,
            coverage=coverage,
        )

    def coverage_summary(self, coverage: dict) -> str:
        return f"{coverage['compute_ops_delegated']}/{coverage['compute_ops_total']} ops delegated"

    def load(self, artifact: Path, **options: Any) -> Callable[[np.ndarray], np.ndarray]:
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(str(artifact)).load_method("forward")
        return lambda x: method.execute([torch.from_numpy(np.ascontiguousarray(x, np.float32))])[0].numpy()
