"""ExecuTorch `.pte` with the XNNPACK delegate (fp32, or int8 via XNNPACKQuantizer PT2E)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edge_mlp.errors import EdgeMlpError
from edge_mlp.options import NormForm, Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, Shell, float_spec, register, size_entry

if TYPE_CHECKING:
    import numpy as np

    from edge_mlp.timing import Latency, OpProfile

# Graph bookkeeping nodes that are neither compute nor a delegation failure.
_BOOKKEEPING = {"getitem", "executorch_call_delegate", "output", "placeholder"}
# executor_runner reports one mean per process: p10/p90 come from repeating it.
EXECUTOR_RUNNER_REPEATS = 5
# ETDump events that contain others (or precede execution) rather than being ops.
_CONTAINER_EVENTS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Method::init", "Program::load_method"}
_EXECUTED = re.compile(r"Model executed successfully (?P<count>\d+) time\(s\) in (?P<ms>[\d.]+) ms")


class _Program(HostModel):
    def __init__(self, artifact: Path, threads: int | None) -> None:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        from edge_mlp.quiet import native_stderr

        with native_stderr():  # the threadpool's cpuinfo probing logs to fd 2
            if threads is not None:
                portable_lib._unsafe_reset_threadpool(threads)  # XNNPACK's pool; the only knob the pybindings expose
            self.program = Runtime.get().load_program(str(artifact))
            self.methods = {"forward": self.program.load_method("forward")}

    def _method(self, x: np.ndarray):
        """The method of x's size: `forward`, or `forward_HxW` of a multi-size program."""
        name = size_entry(tuple(x.shape[-2:]), "forward")
        if name not in self.methods and name in self.program.method_names:
            from edge_mlp.quiet import native_stderr

            with native_stderr():
                self.methods[name] = self.program.load_method(name)
        return self.methods.get(name, self.methods["forward"])

    def bind(self, x: np.ndarray) -> Callable[[], object]:
        import torch

        inputs, method = [torch.from_numpy(x)], self._method(x)
        return lambda: execute(method, inputs)

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import numpy as np
        import torch

        results = execute(self._method(x), [torch.from_numpy(np.ascontiguousarray(x, np.float32))])
        return [r.numpy() for r in results]


def execute(method: Any, inputs: list) -> Any:
    """`method.execute(inputs)` with PyTorch's intra-op threads at 1. The pybindings copy input
    and output tensors with PyTorch ops, and on more threads a large copy wakes PyTorch's OpenMP
    team, which then spins for about 8 ms: through the next execution, on a core that XNNPACK's own
    threads need (measured: a chain of 41 1x1 convs at 48x56x56, 2 threads, 6.6 ms against 3.4 ms).
    A deployed runner has no PyTorch at all."""
    from edge_mlp.bench.measure import torch_threads

    with torch_threads(1):
        return method.execute(inputs)


def dequantize_ops(program: Any) -> set:
    """The PT2E dequantize ops a program calls (none in fp32)."""
    return {node.target for node in program.graph.nodes if node.op == "call_function"
            and getattr(node.target, "namespace", None) in ("quantized_decomposed", "torchao")
            and "dequantize" in node.target.name()}


def parse_executor_runner(text: str) -> tuple[int, float]:
    """ExecuTorch `executor_runner` output -> (executions, mean ms per execution)."""
    match = _EXECUTED.search(text)
    if match is None:
        raise EdgeMlpError("executor_runner output has no 'Model executed successfully N time(s) in X ms' line "
                           "(an older runner without --num_executions timing, or it failed)")
    count = int(match["count"])
    return count, float(match["ms"]) / count


def executor_runner_latency(means_ms: list[float], executions: int) -> Latency:
    from edge_mlp.timing import Latency

    return Latency.from_samples(means_ms, runs=executions * len(means_ms))


