"""Core ML `.mlpackage` (ML program, iOS 17+): fp32, fp16 compute, W8 weight-only, W8A8 int8, and
(iOS 18 opset) int4 per-block weights (w4) and 4- / 6-bit k-means palettized weights (pal4, pal6).

Converts anywhere. Core ML itself only predicts on macOS, where `load` uses `MLModel.predict`;
elsewhere `load` runs the package's MIL program in edge-mlp's numpy interpreter (`edge_mlp.mil`),
which checks the program's arithmetic, not Apple's kernels.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from edge_mlp.errors import EdgeMlpError
from edge_mlp.options import Precision, ShiftLowering

from .base import ConversionOutput, ConversionRequest, Converter, HostModel, float_spec, op_histogram, register, size_entry

if TYPE_CHECKING:
    import numpy as np
    import torch

# Weight compression after conversion (coremltools.optimize.coreml), per precision. Per-block int4
# scales and per-grouped-channel LUTs exist from the iOS 18 opset on; W8 is iOS 16 compatible.
IOS18_PRECISIONS = (Precision.W4, Precision.PAL4, Precision.PAL6)
INT4_BLOCK = 32  # input channels per int4 scale
LUT_GROUP = 16  # output channels sharing one palettization LUT
# --max-drop: the blocks it keeps get 8-bit LUTs, near-lossless at half of fp16's size. Uniform
# (evenly spaced) entries: as exact as per-channel int8 at 8 bits, and seconds where k-means with
# 256 clusters takes minutes per model.
KEPT_NBITS = 8
KEPT_SCHEME = f"{KEPT_NBITS}-bit palettization (uniform LUT, one per {LUT_GROUP} output channels)"
# Weights of at most this many elements (norms, biases, small convs) stay fp16: coremltools'
# default threshold; compressing them saves little and costs accuracy.
WEIGHT_THRESHOLD = 2048
_COMPRESSION: dict[Precision, tuple[str, str]] = {  # precision -> (manifest scheme, tool)
    Precision.W8: ("weight-only int8: per-channel symmetric weights, fp16 activations and compute",
                   "coremltools.optimize.coreml.linear_quantize_weights"),
    Precision.W4: (f"weight-only int4: symmetric per-block weights (one fp16 scale per {INT4_BLOCK} input "
                   f"channels of an output channel; per largest block that divides the inputs where {INT4_BLOCK} "
                   "does not), fp16 activations and compute; iOS 18 opset",
                   "coremltools.optimize.coreml.linear_quantize_weights"),
    Precision.PAL4: (f"4-bit k-means palettized weights, one 16-entry fp16 LUT per {LUT_GROUP} output channels (per "
                     f"largest group that divides the outputs where {LUT_GROUP} does not), fp16 "
                     "activations and compute; iOS 18 opset",
                     "coremltools.optimize.coreml.palettize_weights"),
    Precision.PAL6: (f"6-bit k-means palettized weights, one 64-entry fp16 LUT per {LUT_GROUP} output channels (per "
                     f"largest group that divides the outputs where {LUT_GROUP} does not), fp16 "
                     "activations and compute; iOS 18 opset",
                     "coremltools.optimize.coreml.palettize_weights"),
}


BATCH = 32  # images per MIL interpreter call: its per-op Python cost is paid once per batch


class _Predictor(HostModel):
    """Wraps `predict(name_in -> array) -> {name: array}` of Core ML or the MIL interpreter, one per
    function of a multifunction (multi-size) package, opened when first needed."""

    def __init__(self, open_function: Callable[[str], tuple[Callable[[dict], dict], str, list[str]]],
                 functions: Sequence[str]) -> None:
        self.open_function, self.functions = open_function, set(functions)
        self.opened: dict[str, tuple[Callable[[dict], dict], str, list[str]]] = {}

    def _open(self, x: np.ndarray) -> tuple[Callable[[dict], dict], str, list[str]]:
        function = size_entry(tuple(x.shape[-2:]), "main")
        if function not in self.functions:
            function = "main"
        if function not in self.opened:
            self.opened[function] = self.open_function(function)
        return self.opened[function]

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        import numpy as np

        predict, name_in, names_out = self._open(x)
        out = predict({name_in: np.ascontiguousarray(x, np.float32)})
        return [np.asarray(out[name], dtype=np.float32) for name in names_out]

    def batch_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """The MIL interpreter takes BATCH images per call (`MilInterpreter.takes_batches`); Core ML's
        own predict, one."""
        import numpy as np

        predict, name_in, names_out = self._open(x)
        if not getattr(predict, "takes_batches", False):
            return super().batch_outputs(x)
        runs = [predict({name_in: np.ascontiguousarray(x[i:i + BATCH], np.float32)}) for i in range(0, len(x), BATCH)]
        return [np.concatenate([np.asarray(r[name], dtype=np.float32) for r in runs]) for name in names_out]


def function_names(artifact: Path) -> list[str]:
    """The functions of a multifunction package (empty for a single-function one)."""
    import coremltools as ct

    return [f.name for f in ct.utils.load_spec(str(artifact)).description.functions]


@contextlib.contextmanager
def earlier_objects_frozen() -> Iterator[None]:
    """coremltools' convert() ends with a full gc.collect(), which scans every object of the process:
    torch's modules and whatever the caller holds (0.3-0.4 s measured, more in a long-lived process).
    Frozen meanwhile, objects that existed before are not scanned; unfrozen after, they are
    collected as usual. A caller that froze objects itself keeps them so: gc.unfreeze() would
    release all, so its freeze is left as it is and nothing more is frozen."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def pipelines_validated_once() -> Iterator[None]:
    """Within: each coremltools pass pipeline validates the MIL program once, after its last pass
    (ct.convert runs three; each weight compression runs them again on its result).

    coremltools validates the whole program before its pipeline and again after each of its ~110
    graph passes (every op's inputs against every consumer's): 45 % of as_mlp_mobile's int8
    lowering at 224, measured. The passes' result is the same either way; what is lost is only
    which pass broke an invalid program, and the program is still refused. After a pipeline with
    dead-code elimination, the essential-scope check runs too, as coremltools runs it after that
    pass."""
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

    apply = PassPipelineManager.apply_pipeline
    if getattr(apply, "_edge_mlp_once", False):  # already inside: nothing more to patch
        yield
        return

    def apply_pipeline(prog: Any, pass_pipeline: Any) -> None:
        prog.validate = lambda check_essential_scope=False: None  # shadows Program.validate meanwhile
        try:
            apply(prog, pass_pipeline)
        finally:
            del prog.validate
        prog.validate(check_essential_scope="common::dead_code_elimination" in pass_pipeline.passes)

    apply_pipeline._edge_mlp_once = True  # type: ignore[attr-defined]
    PassPipelineManager.apply_pipeline = staticmethod(apply_pipeline)
    try:
        yield
    finally:
        PassPipelineManager.apply_pipeline = staticmethod(apply)


