"""Delegation coverage of the mobile models, as the manifests record it (edge_mlp.ops.export_forms).

ExecuTorch: every compute op inside one XNNPACK partition, fp32 and int8. LiteRT: where full
delegation and no interior TRANSPOSE are not reached yet, the measured state is a ceiling that a
regression would exceed (README "Latency" says what remains and why).
"""

from __future__ import annotations

import pytest

MODELS = ["as_mlp_mobile", "cycle_mlp_mobile", "mixer_mobile"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_executorch_delegates_every_compute_op_in_one_partition(converted, model: str, precision: str) -> None:
    coverage = converted(model, "executorch", precision).manifest.coverage
    assert coverage["non_delegated_compute_ops"] == {}, coverage["non_delegated_compute_ops"]
    assert coverage["compute_ops_delegated"] == coverage["compute_ops_total"] > 0
    assert coverage["delegated_subgraphs"] == 1


# (ops outside the XNNPACK delegate, TRANSPOSE ops) measured for the test-size models.
TFLITE_CEILINGS = {
    ("as_mlp_mobile", "fp32"): (28, 29), ("as_mlp_mobile", "int8"): (30, 28),
    ("cycle_mlp_mobile", "fp32"): (0, 1), ("cycle_mlp_mobile", "int8"): (6, 1),
    ("mixer_mobile", "fp32"): (0, 7), ("mixer_mobile", "int8"): (4, 7),
}


@pytest.mark.parametrize("model,precision", list(TFLITE_CEILINGS))
def test_tflite_delegation_and_transposes_do_not_regress(converted, model: str, precision: str) -> None:
    coverage = converted(model, "tflite", precision).manifest.coverage
    outside, transposes = TFLITE_CEILINGS[(model, precision)]
    assert coverage["ops_total"] - coverage["ops_delegated"] <= outside, coverage["non_delegated_ops"]
    assert coverage["transpose_ops"] <= transposes
    if outside == 0:
        assert coverage["non_delegated_ops"] == {}
