"""Parity on arm64 kernels (issue 17): the small test models' artifacts run on the aarch64 builds of
ExecuTorch / LiteRT / ONNX Runtime under user-mode QEMU (edge_mlp.arm64) against the same
artifacts on this host's x86 kernels, and `run_parity_arm64` end to end on the demo eval subset.

The arm64 root is built once per machine (~/.cache/edge-mlp/arm64, about 10 minutes the first
time; `make arm64` builds it ahead) and reused. These tests skip, saying why, only where the
machine cannot build it at all (not root, no binfmt_misc); any other failure fails. The artifacts
come from the run's shared conversion cache (tests/conftest.py `converted`), so they cost nothing
when tests/test_convert.py and tests/test_backbones.py run too.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from edge_mlp import converters
from edge_mlp.arm64 import Arm64Error, Arm64Unavailable, prepare_root, run_arm64
from edge_mlp.arm64.cpu import CpuIdentity, cpu_identity
from edge_mlp.arm64.parity import arm64_rows, check_arm64, run_parity_arm64
from edge_mlp.arm64.runner import SME_CPU
from edge_mlp.calibration import synthetic_images
from edge_mlp.demo import EVAL_SUBSET
from edge_mlp.errors import EdgeMlpError
from edge_mlp.models import config_from_record
from edge_mlp.preprocess import Preprocessing

MODEL = "mixer_mobile"  # converted for tests/test_convert.py too: the run's artifact cache shares them
IMAGES = 200  # int8: a few hundred per runtime, where the arm64 kernels are other code than x86's
FP32_IMAGES = 16  # fp32 differs by float rounding only, and emulating it costs 3-5x int8's time per image
DATA = str(EVAL_SUBSET)
FP32_REL = 1e-4  # x86 vs arm64 float kernels: max |diff| <= FP32_REL x the logits' range


@pytest.fixture(scope="module")
def arm_root():
    try:
        return prepare_root()
    except Arm64Unavailable as err:
        pytest.skip(f"this machine cannot run the arm64 root: {err}")


def _images(manifest, n: int = IMAGES, size: tuple[int, int] | None = None) -> np.ndarray:
    config = config_from_record(manifest.model.name, manifest.model.config)
    preprocess = Preprocessing.for_model(config)
    if size is not None:
        preprocess = preprocess.at_size(*size)
    return np.concatenate(synthetic_images(preprocess, n, seed=321))


def _both(converted, arm_root, target: str, precision: str, cpu: str = "cortex-a76"):
    result = converted(MODEL, target, precision)
    n = IMAGES if precision == "int8" else FP32_IMAGES
    x = _images(result.manifest, n)
    x86 = converters.get_converter(target).open_model(result.artifact).batch_outputs(x)
    arm = run_arm64(result.artifact, x, cpu=cpu, root=arm_root)
    assert arm.machine == "aarch64" and arm.cpu == cpu
    assert len(arm.outputs) == len(x86) == 1 and arm.outputs[0].shape == x86[0].shape == (n, 10)
    return x86[0], arm


# x86 vs arm64 int8, XNNPACK (ExecuTorch, LiteRT): not bit-exact in general. On the demo models' 2,000
# images (benchmarks/results/arm64_parity.json) 1 of 6 artifacts is bit-identical and the others differ
# on 0.1-6.0 % of the logits by a few int8 output steps, top-1 for top-1: the float ops between the
# int8 GEMMs (and LiteRT's non-delegated ops) round differently per architecture. Bounded accordingly.
INT8_DIFFERING = 0.10  # at most this share of the logits differ
INT8_REL = 0.05  # max |diff| <= INT8_REL x the logits' range


@pytest.mark.parametrize("target", ["executorch", "tflite"])
def test_xnnpack_int8_on_arm64_matches_x86(converted, arm_root, target: str, record_property) -> None:
    x86, arm = _both(converted, arm_root, target, "int8")
    assert arm.xnnpack, arm.evidence
    assert arm.cpu_part == "0xd0b" and "asimddp" in arm.cpu_features  # Cortex-A76: NEON dot product
    if target == "executorch":
        assert arm.entry == "forward" and arm.evidence["methods"] == ["forward"]
        assert arm.evidence["method_backends"] == ["XnnpackBackend"]
        assert arm.evidence["backend_available"] == {"XnnpackBackend": True}
    else:
        assert arm.entry == "serving_default"
        assert arm.evidence["delegate_partitions"] >= 1 and arm.evidence["input_dtype"] == "int8"
    diff = np.abs(arm.logits - x86)
    record_property(f"{target}_int8_differing", int((diff > 0).sum()))
    assert (arm.logits.argmax(1) == x86.argmax(1)).all()
    assert (diff > 0).mean() <= INT8_DIFFERING and diff.max() <= INT8_REL * float(x86.max() - x86.min()), (
        f"{target} int8 arm64 vs x86: {int((diff > 0).sum())}/{diff.size} logits differ, max {diff.max():.3g}")


@pytest.mark.parametrize("target", ["executorch", "tflite", "onnx"])
def test_fp32_on_arm64_matches_x86_to_float_rounding(converted, arm_root, target: str) -> None:
    x86, arm = _both(converted, arm_root, target, "fp32")
    if target == "onnx":
        assert arm.xnnpack is None and arm.entry == ""
    else:
        assert arm.xnnpack, arm.evidence  # the whole float graph on XNNPACK's arm64 kernels
        if target == "tflite":
            assert arm.evidence["ops_delegated"] == arm.evidence["ops_total"], arm.evidence
    assert np.abs(arm.logits - x86).max() <= FP32_REL * float(x86.max() - x86.min())
    assert (arm.logits.argmax(1) == x86.argmax(1)).all()


def test_onnx_int8_difference_is_reported_not_hidden(converted, arm_root) -> None:
    """run_parity_arm64 end to end on the demo eval subset: both reports in the ParityReport schema
    and the x86-vs-arm64 difference computed (ORT's int8 kernels are not bit-exact across arches)."""
    artifact = converted(MODEL, "onnx", "int8").artifact
    report = run_parity_arm64(artifact, data=DATA, limit=200, root=arm_root)
    x86, arm, d = report.x86, report.arm64, report.difference
    assert x86.images == arm.images == 200 and x86.runtime.startswith("onnxruntime ")
    assert arm.runtime.startswith("onnxruntime ") and "on arm64" in arm.runtime and "cortex-a76" in arm.runtime
    assert arm.top1_reference == x86.top1_reference and arm.top1_artifact is not None
    assert d.total == 200 * 10 and 0 <= d.differing <= d.total and d.bit_identical == (d.differing == 0)
    assert np.isfinite(d.max_abs_diff) and (d.max_abs_diff == 0) == d.bit_identical
    assert d.top1_agreement is not None and 0 <= d.top1_differing_images <= 200
    # Bounded by the logits' scale so that a broken run (wrong layout, garbage) still fails.
    assert d.max_abs_diff <= 0.25 * x86.logit_range
    if not d.bit_identical:
        assert any("ONNX Runtime" in n for n in report.notes), report.notes
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["arm64"]) == set(data["x86"]) == set(x86.to_dict())
    assert data["arch"] == "arm64" and data["cpu"] == "cortex-a76" and data["sme"] is False
    assert data["x86_vs_arm64"]["differing"] == d.differing and data["xnnpack"] is None
    rows = dict(arm64_rows(report))
    assert "x86 vs arm64" in rows and "top-1 agreement x86 vs arm64" in rows
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in arm64_rows(report))


