"""Apple's own MIL op tests, shipped in the coremltools wheel, run against our interpreter.

coremltools tests each MIL op with Builder programs and numpy expected outputs, but compares them
only on macOS, through Core ML (elsewhere the comparison is a no-op). As the plugin of a child
pytest (`python -m edge_mlp.mil.conformance PYTEST-ARGS`; coremltools reads its test settings from
the environment at import), this module swaps that comparison (`compare_backend`) for
`MilInterpreter` on the package coremltools just wrote, keeping each test's expected outputs and
tolerances, and records how each case ended. `run()` runs the op families we implement that way;
`summarize()` and `markdown()` count them per family.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgeMlpError
from .interpreter import (
    MilInterpreter,
    MilProgramError,
    UnsupportedMilOpError,
    UnsupportedMilOpVersionError,
    UnsupportedMilShapeError,
)

# Family -> Apple test classes (under coremltools/converters/mil/mil/ops/tests) of the ops in
# KERNELS. Each folder's tests run at its own opset (iOS14's at iOS15, the first ML program opset).
FAMILIES: dict[str, tuple[str, ...]] = {
    "elementwise binary": ("iOS14/test_elementwise_binary.py::TestElementwiseBinary",),
    "elementwise unary": ("iOS14/test_elementwise_unary.py::TestElementwiseUnary",
                          "iOS17/test_elementwise_unary.py::TestElementwiseUnary"),
    "activations": tuple(f"iOS14/test_activation.py::Test{name}"
                         for name in ("GeLU", "ReLU", "Sigmoid", "SiLU", "Softmax")),
    "conv": ("iOS14/test_conv.py::TestConv", "iOS17/test_conv.py::TestConv"),
    "linear, matmul": ("iOS14/test_linear.py::TestLinear", "iOS14/test_linear.py::TestMatMul",
                       "iOS17/test_linear.py::TestLinear", "iOS17/test_linear.py::TestMatMul"),
    "batch_norm": ("iOS14/test_normalization.py::TestNormalizationBatchNorm",
                   "iOS17/test_normalization.py::TestNormalizationBatchNorm"),
    "instance_norm": ("iOS14/test_normalization.py::TestNormalizationInstanceNorm",
                      "iOS17/test_normalization.py::TestNormalizationInstanceNorm"),
    "layer_norm": ("iOS14/test_normalization.py::TestNormalizationLayerNorm",
                   "iOS17/test_normalization.py::TestNormalizationLayerNorm"),
    "pooling": ("iOS14/test_pool.py::TestAvgPool", "iOS14/test_pool.py::TestMaxPool"),
    "reductions": ("iOS14/test_reduction.py::TestReduction", "iOS17/test_reduction.py::TestReduction"),
    "gather": ("iOS14/test_scatter_gather.py::TestGather", "iOS16/test_scatter_gather.py::TestGather",
               "iOS17/test_scatter_gather.py::TestGather"),
    "concat": ("iOS14/test_tensor_operation.py::TestConcat", "iOS14/test_tensor_transformation.py::TestConcat"),
    "split": ("iOS14/test_tensor_transformation.py::TestSplit",),
    "pad": ("iOS14/test_tensor_operation.py::TestPad",),
    "tile": ("iOS14/test_tensor_operation.py::TestTile",),
    "identity": ("iOS14/test_tensor_operation.py::TestIdentity",),
    "reshape": ("iOS14/test_tensor_transformation.py::TestReshape", "iOS15/test_tensor_transformation.py::TestReshape",
                "iOS17/test_tensor_transformation.py::TestReshape"),
    "expand_dims, squeeze": ("iOS14/test_tensor_transformation.py::TestExpandDims",
                             "iOS14/test_tensor_transformation.py::TestSqueeze",
                             "iOS17/test_tensor_transformation.py::TestExpandDims",
                             "iOS17/test_tensor_transformation.py::TestSqueeze"),
    "slice_by_index": ("iOS14/test_tensor_transformation.py::TestSliceByIndex",
                       "iOS17/test_tensor_transformation.py::TestSliceByIndex"),
    "transpose": ("iOS14/test_tensor_transformation.py::TestTranspose",
                  "iOS17/test_tensor_transformation.py::TestTranspose"),
    "quantize": ("iOS17/test_quantization.py::TestQuantize",),
    "dequantize": ("iOS17/test_quantization.py::TestDequantize",),
    "constexpr_affine_dequantize": ("iOS16/test_constexpr_ops.py::TestConstexprAffineDequantize",),
    "constexpr_lut_to_dense": ("iOS16/test_constexpr_ops.py::TestConstexprLutToDense",
                               "iOS18/test_compression.py::TestConstexprLut"),
    "constexpr_blockwise_shift_scale": ("iOS18/test_compression.py::TestConstexprBlockwiseDequantize",),
}

# How a case ended. The first four reached the interpreter (they are the "run" count). "flawed
# reference": an fp32-backend case whose program holds fp16 values and whose expected output is off
# by at most one fp16 step at the outputs' scale: the test computed it from the values before the
# fp16 rounding its own program declares (a conv reference from fp32 weights it then stores as fp16).
# "not reached": the test ended before predicting; "no comparison": it never predicts (builder_eval).
STATUSES = ("pass", "fail", "unsupported", "flawed reference", "not reached", "no comparison", "skipped")
_CASES_ENV, _MATCH_ENV, _TORCH_ENV = ("EDGE_MLP_CONFORMANCE_CASES", "EDGE_MLP_CONFORMANCE_MATCH",
                                      "EDGE_MLP_CONFORMANCE_TORCH")


class ConformanceError(EdgeMlpError):
    """The op test run itself could not be done (unknown family, pytest did not start)."""


@dataclass
class Case:
    nodeid: str  # relative to the tests folder
    family: str
    precision: str | None  # the test's backend precision, which picks the interpreter's
    opset: str | None
    status: str = "no comparison"
    reason: str | None = None  # unsupported: op / op version / symbolic shape / unloadable package
    message: str | None = None
    fp16_steps: float | None = None  # a failed comparison's max |error| in fp16 steps (see fp16_steps)


def tests_dir() -> Path:
    import coremltools

    return Path(coremltools.__file__).parent / "converters" / "mil" / "mil" / "ops" / "tests"


# --- the plugin, inside the child pytest ---------------------------------------------------------

@dataclass
class _Comparison:
    reached: bool = False
    fp16_program: bool = False
    dtype: str = "fp32"
    fp16_steps: float | None = None


_current = _Comparison()
_cases: list[Case] = []


def fp16_steps(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| in fp16 steps at the outputs' scale (the spacing of fp16 at max |want|): the
    fp16 rounding of operands that a reference skipped shows at that scale, not at each element's
    (which may cancel to near zero)."""
    want64 = np.asarray(want, dtype=np.float64)
    if not want64.size:
        return 0.0
    step = float(np.spacing(np.float16(np.abs(want64).max())))
    return float(np.abs(np.asarray(got, dtype=np.float64) - want64).max()) / step