@register
class CoreMLConverter(Converter):
    target = "coreml"
    suffix = ".mlpackage"
    precisions = (Precision.FP16, Precision.FP32, Precision.INT8, Precision.W8, *IOS18_PRECISIONS)
    typical_seconds = {"fp32": 8.5, "int8": 37, "fp16": 12, "w8": 10, "w4": 11, "pal4": 18, "pal6": 34}
    default_precision = Precision.FP16
    preferred_lowering = ShiftLowering.SLICE
    lowering_reason = "slice: maps to slice_by_index/concat, which Core ML runs natively; no roll op in MIL"
    runtime_packages = ("coremltools", "torch")
    host_runtime_package = "coremltools"
    load_options = ("mil_precision",)
    bench_backend = "coreml"
    host_timed = False  # Core ML latency needs a Mac: the iOS app's benchmark mode measures it
    apps = ("ios",)
    int8_scheme = ("W8A8: per-channel symmetric int8 weights, per-tensor int8 activations "
                   "(PT2E Q/DQ graph -> MIL quantize/dequantize), fp16 compute elsewhere")
    int8_tool = "executorch XNNPACKQuantizer + torchao PT2E + coremltools"
    multi_size = "one function per size in a multifunction package (main, main_HxW; iOS 18), weights stored once"

    def convert(self, request: ConversionRequest) -> ConversionOutput:
        import coremltools as ct
        import torch

        from edge_mlp.manifest import QuantizationInfo

        from .pt2e import quantize_request

        model, x = request.model, request.example
        quantization = None
        if request.precision.calibrated:
            model, _, quantization = quantize_request(self, request)
        # Several sizes: one function per size in a multifunction package (main, main_HxW), each
        # a static program; identical weights are stored once. Multifunction needs iOS 18, and so
        # do int4 per-block scales and per-grouped-channel LUTs.
        ios18 = len(request.sizes) > 1 or request.precision in IOS18_PRECISIONS
        target = ct.target.iOS18 if ios18 else ct.target.iOS17
        compute = ct.precision.FLOAT32 if request.precision is Precision.FP32 else ct.precision.FLOAT16
        mlmodels, programs = [], []
        for example in request.examples():
            with request.stage("export"):
                program = torch.export.export(model, (example,)).run_decompositions({})
            with request.stage("lower"):
                with earlier_objects_frozen(), pipelines_validated_once():
                    mlmodels.append(ct.convert(program, minimum_deployment_target=target, compute_precision=compute,
                                               convert_to="mlprogram"))
            programs.append(program)
        compression: dict[str, Any] = {}
        if request.precision in _COMPRESSION:
            stage = "palettize" if request.precision in (Precision.PAL4, Precision.PAL6) else "quantize"
            with request.stage(stage), pipelines_validated_once():  # compression re-runs the pipelines
                compressed = [compress_weights(m, request.precision, kept_weights(p, m, request.float_modules))
                              for m, p in zip(mlmodels, programs)]
            mlmodels = [m for m, _ in compressed]
            # What the precision's own block / group size could not compress: said in the manifest.
            compression = {"weights_left_fp16": uncompressed_weights(mlmodels[0])}
            if request.precision in IOS18_PRECISIONS:
                compression["weights_with_fallback"] = compressed[0][1]
            scheme, tool = _COMPRESSION[request.precision]
            if request.float_modules:
                scheme += f"; blocks kept by the accuracy budget: {KEPT_SCHEME}"
            if request.float_modules and not tool.endswith("palettize_weights"):
                tool += " + palettize_weights"
            quantization = QuantizationInfo(scheme=scheme, tool=tool)
        mlmodel = mlmodels[0]
        ops = op_histogram([op.op_type for op in mlmodel._mil_program.functions["main"].operations])
        path = request.work_dir / f"{request.stem}{self.suffix}"
        spec = mlmodel.get_spec()
        entries = ["main"] + [size_entry(size, "main") for size in request.sizes[1:]]
        with request.stage("save"):
            if len(mlmodels) == 1:
                mlmodel.save(str(path))
            else:
                _save_multifunction(mlmodels, entries, request.work_dir, path)
            _deterministic_specs(path)
        return ConversionOutput(
            path=path,
            input=float_spec(spec.description.input[0].name, x.shape, "NCHW"),
            outputs=request.output_specs([o.name for o in spec.description.output]),
            quantization=quantization,
            coverage={
                "mil_op_histogram": ops,
                "compute_precision": "float32" if request.precision is Precision.FP32 else "float16",
                "minimum_deployment_target": "iOS18" if ios18 else "iOS17",
                "spec_version": spec.specificationVersion,
                **compression,
            },
            entry_points=entries,
        )

    def coverage_summary(self, coverage: dict) -> str:
        ops = coverage["mil_op_histogram"]
        return f"{sum(n for op, n in ops.items() if op != 'const')} MIL ops"

    def host_runtime(self, mil_precision: str | None = None) -> str:
        if _on_macos():
            return f"Core ML via coremltools {importlib.metadata.version('coremltools')} MLModel.predict"
        rounding = "kept in float32" if mil_precision == "fp32" else "rounded after each op"
        return f"edge-mlp MIL interpreter (numpy, fp16-typed tensors {rounding}; Core ML itself needs macOS)"

    def load(self, artifact: Path, threads: int | None = None, mil_precision: str | None = None) -> HostModel:
        """`mil_precision` ('fp16' default, or 'fp32') selects the interpreter's mode off macOS;
        `threads` does not apply (Core ML and the interpreter choose their own)."""
        if _on_macos() and mil_precision is None:
            return _predict_with_core_ml(artifact)
        from edge_mlp.mil import MilInterpreter

        def open_function(function: str) -> tuple[Callable[[dict], dict], str, list[str]]:
            interpreter = MilInterpreter(artifact, precision=mil_precision or "fp16", function=function)
            (name_in,) = interpreter.inputs
            return interpreter, name_in, list(interpreter.output_names)

        predictor = _Predictor(open_function, function_names(artifact))
        predictor.opened["main"] = open_function("main")  # a package the interpreter refuses fails here
        return predictor