@register
class ExecuTorchConverter(Converter):
    target = "executorch"
    suffix = ".pte"
    precisions = (Precision.FP32, Precision.INT8)
    typical_seconds = {"fp32": 15, "int8": 62}  # benchmarks/results/convert_time.json
    default_precision = Precision.INT8
    preferred_lowering = ShiftLowering.CONV
    lowering_reason = "conv: the delegate runs each shift as one depthwise conv"
    # Norms, means and space-to-depth in forms XNNPACK takes whole (edge_mlp.ops.export_forms).
    norm_form = NormForm.XNNPACK
    folds_norm_affines = True
    runtime_packages = ("executorch", "torch", "torchao")
    host_runtime_package = "executorch"
    bench_backend = "executorch-xnnpack"
    apps = ("android", "ios")
    device_runner = "executor_runner"
    int8_scheme = ("static int8: per-channel symmetric weights, per-tensor affine activations "
                   "(PT2E Q/DQ; ops XNNPACKQuantizer does not annotate stay float)")
    int8_tool = "executorch XNNPACKQuantizer + torchao PT2E"
    multi_size = "one method per size in one program (forward, forward_HxW): static graphs XNNPACK delegates whole"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.devtools.backend_debug import get_delegation_info
        from executorch.exir import to_edge_transform_and_lower
        from executorch.exir.passes.constant_prop_pass import constant_prop_pass

        from .lean_lowering import lean_lowering
        from .pt2e import quantize_request

        model, x = request.model, request.example
        quantization = None
        if request.precision.calibrated:
            model, _, quantization = quantize_request(self, request)
        # One method per input size (`forward` for the first, `forward_HxW` for the others): each
        # is a static graph XNNPACK delegates whole.
        entries = ["forward"] + [size_entry(size, "forward") for size in request.sizes[1:]]
        programs = {}
        with request.stage("export"):
            for entry, example in zip(entries, request.examples()):
                program = torch.export.export(model, (example,))
                # Fold ops on constants into constants: CycleFC's flatten of its conv-shaped weight
                # (XNNPACK takes an fp32 Linear only with a constant weight), the XNNPACK GroupNorm's
                # averaging kernel (in int8 its quantize too, giving an int8 weight; XNNPACK's conv
                # takes no weight computed at run time) and reshaped affine. Never a dequantize:
                # folding the weights' dequantize would store them as float.
                with torch.no_grad():  # folded weights are constants, not parameters needing grad
                    program = constant_prop_pass(program, custom_skip_targets=dequantize_ops(program))
                programs[entry] = program
        with request.stage("lower"), lean_lowering():
            edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
            info = get_delegation_info(edge.exported_program("forward").graph_module)
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
            outputs=request.output_specs(),
            quantization=quantization,
            coverage=coverage,
            entry_points=entries,
        )

    def coverage_summary(self, coverage: dict) -> str:
        return f"{coverage['compute_ops_delegated']}/{coverage['compute_ops_total']} ops delegated"

    def load(self, artifact: Path, threads: int | None = None, **options: Any) -> HostModel:
        return _Program(artifact, threads)

    def profile(self, artifact: Path, x: np.ndarray, threads: int, runs: int) -> OpProfile:
        """ETDump of `runs` executions read with the devtools Inspector. Inside the XNNPACK delegate
        ETDump records each XNNPACK kernel (e.g. "Fully Connected (NC, F32) GEMM"), not the aten
        ops it came from, so rows are kernels; ops left outside the delegate appear as
        "native_call_<op>" rows. No ETRecord is needed for these rows."""
        import tempfile
        import warnings

        import torch
        from executorch.devtools import Inspector
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        from edge_mlp.quiet import native_stderr
        from edge_mlp.timing import OpProfile

        with native_stderr():  # the threadpool logs its reset to fd 2
            portable_lib._unsafe_reset_threadpool(threads)
            program = Runtime.get().load_program(str(artifact), enable_etdump=True, debug_buffer_size=0)
            method = program.load_method("forward")
        inputs = [torch.from_numpy(x)]
        execute(method, inputs)  # warm-up: recorded too, dropped below
        for _ in range(runs):
            execute(method, inputs)
        with tempfile.TemporaryDirectory(prefix="edge-mlp-etdump-") as tmp:
            etdump = Path(tmp) / "run.etdp"
            program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Output Buffer not found": no debug buffer asked for
                inspector = Inspector(etdump_path=str(etdump))
        per_run: list[list[tuple[str, float]]] = [[] for _ in range(runs)]
        totals: list[float] = []
        for block in inspector.event_blocks:
            for event in block.events:
                raw = list(event.perf_data.raw)[-runs:] if event.perf_data is not None else []
                if event.name == "Method::execute":
                    totals = raw
                if event.name in _CONTAINER_EVENTS or len(raw) != runs:
                    continue
                name = re.sub(r" #\d+$", "", event.name)
                for i, ms in enumerate(raw):
                    per_run[i].append((name, ms))
        return OpProfile.from_runs("ETDump + devtools Inspector: XNNPACK kernels inside the delegate",
                                   per_run, totals)

    def run_on_device(self, phone: Shell, model_path: str, runner_path: str, threads: int, warmup: int,
                      runs: int) -> tuple[Latency, float | None]:
        means = []
        for _ in range(EXECUTOR_RUNNER_REPEATS):
            count, mean = parse_executor_runner(phone.shell(
                f"{runner_path} --model_path={model_path} --num_executions={runs} --cpu_threads={threads}"))
            means.append(mean)
        return executor_runner_latency(means, count), None
