"""Run the MIL program of a saved `.mlpackage` with numpy, on any OS.

Core ML only predicts on macOS; this walks the program coremltools would hand to the Core ML
runtime, op by op, so a Linux CI can check a package's numbers. Each op is computed in float64 and
its result stored in the dtype the program declares: in `fp16` mode every fp16-typed tensor is
rounded to float16 after each op, which models a float16 Core ML program's arithmetic (one rounding
per op), not the exact accumulation order of the CPU, GPU or Neural Engine kernels. `fp32` mode keeps
fp16-typed tensors in float32: the program's math without fp16 rounding.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import EdgeMlpError
from . import kernels
from .kernels import KERNELS, Kernel, kernel_for

PRECISIONS = ("fp16", "fp32")


class MilProgramError(EdgeMlpError):
    """A `.mlpackage` that cannot be read as an ML program."""


class UnsupportedMilOpError(EdgeMlpError):
    """An op the interpreter has no semantics for: never guessed."""


class UnsupportedMilOpVersionError(UnsupportedMilOpError):
    """An op we have a kernel for, but as a later opset redefined it (other inputs, other meaning)."""


class UnsupportedMilShapeError(EdgeMlpError):
    """A flexible (symbolic) shape: the interpreter runs the fixed shapes a program declares."""


class MilRuntimeError(EdgeMlpError):
    """An op whose inputs its semantics reject (wrong shapes, out-of-range indices)."""


@dataclass(frozen=True)
class TracedOp:
    name: str  # the op's first output var, e.g. "conv2d_cast_fp16"
    op_type: str
    outputs: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class _Step:
    op_type: str
    kernel: Kernel
    name: str
    args: dict[str, str | tuple[str, ...]]  # input name -> var name(s)
    outputs: tuple[tuple[str, Any, tuple[int, ...]], ...]  # (var name, storage dtype, shape)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools prints progress bars and warnings while loading; keep the CLI output clean."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def load_program(path: str | Path, function: str = "main") -> Any:
    """The pymil `Function` `function` ("main", or another of a multifunction package) of a saved
    `.mlpackage`, with its weights read from the package."""
    path = Path(path)
    if not (path / "Manifest.json").is_file():
        raise MilProgramError(f"{path} is not a .mlpackage (no Manifest.json); convert with --target coreml")
    with _quiet():
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load

        try:
            mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
            spec = mlmodel.get_spec()
        except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged package
            raise MilProgramError(f"cannot read Core ML package {path}: {_first_line(exc)}; re-convert it") from None
        if spec.WhichOneof("Type") != "mlProgram":
            raise MilProgramError(f"{path} is a {spec.WhichOneof('Type')} model; only ML programs can be interpreted")
        try:
            program = load(spec, specification_version=spec.specificationVersion,
                           file_weights_dir=mlmodel.weights_dir)
        except Exception as exc:  # noqa: BLE001
            raise MilProgramError(f"cannot load the MIL program of {path}: {_first_line(exc)}; re-convert it") from None
    if function not in program.functions:
        raise MilProgramError(f"{path} has no {function!r} function (it has {', '.join(program.functions)})")
    return program.functions[function]


def _definition(op: Any) -> str:
    """The opset whose definition of the op this is: coremltools keeps them in `mil/ops/defs/iOS<N>/`."""
    return next((part for part in type(op).__module__.split(".") if part.startswith("iOS")), "unknown")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


class MilInterpreter:
    """A loaded program: `interpreter({name: array})` -> {output name: float32 array}."""

    def __init__(self, path: str | Path, precision: str = "fp16", model_name: str | None = None,
                 function: str = "main"):
        if precision not in PRECISIONS:
            raise EdgeMlpError(f"interpreter precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.path, self.precision = Path(path), precision
        self.model_name = model_name or self.path.name
        function = load_program(self.path, function)
        from coremltools.converters.mil.mil import types

        self._types = types
        self.ops = list(function.operations)
        self._check_supported(function)
        self.inputs = {name: (tuple(int(d) for d in var.shape), self._storage(var.dtype))
                       for name, var in function.inputs.items()}
        self.output_names = [var.name for var in function.outputs]
        self._shapes = {var.name: tuple(var.shape) for op in self.ops for var in op.outputs if var.shape is not None}
        self._shapes.update({name: shape for name, (shape, _) in self.inputs.items()})
        # Constants and compile-time ops (constexpr_*) are evaluated once, here.
        self._constants: dict[str, Any] = {}
        self._steps: list[_Step] = []
        for op in self.ops:
            if op.op_type == "const":
                self._constants[op.outputs[0].name] = self._store(op.outputs[0].val, op.outputs[0].dtype)
                continue
            step = self._compile(op)
            if op.op_type.startswith("constexpr_"):
                self._execute(step, self._constants)
            else:
                self._steps.append(step)
        self._batched_args = self._batch_plan()

    def _check_supported(self, function: Any) -> None:
        """Refuse, before running anything, what the kernels would get wrong or fail on midway."""
        ops = [op for op in self.ops if op.op_type != "const"]
        unknown = sorted({op.op_type for op in ops if op.op_type not in KERNELS})
        if unknown:
            raise UnsupportedMilOpError(
                f"{self.model_name} uses MIL op(s) {', '.join(unknown)} that the Core ML interpreter does not "
                f"implement; add their semantics to edge_mlp/mil/kernels.py"
            )
        redefined = sorted({f"{op.op_type} ({_definition(op)})" for op in ops
                            if kernel_for(op.op_type, _definition(op)) is None})
        if redefined:
            raise UnsupportedMilOpVersionError(
                f"{self.model_name} uses MIL op version(s) {', '.join(redefined)} that the Core ML interpreter "
                f"does not implement (only earlier definitions); add their semantics to edge_mlp/mil/kernels.py"
            )
        from coremltools.converters.mil.mil.types.symbolic import any_symbolic

        # Inputs first: with fixed inputs, a symbolic op output depends on input values (a slice's `end`).
        shaped = [(f"input {name} has the flexible shape", "convert with fixed input shapes", var)
                  for name, var in function.inputs.items()]
        shaped += [(f"the output of MIL op {op.op_type} '{op.name}' has the data-dependent shape",
                    "it needs the values of its inputs", var) for op in ops for var in op.outputs]
        for what, hint, var in shaped:
            if var.shape is not None and any_symbolic(var.shape):
                shape = ", ".join(str(d) for d in var.shape)
                raise UnsupportedMilShapeError(
                    f"{self.model_name}: {what} ({shape}); the Core ML interpreter runs fixed shapes only: {hint}"
                )

    def _storage(self, dtype: Any) -> Any:
        types = self._types
        if dtype == types.fp16 and self.precision == "fp32":
            return np.float32
        if types.is_str(dtype):
            return None
        return types.nptype_from_builtin(dtype)

    def _store(self, value: Any, dtype: Any) -> Any:
        storage = self._storage(dtype)
        if storage is None or isinstance(value, str):
            return value
        return np.asarray(value).astype(storage, copy=False)

    def _compile(self, op: Any) -> _Step:
        args = {name: tuple(v.name for v in var) if isinstance(var, (list, tuple)) else var.name
                for name, var in op.inputs.items()}
        outputs = tuple((var.name, self._storage(var.dtype), tuple(int(d) for d in var.shape)) for var in op.outputs)
        return _Step(op.op_type, kernel_for(op.op_type, _definition(op)), op.name, args, outputs)

    def _execute(self, step: _Step, env: dict[str, Any], batch: int = 1) -> tuple[Any, ...]:
        try:
            args = {name: tuple(env[v] for v in ref) if isinstance(ref, tuple) else env[ref]
                    for name, ref in step.args.items()}
        except KeyError as exc:
            raise MilRuntimeError(f"{self.model_name}: var {exc} is used before any op defines it") from None
        if batch != 1:
            args.update({name: widen(args[name], batch) for name, widen in self._batched_args[step.name].items()})
        try:
            result = step.kernel(args)
        except (ValueError, IndexError, KeyError) as exc:
            raise MilRuntimeError(f"{self.model_name}: MIL op {step.op_type} '{step.name}' failed: {exc}") from None
        results = result if isinstance(result, tuple) else (result,)
        stored = []
        for (name, storage, shape), value in zip(step.outputs, results):
            value = np.asarray(value).astype(storage, copy=False) if storage is not None else value
            if batch != 1:
                shape = (shape[0] * batch, *shape[1:])
            if np.shape(value) != shape:
                raise MilRuntimeError(
                    f"{self.model_name}: MIL op {step.op_type} '{step.name}' gave shape {np.shape(value)}, "
                    f"the program declares {shape}"
                )
            env[name] = value
            stored.append(value)
        return tuple(stored)

    def _feed(self, feeds: dict[str, np.ndarray], batch: int = 1) -> dict[str, Any]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise EdgeMlpError(f"{self.model_name}: missing input(s) {', '.join(sorted(missing))}")
        env = dict(self._constants)
        for name, (shape, dtype) in self.inputs.items():
            value = np.asarray(feeds[name])
            if value.shape != (shape if batch == 1 else (batch, *shape[1:])):
                raise EdgeMlpError(f"{self.model_name}: input {name} must have shape {shape}, got {value.shape}")
            env[name] = value.astype(dtype)
        return env

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run of the program on its declared input shapes, or on a batch of N along dim 0
        where the program's inputs have batch 1 (`run_batch`)."""
        batch = self._batch_of(feeds)
        if batch != 1:
            return self.run_batch(feeds, batch)
        env = self._feed(feeds)
        for step in self._steps:
            self._execute(step, env)
        return {name: np.asarray(env[name], dtype=np.float32) for name in self.output_names}

    @property
    def takes_batches(self) -> bool:
        """Whether `__call__` takes N inputs at once (programs with batch-1 inputs); it runs them in
        one pass where `_batch_plan` proves that safe, else one at a time."""
        return all(len(shape) > 0 and shape[0] == 1 for shape, _ in self.inputs.values())

    def _batch_of(self, feeds: dict[str, np.ndarray]) -> int:
        sizes = {np.shape(feeds[name])[0] for name, (shape, _) in self.inputs.items()
                 if name in feeds and np.ndim(feeds[name]) == len(shape) > 0 and np.shape(feeds[name]) != shape}
        return sizes.pop() if len(sizes) == 1 and self.takes_batches else 1

    def run_batch(self, feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """N images in one pass: ~N times fewer Python steps than N runs, the interpreter's main cost
        on small inputs. Only programs `_batch_plan` accepts; others run image by image."""
        if self._batched_args is not None:
            env = self._feed(feeds, batch)
            try:
                for step in self._steps:
                    self._execute(step, env, batch)
                return {name: np.asarray(env[name], dtype=np.float32) for name in self.output_names}
            except MilRuntimeError:  # e.g. a runtime value computed from constants alone: no batch dim
                self._batched_args = None
        runs = [self({name: np.asarray(v)[i:i + 1] for name, v in feeds.items()}) for i in range(batch)]
        return {name: np.concatenate([r[name] for r in runs]) for name in self.output_names}

    def _batch_plan(self) -> dict[str, dict[str, Any]] | None:
        """Whether N images can run in one pass, and per op the args to widen for it (a reshape's
        target shape, a slice's end). In a batched pass every runtime value is the per-image values
        concatenated along dim 0 (an image's (4, 128) rows become (4 N, 128)); each op must keep
        that so: its kernel treats dim 0 row by row (no axis argument on it, no operand that
        broadcasts against it), or its arguments are widened to match. The check is static and
        conservative: anything else (None) runs image by image, as before."""
        if not self.takes_batches or not self.inputs:
            return None
        plan: dict[str, dict[str, Any]] = {}
        for step in self._steps:
            operands = {name: self._shapes[ref] for name, ref in step.args.items()
                        if isinstance(ref, str) and ref not in self._constants and ref in self._shapes}
            widen = _batch_args(step, self._constants, operands)
            if widen is None:
                return None
            plan[step.name] = widen
        return plan


    def trace(self, feeds: dict[str, np.ndarray]) -> list[TracedOp]:
        """Every runtime op's outputs, in program order, to localize where numbers diverge."""
        env = self._feed(feeds)
        return [TracedOp(step.outputs[0][0], step.op_type, self._execute(step, env)) for step in self._steps]


# Ops whose kernels compute each row of dim 0 on its own whatever their other arguments.
_ROW_WISE = frozenset({
    "abs", "add", "avg_pool", "batch_norm", "cast", "clip", "conv", "erf", "exp", "gelu", "identity",
    "instance_norm", "inverse", "linear", "log", "max_pool", "maximum", "minimum", "mul", "pow", "real_div",
    "relu", "rsqrt", "sigmoid", "silu", "sqrt", "square", "sub", "tanh",
})
# Of those, the ones that broadcast operands against each other (a constant's dim 0 must then be 1).
_BROADCASTING = frozenset({"add", "clip", "maximum", "minimum", "mul", "pow", "real_div", "sub"})
# Row-wise unless an axis argument names dim 0.
_AXIS_ARGS = {"concat": "axis", "split": "axis", "softmax": "axis", "layer_norm": "axes", "reduce_mean": "axes",
              "reduce_sum": "axes", "reduce_max": "axes", "squeeze": "axes", "expand_dims": "axes",
              "quantize": "axis", "dequantize": "axis"}
# Ops whose output rank may differ from their (single runtime) input's.
_RANK_CHANGING = frozenset({"reshape", "reduce_mean", "reduce_sum", "reduce_max", "squeeze", "expand_dims"})


def _batch_args(step: _Step, constants: dict[str, Any], operands: dict[str, tuple[int, ...]]) -> dict[str, Any] | None:
    """{arg: widen(value, N)} for `step` in a batched pass, {} if none needs widening, None if the
    op is not known to keep the batched form (see MilInterpreter._batch_plan). `operands`: the
    declared shapes of its runtime (non-constant) inputs."""
    def ints(name: str) -> list[int] | None:
        ref = step.args.get(name)
        value = constants.get(ref) if isinstance(ref, str) else None
        return None if value is None else kernels.ints(value)

    op, out = step.op_type, step.outputs[0][2]
    if not out or any(not shape for _, _, shape in step.outputs):
        return None
    if any(isinstance(ref, tuple) and op != "concat" for ref in step.args.values()):
        return None
    if op != "concat" and not operands:  # computed from constants alone: the same for every image
        return None
    if op not in _RANK_CHANGING and any(len(s) != len(out) or s[0] != out[0] for s in operands.values()):
        return None  # a runtime operand whose dim 0 is not the output's rows
    if op in _BROADCASTING:
        for name, ref in step.args.items():
            value = constants.get(ref) if isinstance(ref, str) else None
            if value is not None and np.ndim(value) >= len(out) and np.shape(value)[0] != 1:
                return None
        return {}
    if op in _ROW_WISE:
        return {}
    if op in _AXIS_ARGS:
        arg = _AXIS_ARGS[op]
        if step.args.get(arg) is None:  # no axis: all axes (reductions), the last (softmax), per tensor
            return {} if op in ("softmax", "quantize", "dequantize") and len(out) >= 2 else None
        axes = ints(arg)
        rank = len(out) if op in ("concat", "expand_dims") else len(operands.get("x", out))
        if axes is None or any(a % rank == 0 for a in axes):
            return None
        return {}
    if op == "transpose":
        perm = ints("perm")
        return {} if perm and perm[0] == 0 else None
    if op == "tile":
        reps = ints("reps")
        return {} if reps and reps[0] == 1 else None
    if op == "pad":
        flat = ints("pad")
        return {} if flat is not None and (len(flat) // 2 < len(out) or flat[:2] == [0, 0]) else None
    if op == "matmul":  # batch dims broadcast: both operands need them
        return {} if all(len(s) >= 3 for s in operands.values()) and all(
            np.ndim(constants.get(step.args[n])) < 3 or np.shape(constants.get(step.args[n]))[0] == 1
            for n in ("x", "y") if step.args.get(n) not in operands) else None
    if op == "reshape":
        shape = ints("shape")
        if not shape or 0 in shape:  # a 0 copies a dim of x: maybe the batched one
            return None
        rows = out[0]
        return {"shape": lambda value, n: np.concatenate([[rows * n], np.asarray(value)[1:]]).astype(np.asarray(value).dtype)}
    if op == "slice_by_index":
        rows = operands["x"][0] if "x" in operands else None
        begin, end, stride = ints("begin"), ints("end"), ints("stride")
        masks = {m: ints(m) or [0] for m in ("begin_mask", "end_mask", "squeeze_mask")}
        if rows is None or begin is None or end is None or masks["squeeze_mask"][0]:
            return None
        whole = (masks["begin_mask"][0] or begin[0] == 0) and (masks["end_mask"][0] or end[0] == rows)
        if not whole or (stride is not None and stride[0] != 1):
            return None

        def widen_end(value: Any, n: int) -> Any:
            widened = np.array(value, copy=True)
            widened[0] = rows * n
            return widened
        return {"end": widen_end}
    return None