def _on_macos() -> bool:
    return platform.system() == "Darwin"


def _predict_with_core_ml(artifact: Path) -> HostModel:
    import coremltools as ct

    def open_function(function: str) -> tuple[Callable[[dict], dict], str, list[str]]:
        names = function_names(artifact)
        mlmodel = ct.models.MLModel(str(artifact), function_name=function if names else None)
        spec = mlmodel.get_spec()
        description = next((f for f in spec.description.functions if f.name == function), spec.description)
        return mlmodel.predict, description.input[0].name, [o.name for o in description.output]

    predictor = _Predictor(open_function, function_names(artifact))
    predictor.opened["main"] = open_function("main")
    return predictor


def _deterministic_specs(package: Path) -> None:
    """Rewrite the package's model spec in protobuf's deterministic order. coremltools writes map
    entries in an order that follows object hashes, so the same model converted twice in one
    process could differ in bytes (same content); sorted, equal models are equal files."""
    from coremltools.proto import Model_pb2

    for spec_file in package.rglob("*.mlmodel"):
        spec = Model_pb2.Model.FromString(spec_file.read_bytes())
        spec_file.write_bytes(spec.SerializeToString(deterministic=True))


def _save_multifunction(mlmodels: list, entries: list[str], work: Path, path: Path) -> None:
    """Each size's package saved apart, then merged into one multifunction package at `path`."""
    import shutil

    import coremltools as ct

    descriptor = ct.utils.MultiFunctionDescriptor()
    parts = []
    for mlmodel, entry in zip(mlmodels, entries):
        part = work / f"part-{entry}.mlpackage"
        mlmodel.save(str(part))
        descriptor.add_function(str(part), src_function_name="main", target_function_name=entry)
        parts.append(part)
    descriptor.default_function_name = "main"
    ct.utils.save_multifunction(descriptor, str(path))
    for part in parts:
        shutil.rmtree(part)