def compare_with_interpreter(mlmodel: Any, input_key_values: dict[str, Any], expected_outputs: dict[str, Any],
                             dtype: str = "fp32", atol: float = 1e-04, rtol: float = 1e-05,
                             also_compare_shapes: bool = True, state: Any = None,
                             allow_mismatch_ratio: float = 0.0) -> dict[str, np.ndarray]:
    """coremltools' `compare_backend`, with our interpreter (precision = the backend's) predicting
    instead of Core ML; the comparison and its tolerances are Apple's, line for line."""
    import coremltools as ct
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.testing_utils import _get_coreml_out_from_dict

    _current.reached, _current.dtype = True, dtype
    interpreter = MilInterpreter(mlmodel.package_path, precision=dtype, model_name="the test program")
    _current.fp16_program = any(var.dtype == types.fp16 for op in interpreter.ops for var in op.outputs) or any(
        dt == np.float16 for _, dt in interpreter.inputs.values())
    # As coremltools' run_core_ml_predict: inputs go to Core ML as float32, scalars as shape (1,).
    feeds = {k: np.asarray(v, dtype=np.float32) if np.ndim(v) else np.array([v], dtype=np.float32)
             for k, v in input_key_values.items()}
    pred = interpreter(feeds)
    if mlmodel.compute_unit != ct.ComputeUnit.CPU_ONLY or dtype == "fp16":
        atol, rtol = max(atol * 100.0, 5e-1), max(rtol * 100.0, 5e-2)
    for name, expected in expected_outputs.items():
        got = _get_coreml_out_from_dict(pred, name)
        expected = np.asarray(expected)
        if also_compare_shapes and not (expected.shape == () and got.shape == (1,)):
            assert got.shape == expected.shape, f"output {name}: expected shape {expected.shape}, got {got.shape}"
        try:
            np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol)
        except AssertionError:
            mismatch = np.sum(~np.isclose(got, expected, atol=atol, rtol=rtol))
            if mismatch / max(expected.size, 1) > allow_mismatch_ratio:
                _current.fp16_steps = fp16_steps(got, expected)
                raise
    return pred