def test_parity_of_an_xnnpack_artifact_on_arm64(converted, arm_root) -> None:
    report = run_parity_arm64(converted(MODEL, "executorch", "int8").artifact, data=DATA, limit=200, root=arm_root)
    d = report.difference
    assert report.xnnpack is True and report.xnnpack_evidence["method_backends"] == ["XnnpackBackend"]
    assert report.entries == ["forward"] and report.cpu_part == "0xd0b" and not report.to_dict()["sme"]
    assert d.top1_agreement == 100.0 and report.arm64.top1_artifact == report.x86.top1_artifact
    assert d.differing <= INT8_DIFFERING * d.total and d.max_abs_diff <= INT8_REL * report.x86.logit_range
    assert dict(arm64_rows(report))["x86 vs arm64"] == (
        "bit-identical" if d.bit_identical else f"differ: {d.differing:,}/{d.total:,} values ({d.differing_pct:.2g} %)")
    assert dict(arm64_rows(report))["XNNPACK on arm64"] == "yes: method delegates to XnnpackBackend"


def test_multi_size_backbone_runs_each_entry_point_with_every_output(converted, arm_root) -> None:
    """A multi-size backbone: the method of the input's size runs (forward_64x96), and every
    feature map comes back in order, as on the host."""
    result = converted("as_mlp_mobile", "executorch", "fp32", features_only=True, img_size=[64, (64, 96)])
    features = result.manifest.features
    host = converters.get_converter("executorch").open_model(result.artifact)
    x = _images(result.manifest, 2, (64, 96))
    arm = run_arm64(result.artifact, x, root=arm_root)
    assert arm.entry == "forward_64x96" and arm.evidence["methods"] == ["forward", "forward_64x96"]
    assert arm.xnnpack and arm.evidence["method_backends"] == ["XnnpackBackend"]
    assert len(features) >= 2
    assert [list(o.shape) for o in arm.outputs] == [[2, f.channels, 64 // f.stride, 96 // f.stride] for f in features]
    for a, h in zip(arm.outputs, host.batch_outputs(x)):
        assert np.abs(a - h).max() <= FP32_REL * float(h.max() - h.min())


def test_check_arm64_refuses_bad_requests_in_one_line_before_any_run(converted, arm_root, tmp_path,
                                                                     monkeypatch) -> None:
    artifact = converted(MODEL, "onnx", "int8").artifact
    start = time.monotonic()
    check = check_arm64(artifact, "max,sme=off")
    assert check.root_ready and "sme" not in check.identity.features and "QEMU_CPU=max,sme=off" in check.line()
    for cpu, match in (("cortex-x9", "QEMU has no CPU model 'cortex-x9'"), ("max,sme", "NAME=VALUE"),
                       ("", "expected a QEMU CPU model")):
        with pytest.raises(Arm64Error, match=match) as err:
            check_arm64(artifact, cpu)
        assert "\n" not in str(err.value)
    with pytest.raises(Arm64Error, match="no CPU model"):
        run_parity_arm64(artifact, data=DATA, limit=2, cpu="cortex-x9")
    assert time.monotonic() - start < 10
    with pytest.raises(EdgeMlpError, match="has no manifest"):
        check_arm64(tmp_path / "missing.pte")
    # A Core ML artifact (its manifest rewritten to one: no conversion needed to check the refusal).
    package = tmp_path / "model.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    from edge_mlp.fileio import sha256_path
    from edge_mlp.manifest import manifest_path

    data = json.loads(converted(MODEL, "onnx", "int8").manifest_path.read_text())
    data["target"]["name"] = "coreml"
    data["artifact"].update(file=package.name, sha256=sha256_path(package))
    manifest_path(package).write_text(json.dumps(data))
    with pytest.raises(Arm64Error, match="^Core ML has no arm64 Linux runtime; "):
        check_arm64(package)
    # An empty root folder: the check says the first run builds it, without touching the cached one.
    monkeypatch.setenv("EDGE_MLP_ARM64_ROOT", str(tmp_path / "empty"))
    fresh = check_arm64(artifact)
    assert not fresh.root_ready and fresh.identity is None and "this run builds it" in fresh.line()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(Arm64Unavailable, match="needs root"):
        check_arm64(artifact)


def test_second_prepare_is_a_fast_no_op(arm_root) -> None:
    # No wall-time bound (a benchmark's job). Doing nothing is what is checked: no layer built, no
    # build step logged, the same stamps; a current root is confirmed under the shared lock, so
    # this does not wait for another worker's emulated runs.
    lines: list[str] = []
    again = prepare_root(log=lines.append)
    assert again.built == () and again.path == arm_root.path and again.stamp == arm_root.stamp
    assert lines == []
    assert arm_root.versions["executorch"] == "1.5.1" and "ai-edge-litert" in arm_root.versions


def test_cpu_models_as_the_kernels_see_them(arm_root) -> None:
    a76 = cpu_identity(arm_root.cpuprobe, "cortex-a76")
    assert a76.midr == 0x414FD0B1 and "sme" not in a76.features and "asimddp" in a76.features
    sme = cpu_identity(arm_root.cpuprobe, SME_CPU)
    assert "sme" in sme.features and "sve2" in sme.features
    assert "sme" not in cpu_identity(arm_root.cpuprobe, "max,sme=off").features
    with pytest.raises(Arm64Error, match="no CPU model 'cortex-x9'"):
        cpu_identity(arm_root.cpuprobe, "cortex-x9")


def test_cpuinfo_text_is_what_linux_prints_for_the_model() -> None:
    text = CpuIdentity("cortex-a76", 0x414FD0B1, ("fp", "asimd", "asimddp")).cpuinfo(2)
    assert text.count("processor\t:") == 2
    assert ("Features\t: fp asimd asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
            "CPU part\t: 0xd0b\nCPU revision\t: 1\n") in text


def test_bad_requests_are_one_line_errors(tmp_path) -> None:
    bad = tmp_path / "model.mlpackage"
    bad.write_bytes(b"")
    with pytest.raises(Arm64Error, match="runs .pte, .tflite, .onnx artifacts"):
        run_arm64(bad, np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(Arm64Error, match="no such file"):
        run_arm64(tmp_path / "missing.pte", np.zeros((1, 3, 8, 8), np.float32))


def test_not_root_is_unavailable_not_a_failure(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(Arm64Unavailable, match="needs root"):
        prepare_root(tmp_path / "cache")


def test_a_missing_aarch64_wheel_is_named(monkeypatch, tmp_path) -> None:
    from edge_mlp.arm64 import root

    def no_wheel(argv, what, log_path=None, **_):
        log_path.write_text("ERROR: No matching distribution found for onnxruntime==9.9.9\n")
        raise Arm64Error(f"{what} failed (exit 1)")

    monkeypatch.setattr(root, "_run", no_wheel)
    with pytest.raises(Arm64Error, match=r"no aarch64 CPython 3.11 wheel on PyPI for onnxruntime==9.9.9"):
        root._pip(["install", "onnxruntime==9.9.9"], "pip install", tmp_path / "log")


def test_a_missing_host_tool_is_named(monkeypatch) -> None:
    """No apt-get to install qemu-user-static etc. with: one line naming the packages."""
    from edge_mlp.arm64 import root

    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(Arm64Unavailable, match="missing host tools .*qemu-user-static.* and no apt-get"):
        root.ensure_host_tools()


def test_cli_parity_arch_arm64_prints_both_runs_and_writes_json(converted, arm_root, tmp_path, capsys) -> None:
    from edge_mlp.cli import main

    artifact = converted(MODEL, "tflite", "int8").artifact
    out = tmp_path / "arm64.json"
    # the CLI's report and JSON: the difference itself is checked on 200 images above
    assert main(["parity", str(artifact), "--data", DATA, "--limit", "50", "--arch", "arm64", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for line in ("top-1 tflite int8, x86", "top-1 tflite int8, arm64", "x86 vs arm64", "top-1 agreement x86 vs arm64",
                 "XNNPACK on arm64", "cortex-a76"):
        assert line in text, text
    (report,) = json.loads(out.read_text())
    assert report["arch"] == "arm64" and report["cpu"] == "cortex-a76" and report["xnnpack"] is True
    assert report["arm64"]["images"] == report["x86"]["images"] == 50
    assert report["x86_vs_arm64"]["top1_agreement"] == 100.0


def test_cli_arm64_options_are_checked_in_one_line(converted, tmp_path, capsys) -> None:
    from edge_mlp.cli import main

    artifact = str(converted(MODEL, "onnx", "int8").artifact)
    for argv, message in (
        (["--cpu", "max"], "--cpu picks the emulated CPU of --arch arm64"),
        (["--arch", "arm64", "--per-layer"], "--per-layer does not apply to --arch arm64"),
        (["--arch", "arm64", "--cpu", "cortex-x9"], "QEMU has no CPU model 'cortex-x9'"),
    ):
        if "cortex-x9" in argv and os.geteuid() != 0:
            continue  # the root check comes first there
        assert main(["parity", artifact, "--data", DATA, *argv, "--json", str(tmp_path / "r.json")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "r.json").exists()


def test_make_arm64_says_why_it_cannot_in_one_line(monkeypatch, capsys, tmp_path) -> None:
    """`make arm64` (python -m edge_mlp.arm64) on a machine that cannot: exit 2, one line, no root
    folder made. No binfmt_misc is real here: mount refuses a mount point that does not exist."""
    from edge_mlp.arm64 import __main__ as make_arm64
    from edge_mlp.arm64 import root

    if os.geteuid() == 0:
        monkeypatch.setattr(root, "BINFMT_DIR", tmp_path / "no" / "binfmt_misc")
        monkeypatch.setenv("EDGE_MLP_ARM64_ROOT", str(tmp_path / "cache"))
        assert make_arm64.main() == 2
        err = capsys.readouterr().err
        assert err.startswith("error: cannot mount binfmt_misc") and err.count("\n") == 1, err
        assert not (tmp_path / "cache" / "root").exists()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert make_arm64.main() == 2
    err = capsys.readouterr().err
    assert "needs root" in err and err.count("\n") == 1, err