def _op_config(precision: Precision) -> Any:
    """The coremltools op config of `precision`'s weights."""
    from coremltools.optimize.coreml import OpLinearQuantizerConfig

    if precision is Precision.W8:
        return OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                       weight_threshold=WEIGHT_THRESHOLD)
    if precision is Precision.W4:
        return OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                       block_size=INT4_BLOCK, weight_threshold=WEIGHT_THRESHOLD)
    return _lut_config({Precision.PAL4: 4, Precision.PAL6: 6}[precision])


def _lut_config(nbits: int, mode: str = "kmeans", group_size: int = LUT_GROUP) -> Any:
    from coremltools.optimize.coreml import OpPalettizerConfig

    return OpPalettizerConfig(mode=mode, nbits=nbits, granularity="per_grouped_channel", group_size=group_size,
                              weight_threshold=WEIGHT_THRESHOLD)


def compress_weights(mlmodel: Any, precision: Precision, kept: Sequence[str] = ()) -> tuple[Any, dict[str, str]]:
    """`mlmodel`'s weights compressed as `precision` says, the consts named in `kept` with 8-bit
    LUTs instead (the accuracy budget's blocks), and {weight: its fallback} (below).

    coremltools skips a weight when the block / group size does not divide its channels; for w4 /
    pal4 / pal6 such linear and conv weights get the nearest granularity that fits (`_fallback`): a
    1000-class head (1000 outputs, not a multiple of 16) would otherwise stay fp16, 1 MB of
    as_mlp_mobile's 4.2 MB pal4 package at 224. Their configs are known from the shapes, so they go
    into the same pass: each coremltools pass reloads and re-validates the whole program. Linear
    quantization cannot express a LUT, so w4 with kept blocks takes a second, palettizing pass for
    those.
    """
    from coremltools.optimize.coreml import OptimizationConfig, linear_quantize_weights, palettize_weights

    linear, luts, described = _fallback(mlmodel, precision, set(kept)) if precision in IOS18_PRECISIONS else ({}, {}, {})
    keep = {name: luts.pop(name, None) or _lut_config(KEPT_NBITS, "uniform") for name in kept}
    with _skips_unlogged():
        if precision in (Precision.W8, Precision.W4):
            mlmodel = linear_quantize_weights(mlmodel, config=OptimizationConfig(
                global_config=_op_config(precision), op_name_configs={**linear, **{name: None for name in kept}}))
            if keep:
                mlmodel = palettize_weights(mlmodel, config=OptimizationConfig(op_name_configs=keep))
        else:
            mlmodel = palettize_weights(mlmodel, config=OptimizationConfig(global_config=_op_config(precision),
                                                                            op_name_configs={**luts, **keep}))
    return mlmodel, described


