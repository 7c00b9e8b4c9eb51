"""Every target x precision converts, runs on its real runtime, and matches PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edge_mlp import converters
from edge_mlp.calibration import synthetic_images
from edge_mlp.convert import auto_lowering
from edge_mlp.fileio import sha256_path
from edge_mlp.manifest import SCHEMA_VERSION, Manifest
from edge_mlp.models import config_from_record
from edge_mlp.options import Precision
from edge_mlp.parity import reference_model
from edge_mlp.preprocess import Preprocessing

from .conftest import TEST_CLASSES, TEST_IMG, TEST_MODELS

COREML = [str(p) for p in converters.get_converter("coreml").precisions]
# Every target x precision the registry declares. Core ML runs on edge-mlp's MIL interpreter off
# macOS (tests/test_mil_interpreter.py checks it op by op).
RUNNABLE = [(c.target, str(p)) for c in converters.all_converters() for p in c.precisions]
# Core ML's weights below 8 bits are checked against PyTorch running the package's own decompressed
# weights (tests/test_coreml_compression.py) and for accuracy on real data (tests/test_parity.py):
# against fp32 weights, 4-bit noise on the random-init test models costs cosine 0.96-0.99 by itself.
RUNNABLE_8_BITS_UP = [(t, p) for t, p in RUNNABLE if not Precision(p).low_bit]


def _reference(manifest: Manifest, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Test images (natural-image statistics, not the calibration seed) and PyTorch fp32 logits."""
    config = config_from_record(manifest.model.name, manifest.model.config)
    model = reference_model(manifest)  # the converter's seed: identical random-init weights
    x = np.concatenate(synthetic_images(Preprocessing.for_model(config), n, seed=123))
    with torch.no_grad():
        return x, model(torch.from_numpy(x)).numpy()


def _run(target: str, artifact, x: np.ndarray) -> np.ndarray:
    return converters.get_converter(target).predict(artifact, x)


@pytest.mark.parametrize("target,precision", RUNNABLE_8_BITS_UP)
@pytest.mark.parametrize("model", list(TEST_MODELS))
def test_artifact_runs_on_its_runtime_and_matches_pytorch(converted, model: str, target: str, precision: str) -> None:
    result = converted(model, target, precision)
    x, ref = _reference(result.manifest)
    out = _run(target, result.artifact, x)
    assert out.shape == ref.shape == (len(x), TEST_CLASSES)
    if precision == "fp32":
        logit_range = float(ref.max() - ref.min())
        assert np.abs(out - ref).max() <= 1e-4 * logit_range
        assert (out.argmax(1) == ref.argmax(1)).all()
    else:
        cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
        assert cos.min() >= 0.99, cos


@pytest.mark.parametrize("target,precision", RUNNABLE)
def test_manifest_describes_the_artifact(converted, target: str, precision: str) -> None:
    result = converted("as_mlp_mobile", target, precision)
    m = Manifest.read(result.manifest_path)
    assert m.schema_version == SCHEMA_VERSION
    assert m.artifact.file == result.artifact.name
    assert m.artifact.sha256 == sha256_path(result.artifact)
    assert m.model.name == "as_mlp_mobile" and m.model.config["depths"] == list(TEST_MODELS["as_mlp_mobile"]["depths"])
    assert m.input.shape == [1, 3, TEST_IMG, TEST_IMG] and m.output.tensor.shape == [1, TEST_CLASSES]
    assert m.preprocessing["crop"] == [TEST_IMG, TEST_IMG] and m.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert m.target.name == target and "torch" in m.target.runtime
    assert m.precision == precision
    assert m.shift_lowering.requested == "auto"
    auto = auto_lowering(converters.get_converter(target), Precision(precision), "as_mlp")
    assert m.shift_lowering.used == auto.lowering and m.shift_lowering.reason == auto.reason
    assert m.conversion["wall_time_s"] > 0 and m.edge_mlp_version
    # The delegate targets and ONNX fold the norms' affines (edge_mlp.ops.fold): 2 blocks x 3 + the
    # patch merging's + the final norm's; Core ML exports the model's own norms.
    folds = [n for n in m.notes if "affines of" in n]
    assert folds == (["export: the affines of 8 norms folded into the 1x1 conv / linear after each "
                      "(edge_mlp.ops.fold)"] if target in ("executorch", "tflite", "onnx") else []), m.notes
    if precision in ("int8", "w8"):
        assert m.quantization is not None and m.quantization.scheme
    if precision == "int8":
        assert m.quantization.calibration["size"] == 8 and m.quantization.calibration["source"] == "synthetic"
    if target == "tflite" and precision == "int8":
        assert m.input.dtype == "int8" and m.input.quantization.scale > 0
        assert m.output.tensor.quantization is not None
    if target == "executorch":
        assert m.coverage["compute_ops_delegated"] > 0
        assert set(m.coverage["by_operator"]) >= set(m.coverage["non_delegated_compute_ops"])
    if target == "tflite":
        assert m.coverage["ops_total"] == sum(m.coverage["op_histogram"].values())
    json.loads(result.manifest_path.read_text())  # plain JSON for the apps