def _family(nodeid: str) -> str:
    return next((family for family, prefixes in FAMILIES.items()
                 if any(nodeid.startswith(p + "::") for p in prefixes)), "other")


def _classify(case: Case, excinfo: Any) -> None:
    if excinfo is None:
        case.status = "pass" if _current.reached else "no comparison"
        return
    error = excinfo.value
    case.message = _one_line(error)
    reasons = {UnsupportedMilOpVersionError: "op version", UnsupportedMilOpError: "op",
               UnsupportedMilShapeError: "symbolic shape", MilProgramError: "unloadable package"}
    reason = next((r for kind, r in reasons.items() if isinstance(error, kind)), None)
    if reason:  # refused up front; "unloadable": coremltools' reader rejects what its converter wrote
        case.status, case.reason = "unsupported", reason
    elif not _current.reached:
        case.status = "not reached"
    elif isinstance(error, AssertionError) and _current.fp16_steps is not None:
        case.fp16_steps = round(_current.fp16_steps, 3)
        flawed = _current.dtype == "fp32" and _current.fp16_program and _current.fp16_steps <= 1.0
        case.status = "flawed reference" if flawed else "fail"
    else:
        case.status = "fail"


def _one_line(error: BaseException) -> str:
    """The error's first line (and an assert_allclose's max difference), without what differs from
    run to run (the temporary package's path, coremltools' numbered shape symbols)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("Max absolute")), None)
    text = "; ".join(filter(None, [lines[0] if lines else "", detail]))
    text = re.sub(r"\bis\d+\b", "s", re.sub(r"\S+\.mlpackage\b", "the test package", text))
    return f"{type(error).__name__}: {text}"[:300]


def pytest_configure(config: Any) -> None:
    from coremltools.converters.mil import testing_utils
    from coremltools.converters.mil.mil.ops.tests import testing_utils as op_testing_utils

    testing_utils.compare_backend = compare_with_interpreter
    op_testing_utils.compare_backend = compare_with_interpreter


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Keep the cases whose node id (relative to the tests folder) matches the run's regex."""
    pattern = os.environ.get(_MATCH_ENV)
    if pattern:
        keep = [item for item in items if re.search(pattern, _relative(item.nodeid))]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


def pytest_collection_finish(session: Any) -> None:
    # coremltools' convert() ends with a full gc.collect(): ~0.4 s per case over the objects torch and
    # coremltools made at import, two thirds of the run. Frozen, those are not scanned again.
    gc.freeze()


def pytest_runtest_setup(item: Any) -> None:
    global _current
    _current = _Comparison()


def pytest_runtest_makereport(item: Any, call: Any) -> None:
    if call.when == "setup" and call.excinfo is None:
        return
    if call.when not in ("setup", "call"):
        return
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
    case = Case(_relative(item.nodeid), _family(_relative(item.nodeid)), getattr(backend, "precision", None),
                getattr(getattr(backend, "opset_version", None), "name", None))
    import pytest

    if call.excinfo is not None and call.excinfo.errisinstance((pytest.skip.Exception, pytest.xfail.Exception)):
        case.status, case.message = "skipped", _one_line(call.excinfo.value)
    else:
        _classify(case, call.excinfo)
    _cases.append(case)


def _relative(nodeid: str) -> str:
    marker = "ops/tests/"
    return nodeid.split(marker, 1)[1] if marker in nodeid else nodeid


def pytest_sessionfinish(session: Any) -> None:
    path = os.environ.get(_CASES_ENV)
    if path:
        Path(path).write_text(json.dumps([asdict(c) for c in _cases]))


# --- the runner ----------------------------------------------------------------------------------

