"""Apple's own MIL op tests for the normalization and weight-compression ops, against our interpreter.

A fast subset of `benchmarks/mil_conformance.py` (every op family; results in
benchmarks/results/mil_conformance.json): coremltools' test programs, expected outputs and
tolerances, unchanged, with the interpreter predicting where Core ML would (macOS only), in the
precision of each test's backend. The layer_norm cases scale non-trailing axes (axes=[0, 2] of a
rank-3 x), which the interpreter once got wrong.
"""

from __future__ import annotations

from collections import Counter

from edge_mlp.mil import conformance

# Family -> regex of the Apple test cases run here (node ids relative to coremltools' op tests).
SUBSET = {
    "layer_norm": r"LayerNorm::test_builder_to_backend_stress_numpy\[.*rank_and_axes=\[(3, \[0, 2\]|4, \[0, 1, 3\]|5, "
                  r"\[-5, -4, -3, -2, -1\])\]-epsilon=0\.01-provides_gamma_beta=True\]",
    "batch_norm": r"BatchNorm::test_builder_to_backend_smoke\[.*x_param_dtype=\(<class 'numpy\.float32'>, <class "
                  r"'numpy\.float32'>\)",
    "instance_norm": r"InstanceNorm::test_builder_to_backend_smoke_with_gamma_and_beta\[.*'fp16'.*\(<class "
                     r"'numpy\.float32'>, <class 'numpy\.float32'>\)",
    "constexpr_affine_dequantize": r"TestConstexprAffineDequantize::test_builder_to_backend_smoke\[",
    "constexpr_lut_to_dense": r"(TestConstexprLutToDense::test_builder_to_backend_smoke\[|"
                              r"TestConstexprLut::test_builder_to_backend_smoke\[.*nbits=[24]\])",
    "constexpr_blockwise_shift_scale": r"TestConstexprBlockwiseDequantize::test_builder_to_backend_smoke\[.*"
                                       r"nbits=4-has_offset=True",
}


def test_apple_op_tests_pass_on_the_interpreter() -> None:
    cases = conformance.run(list(SUBSET), match="|".join(f"(?:{regex})" for regex in SUBSET.values()), torch=False,
                            timeout=600)
    reached = [c for c in cases if c.status not in ("skipped", "no comparison")]
    problems = [f"{c.nodeid}: {c.status}: {c.message}" for c in reached if c.status != "pass"]
    assert not problems, "\n".join(problems)
    ran = Counter(c.family for c in reached)
    assert {family: ran[family] >= 2 for family in SUBSET} == {family: True for family in SUBSET}, ran
    # both interpreter precisions, and the non-trailing layer_norm axes
    assert {c.precision for c in reached} == {"fp16", "fp32"}
    assert any("rank_and_axes=[3, [0, 2]]" in c.nodeid for c in reached if c.family == "layer_norm")
