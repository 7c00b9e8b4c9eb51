"""Delegation coverage of the mobile models, as the manifests record it (edge_mlp.ops.export_forms).

ExecuTorch: every compute op inside one XNNPACK partition, fp32 and int8. LiteRT: every fp32 op
in one partition and no TRANSPOSE inside the graph; int8 ops left outside are a measured ceiling
that a regression would exceed (README "Latency" says what remains and why).
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


@pytest.mark.parametrize("model", MODELS)
def test_tflite_fp32_runs_every_op_in_one_delegate_partition(converted, model: str) -> None:
    coverage = converted(model, "tflite", "fp32").manifest.coverage
    assert coverage["non_delegated_ops"] == {} and coverage["ops_delegated"] == coverage["ops_total"] > 0
    assert coverage["delegate_partitions"] == 1


# TRANSPOSE ops in the channels-last export (NormForm.CHANNELS_LAST): as_mlp and cycle_mlp keep
# only the NCHW input's; Mixer's token mixing transposes (tokens, channels) twice per block by design.
TFLITE_TRANSPOSES = {"as_mlp_mobile": 1, "cycle_mlp_mobile": 1, "mixer_mobile": 7}
# int8: ops outside the delegate, measured for the test-size models. LiteRT fuses a float GELU
# (softmax) between int8 neighbours into an int8 one, which XNNPACK does not run (README "Latency").
# AS-MLP's 4 per block since its branch sums are int8 too (converters.pt2e.tensor_adds_int8: the
# graph is faster so, although two more GELUs per block leave the delegate).
TFLITE_INT8_OUTSIDE = {"as_mlp_mobile": 8, "cycle_mlp_mobile": 6, "mixer_mobile": 4}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("model", MODELS)
def test_tflite_transposes_and_int8_delegation(converted, model: str, precision: str) -> None:
    coverage = converted(model, "tflite", precision).manifest.coverage
    assert coverage["transpose_ops"] <= TFLITE_TRANSPOSES[model]
    if precision == "int8":
        outside = coverage["ops_total"] - coverage["ops_delegated"]
        assert outside <= TFLITE_INT8_OUTSIDE[model], coverage["non_delegated_ops"]
        assert set(coverage["non_delegated_ops"]) <= {"GELU", "SOFTMAX"}, coverage["non_delegated_ops"]