@pytest.mark.parametrize("precision", COREML)
@pytest.mark.parametrize("model", list(TEST_MODELS))
def test_coreml_package_is_structurally_sound(converted, model: str, precision: str) -> None:
    import coremltools as ct

    result = converted(model, "coreml", precision)
    mlmodel = ct.models.MLModel(str(result.artifact), skip_model_load=True)
    spec = mlmodel.get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), (out,) = spec.description.input, spec.description.output
    assert list(inp.type.multiArrayType.shape) == [1, 3, TEST_IMG, TEST_IMG]
    assert inp.name == result.manifest.input.name and out.name == result.manifest.output.tensor.name
    ops = result.manifest.coverage["mil_op_histogram"]
    compute = {"conv", "linear", "matmul"} & set(ops)
    assert compute, ops
    if precision == "int8":
        assert {"quantize", "dequantize"} <= set(ops) or "constexpr_affine_dequantize" in ops
    if precision == "w8":
        assert "constexpr_affine_dequantize" in ops
    if precision in ("fp16", "w8"):
        assert "cast" in ops  # fp32 I/O around fp16 compute
    if precision == "fp32":
        assert not any(op.startswith("constexpr") or op in ("quantize", "dequantize") for op in ops)


# int8 through PT2E (calibration, observers, convert_pt2e: what ExecuTorch's int8 shares with
# LiteRT's) and through ONNX Runtime's quantizer. ExecuTorch's lowering itself is checked for the
# same bytes across processes by tests/test_workers.py (fp32); its int8 here cost 20-45 s a run.
@pytest.mark.parametrize("target", ["tflite", "onnx"])
def test_same_inputs_give_identical_bytes(converted, target: str) -> None:
    # The smallest test model: determinism is the pipeline's, and an int8 conversion of it is quick.
    first = converted("mixer_mobile", target, "int8")
    second = converted("mixer_mobile", target, "int8", shift_lowering="auto", calib="synthetic")
    assert first.artifact != second.artifact
    assert first.artifact.read_bytes() == second.artifact.read_bytes()


def test_explicit_lowering_is_recorded_and_equivalent(converted) -> None:
    roll = converted("as_mlp_mobile", "onnx", "fp32", shift_lowering="roll")
    assert roll.manifest.shift_lowering.used == "roll"
    assert roll.manifest.shift_lowering.reason == "requested explicitly"
    x, ref = _reference(roll.manifest)
    assert np.abs(_run("onnx", roll.artifact, x) - ref).max() <= 1e-4 * float(ref.max() - ref.min())


def test_mixer_records_that_it_has_no_shift(converted) -> None:
    m = converted("mixer_mobile", "onnx", "fp32").manifest
    assert (m.shift_lowering.requested, m.shift_lowering.used) == ("none", "none")