def _fallback(mlmodel: Any, precision: Precision, kept: set[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Configs for the linear / conv weights that coremltools would leave fp16 because INT4_BLOCK
    does not divide their inputs (w4) or LUT_GROUP their outputs (pal4 / pal6, and kept weights'
    8-bit LUTs): the same scheme with the largest block / group below that size that divides them
    (48 inputs -> int4 blocks of 24; 1000 outputs -> 100 LUTs of 10 channels; 3 inputs -> one scale
    per output channel). Returns (linear quantizer configs, palettizer configs, {weight: what it got})."""
    from coremltools.optimize.coreml import OpLinearQuantizerConfig

    linear: dict[str, Any] = {}
    luts: dict[str, Any] = {}
    described: dict[str, str] = {}
    ops = {op.name: op for op in mlmodel._mil_program.functions["main"].operations}
    for name in uncompressed_weights(mlmodel):
        var = ops[name].outputs[0]
        if not all(child.op_type in ("linear", "conv") and child.inputs.get("weight") is var for child in var.child_ops):
            continue
        outputs, inputs = int(var.shape[0]), int(var.shape[1])
        if name in kept or precision is not Precision.W4:
            if outputs % LUT_GROUP == 0:
                continue
            group = _largest_divisor(outputs, LUT_GROUP)
            nbits, mode = (KEPT_NBITS, "uniform") if name in kept else (_op_config(precision).nbits, "kmeans")
            luts[name] = _lut_config(nbits, mode, group)
            described[name] = f"{nbits}-bit LUT per {group} output channel(s)"
        elif inputs % INT4_BLOCK:
            block = _largest_divisor(inputs, INT4_BLOCK)
            linear[name] = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                                   block_size=block, weight_threshold=WEIGHT_THRESHOLD)
            described[name] = f"int4, one scale per {block} input channel(s)"
    return linear, luts, described


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


# coremltools logs one or two lines per weight whose shape the block / group size does not divide
# ("Invalid block_sizes; ... not divisible by block size 32", "Can't perform palettization: ...",
# "Cannot perform ... on <name>. Skipped this op."); `_fallback` compresses them another way and the
# manifest lists them (coverage.weights_with_fallback, .weights_left_fp16) instead. Some come from
# the root logger (coremltools.optimize._utils).
_SKIP_MESSAGES = ("Invalid block_sizes", "Can't perform palettization", "Skipped this op")


class _DropSkips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in _SKIP_MESSAGES)


@contextlib.contextmanager
def _skips_unlogged() -> Iterator[None]:
    loggers, drop = [logging.getLogger("coremltools"), logging.getLogger()], _DropSkips()
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def uncompressed_weights(mlmodel: Any) -> list[str]:
    """Plain consts over the size threshold that feed compute ops (not a compressed weight's data)."""
    names = []
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type != "const" or getattr(op.outputs[0].val, "size", 0) <= WEIGHT_THRESHOLD:
            continue
        if not all(child.op_type.startswith("constexpr_") for child in op.outputs[0].child_ops):
            names.append(op.name)
    return sorted(names)


def kept_weights(program: torch.export.ExportedProgram, mlmodel: Any, blocks: Sequence[str]) -> list[str]:
    """Names of the MIL consts that feed the ops of the PyTorch `blocks` (module paths).

    coremltools names each MIL op after the exported node it came from (plus `_cast_fp16` style
    suffixes), and each node records its module path, so block -> nodes -> MIL ops -> their
    const inputs. A block without any weight found is an error: keeping it would silently do nothing."""
    from edge_mlp.mil.trace import _CAST_SUFFIX

    if not blocks:
        return []
    node_block: dict[str, str] = {}
    for node in program.graph.nodes:
        paths = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
        block = next((b for b in blocks if any(p == b or p.startswith(b + ".") for p in paths)), None)
        if node.op == "call_function" and block is not None:
            node_block[node.name] = block
    found: dict[str, list[str]] = {b: [] for b in blocks}
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type == "const" or not op.outputs:
            continue
        block = node_block.get(_CAST_SUFFIX.sub("", op.outputs[0].name))
        if block is None:
            continue
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else (value,):
                if var.op is not None and var.op.op_type == "const" and getattr(var.val, "size", 0) > WEIGHT_THRESHOLD:
                    found[block].append(var.op.name)
    missing = [b for b, names in found.items() if not names]
    if missing:
        raise EdgeMlpError(f"no Core ML weights found for block(s) {', '.join(missing)}: cannot keep them at "
                           f"{KEPT_NBITS} bits")
    return sorted({name for names in found.values() for name in names})