def run(families: list[str] | None = None, match: str | None = None, torch: bool = True,
        timeout: float | None = None) -> list[Case]:
    """Run Apple's tests of `families` (all by default), only the cases whose node id matches the
    regex `match` if given, in a child pytest; the cases, each with how it ended. `torch=False`
    starts ~4 s sooner for a quick subset; Apple's tests that need PyTorch then skip."""
    families = families or list(FAMILIES)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ConformanceError(f"unknown op famil(ies) {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    root = tests_dir()
    targets = [str(root / p) for family in families for p in FAMILIES[family]]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cases.json"
        # a clean child: none of a calling pytest's settings (xdist worker, PYTEST_ADDOPTS), no plugins
        # but this one; coremltools' op tests in both precisions, ML programs only
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update({_CASES_ENV: str(out), _MATCH_ENV: match or "", _TORCH_ENV: "1" if torch else "",
                    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    "PYMIL_TEST_TARGETS": "mlprogram", "INCLUDE_MIL_FP32_UNIT_TESTS": "1",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        command = [sys.executable, "-m", "edge_mlp.mil.conformance", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                   "--tb=no", "--no-header", *targets]
        done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        if not out.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
            raise ConformanceError(f"the op test run ended without results (exit {done.returncode}): {tail[0]}")
        return [Case(**c) for c in json.loads(out.read_text())]


def summarize(cases: list[Case]) -> dict[str, Any]:
    """Per family: counts by status (unsupported by reason), the first failure, and totals."""
    import coremltools

    def first(group: list[Case], status: str) -> str | None:
        return next((f"{c.nodeid}: {c.message}" for c in group if c.status == status), None)

    def count(group: list[Case]) -> dict[str, Any]:
        by = {s: sum(c.status == s for c in group) for s in STATUSES}
        reasons = sorted({c.reason for c in group if c.reason})
        flawed = [c.fp16_steps for c in group if c.status == "flawed reference"]
        return {
            "run": by["pass"] + by["fail"] + by["unsupported"] + by["flawed reference"],
            **{s.replace(" ", "_"): n for s, n in by.items()},
            "unsupported_by_reason": {r: sum(c.reason == r for c in group) for r in reasons},
            "first_unsupported": {r: next(c.message for c in group if c.reason == r) for r in reasons},
            "flawed_reference_max_fp16_steps": max(flawed) if flawed else None,
            "first_failure": first(group, "fail"),
            "first_not_reached": first(group, "not reached"),
        }

    # the op (versions) refused, from the interpreter's one-line messages
    missing = {op.strip() for c in cases if c.reason in ("op", "op version") and c.message
               for found in re.findall(r"uses MIL op(?: version)?\(s\) (.+?) that", c.message)
               for op in re.split(r", (?![^(]*\))", found)}
    families = {f: count([c for c in cases if c.family == f]) for f in FAMILIES if any(c.family == f for c in cases)}
    return {"coremltools": coremltools.__version__, "families": families, "totals": count(cases),
            "unsupported_ops": sorted(missing),
            "flawed_references": [asdict(c) for c in cases if c.status == "flawed reference"]}


def markdown(summary: dict[str, Any]) -> str:
    rows = ["| op family | run | pass | fail | unsupported | flawed reference |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in [*summary["families"].items(), ("**total**", summary["totals"])]:
        why = ", ".join(f"{n} {reason}" for reason, n in r["unsupported_by_reason"].items())
        rows.append(f"| {name} | {r['run']} | {r['pass']} | {r['fail']} | {r['unsupported']}"
                    f"{f' ({why})' if why else ''} | {r['flawed_reference']} |")
    totals = summary["totals"]
    steps = totals.get("flawed_reference_max_fp16_steps")
    if totals["flawed_reference"] and steps is not None:
        rows.append(f"\nFlawed references: the interpreter's largest difference from them is {steps:.2f} of an "
                    "fp16 step at the output's scale.")
    return "\n".join(rows)


def _child(args: list[str]) -> int:
    """The child pytest, with this module as its plugin."""
    # coremltools imports these for converters the op tests never use; absent, it starts ~10 s sooner.
    unused = ("executorch", "torchao", "sklearn") + (() if os.environ.get(_TORCH_ENV) else ("torch",))
    for name in unused:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import pytest

    return int(pytest.main(args, plugins=[sys.modules[__name__]]))


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