class _OneHotOnly(torch.nn.Module):
    """Just one one-hot conv op of the export forms: AS-MLP's shift along W (the `conv` lowering)
    or PatchMerging's channels-last space-to-depth, so an int8 artifact's codes can be checked."""

    def __init__(self, op: str, channels: int) -> None:
        super().__init__()
        from edge_mlp.models.as_mlp import PatchMerging, Shift

        self.op = op
        self.inner = Shift(5, 3, channels) if op == "shift" else PatchMerging(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from edge_mlp.ops.export_forms import space_to_depth

        return self.inner(x) if self.op == "shift" else space_to_depth(x, self.inner.space_to_depth_kernel)


def _codes_moved(op: str, codes: np.ndarray, zero_point: int) -> np.ndarray:
    """The official op on int8 codes: each code moved unchanged, the zero point where zeros fill."""
    from .reference import axial_shift_reference

    if op == "shift":
        shifted = axial_shift_reference(codes.astype(np.float32) - zero_point, 5, 3)
        return (shifted + zero_point).astype(codes.dtype)
    cells = [codes[:, :, 0::2, 0::2], codes[:, :, 1::2, 0::2], codes[:, :, 0::2, 1::2], codes[:, :, 1::2, 1::2]]
    return np.concatenate(cells, 1)


@pytest.mark.parametrize("op", ["shift", "space_to_depth"])
def test_one_hot_convs_move_int8_codes_unchanged_on_litert(tmp_path, op: str) -> None:
    """The `conv` shift lowering and the channels-last space-to-depth in int8: with the output
    sharing the input's params, the real runtime returns every input code unchanged (slicing's
    semantics), not a re-rounded one."""
    from contextlib import nullcontext

    from ai_edge_litert.interpreter import Interpreter

    from edge_mlp.converters import ConversionRequest
    from edge_mlp.options import ShiftLowering, using_forms

    torch.manual_seed(0)
    model = _OneHotOnly(op, 10).eval()
    calibration = [torch.randn(1, 10, 8, 12) for _ in range(4)]
    converter = converters.get_converter("tflite")
    request = ConversionRequest(model=model, example=calibration[0], precision="int8", calibration=calibration,
                                work_dir=tmp_path, stem="m", num_classes=1, stage=lambda _: nullcontext())
    with using_forms(converter.export_forms(ShiftLowering.CONV)):
        path = converter.convert(request).path
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["quantization"] == out["quantization"]  # shared params
    codes = np.random.default_rng(0).integers(-128, 128, size=inp["shape"], dtype=np.int8)
    it.set_tensor(inp["index"], codes)
    it.invoke()
    assert np.array_equal(it.get_tensor(out["index"]), _codes_moved(op, codes, inp["quantization"][1]))


def test_core_ml_conversion_keeps_a_callers_frozen_objects_frozen() -> None:
    """Core ML conversions freeze the process's objects around ct.convert() (its closing full
    gc.collect()); that must not undo a freeze of the caller's own (a server's before forking)."""
    import gc

    from edge_mlp.converters.coreml import earlier_objects_frozen

    assert gc.get_freeze_count() == 0
    with earlier_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with earlier_objects_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_core_ml_pass_pipelines_validate_the_program_once_and_still_refuse_an_invalid_one(monkeypatch) -> None:
    """coremltools validates a MIL program after each graph pass; within pipelines_validated_once
    a pipeline validates once, at its end, and an invalid program still fails there."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Program
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline, PassPipelineManager

    from edge_mlp.converters.coreml import pipelines_validated_once

    def program() -> Program:
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
        def prog(x):
            return mb.relu(x=mb.add(x=mb.mul(x=x, y=2.0), y=1.0))

        return prog

    original = PassPipelineManager.__dict__["apply_pipeline"].__func__
    validations = []
    validate = Program.validate
    monkeypatch.setattr(Program, "validate", lambda self, **kw: (validations.append(kw), validate(self, **kw))[1])
    PassPipelineManager.apply_pipeline(program(), PassPipeline.DEFAULT)
    passes = len(PassPipeline.DEFAULT.passes)
    assert len(validations) == passes + 1
    validations.clear()
    with pipelines_validated_once(), pipelines_validated_once():  # nested: the outer patch stays
        prog = program()
        PassPipelineManager.apply_pipeline(prog, PassPipeline.DEFAULT)
    assert validations == [{"check_essential_scope": True}]  # DEFAULT has dead-code elimination

    broken = program()
    relu = broken.functions["main"].operations[-1]
    relu.outputs[0]._child_ops.append(relu)  # a consumer that does not read the var: invalid state
    with pipelines_validated_once(), pytest.raises(Exception, match="should be consumed by op"):
        PassPipelineManager.apply_pipeline(broken, PassPipeline.EMPTY)
    assert PassPipelineManager.apply_pipeline is original  # restored
