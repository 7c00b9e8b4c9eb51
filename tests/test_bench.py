"""`edge-mlp bench`: the report's schema and internal consistency on real runtimes (no timed
assertions: only that every figure is positive and the derived ones follow from the measured ones)."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from edge_mlp.bench import BACKENDS, TIMED_PRECISIONS, TIMED_TARGETS, BenchJob, run_bench, validate
from edge_mlp.converters.executorch import executor_runner_latency, parse_executor_runner
from edge_mlp.converters.tflite import benchmark_model_latency, parse_benchmark_model
from edge_mlp.cli import main
from edge_mlp.errors import EdgeMlpError

FIXTURES = Path(__file__).parent / "fixtures" / "device"


@pytest.fixture(scope="module")
def artifacts(converted) -> list[str]:
    """as_mlp_mobile on every timed target x precision, plus ONNX fp32 with the shift rolled and removed."""
    paths = [converted("as_mlp_mobile", t, p).artifact for t in TIMED_TARGETS for p in TIMED_PRECISIONS]
    paths.append(converted("as_mlp_mobile", "onnx", "fp32", shift_lowering="roll").artifact)
    paths.append(converted("as_mlp_mobile", "onnx", "fp32", shift_lowering="identity", for_benchmark=True).artifact)
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def report(artifacts) -> dict:
    return run_bench(BenchJob(sources=artifacts, runs=5, warmup=1, profile=True)).to_dict()


def _rows(data: dict) -> dict[tuple[str, str, str], dict]:
    return {(r["backend"], r["precision"], r["shift_lowering"]): r for r in data["results"]}


def test_report_has_every_backend_and_validates(report) -> None:
    assert validate(report) == []
    rows = _rows(report)
    for backend in (BACKENDS[t] for t in TIMED_TARGETS):
        for precision in TIMED_PRECISIONS:
            assert any(k[:2] == (backend, precision) for k in rows), (backend, precision)
    for lowering in ("slice", "roll", "conv", "identity"):  # eager: every exact lowering + the ablation's
        assert (BACKENDS["eager"], "fp32", lowering) in rows
    machine = report["machine"]
    assert machine["gemm_peak_gflops"] > 0 and machine["threads"] == 2 and machine["process_peak_rss_mb"] > 0
    assert json.loads(json.dumps(report)) == report


def test_derived_figures_follow_from_the_measurements(report) -> None:
    rows = _rows(report)
    peak = report["machine"]["gemm_peak_gflops"]
    eager_rows = {low: rows[(BACKENDS["eager"], "fp32", low)] for low in ("slice", "roll", "conv")}
    baseline = min(eager_rows, key=lambda low: eager_rows[low]["latency"]["median_ms"])  # identity is not exact
    for (backend, precision, lowering), r in rows.items():
        median = r["latency"]["median_ms"]
        eager = eager_rows[baseline]["latency"]["median_ms"]
        assert r["speedup_vs_eager_fp32"] == pytest.approx(eager / median)
        assert r["eager_baseline_lowering"] == baseline
        assert r["pct_of_gemm_peak"] == pytest.approx(100 * r["gflops"] / peak, rel=1e-3)
        assert r["latency"]["runs"] == 5 and r["macs"] == rows[(BACKENDS["eager"], "fp32", "slice")]["macs"]
        if precision == "int8":
            fp32_row = rows.get((backend, "fp32", lowering)) or rows[(backend, "fp32", r["fp32_baseline_lowering"])]
            assert r["fp32_baseline_lowering"] == fp32_row["shift_lowering"]
            assert r["speedup_vs_fp32"] == pytest.approx(fp32_row["latency"]["median_ms"] / median)
        if backend != BACKENDS["eager"]:
            assert r["size_bytes"] > 0 and r["artifact"] and r["delegation"]


# A kernel every as_mlp artifact runs, as each runtime's profiler names it.
PROFILED_KERNEL = {"executorch-xnnpack": "GEMM", "litert-xnnpack": "Convolution", "onnxruntime-cpu": "Conv"}


def test_profile_lists_each_artifacts_ops_from_its_runtime(report) -> None:
    for r in report["results"]:
        profile = r["profile"]
        if r["backend"] == BACKENDS["eager"]:
            assert profile is None
            continue
        assert profile["runs"] == 5 and profile["ops"], (r["backend"], r["precision"])
        ops = profile["ops"]
        assert all(op["ms"] >= 0 and op["calls"] >= 1 for op in ops)
        assert sum(op["share"] for op in ops) == pytest.approx(1.0, abs=1e-3)
        assert [op["ms"] for op in ops] == sorted((op["ms"] for op in ops), reverse=True)
        assert any(PROFILED_KERNEL[r["backend"]] in op["op"] for op in ops), [op["op"] for op in ops[:10]]
        # ops run inside one inference: their sum cannot exceed it by more than timer granularity
        if profile["total_ms"]:
            assert sum(op["ms"] for op in ops) <= 1.05 * profile["total_ms"] + 0.05


@pytest.mark.parametrize("target", ["executorch", "tflite"])
def test_profile_prints_nothing_of_the_runtimes_own(converted, capfd: pytest.CaptureFixture[str], target: str) -> None:
    """LiteRT's C API logs its set-up and its search for NPU / GPU libraries on stderr, ExecuTorch
    each threadpool reset: silenced (the bench prints its own lines only)."""
    import numpy as np

    from edge_mlp.converters import get_converter

    artifact = converted("as_mlp_mobile", target, "int8").artifact
    capfd.readouterr()
    x = np.zeros((1, 3, 64, 64), np.float32)
    for threads in (2, 1):  # a change of thread count is what ExecuTorch logs
        assert get_converter(target).profile(artifact, x, threads=threads, runs=1).ops
    out, err = capfd.readouterr()
    assert out == "" and err == "", err


def test_litert_profiles_release_their_runtime(converted) -> None:
    """Each LiteRT profile creates an environment, model, compiled model and buffers through the C
    API; unreleased, every call kept about 70 MB (a loop of profiles in benchmarks/shift_kernels.py
    ran out of memory)."""
    import numpy as np

    from edge_mlp.bench.measure import current_rss_mb
    from edge_mlp.converters import get_converter

    artifact = converted("as_mlp_mobile", "tflite", "int8").artifact
    converter, x = get_converter("tflite"), np.zeros((1, 3, 64, 64), np.float32)
    converter.profile(artifact, x, threads=1, runs=1)  # first call: libraries and allocator pools
    before = current_rss_mb()
    for _ in range(8):
        converter.profile(artifact, x, threads=1, runs=1)
    assert current_rss_mb() - before < 40, f"{current_rss_mb() - before:.0f} MB kept by 8 profiles"


def test_shift_cost_compares_each_lowering_with_the_shift_removed(report) -> None:
    from edge_mlp.convert import auto_lowering
    from edge_mlp.converters import get_converter
    from edge_mlp.options import Precision

    costs = {(s["backend"], s["lowering"]): s for s in report["shift_costs"]}
    onnx_auto = auto_lowering(get_converter("onnx"), Precision.FP32, "as_mlp").lowering
    assert {("onnxruntime-cpu", onnx_auto), ("onnxruntime-cpu", "roll"), (BACKENDS["eager"], "slice"),
            (BACKENDS["eager"], "roll"), (BACKENDS["eager"], "conv")} <= set(costs)
    rows = _rows(report)
    for (backend, lowering), s in costs.items():
        assert s["median_ms"] == rows[(backend, "fp32", lowering)]["latency"]["median_ms"]
        assert s["identity_median_ms"] == rows[(backend, "fp32", "identity")]["latency"]["median_ms"]
        assert s["fraction"] == pytest.approx((s["median_ms"] - s["identity_median_ms"]) / s["median_ms"], abs=1e-4)


def test_validate_catches_inconsistent_reports(report) -> None:
    broken = copy.deepcopy(report)
    broken["results"][0]["throughput_ips"] *= 2
    broken["results"][1]["latency"]["p10_ms"] = broken["results"][1]["latency"]["p90_ms"] + 1
    broken["results"][2]["backend"] = "tensorflow"
    broken["schema_version"] = 99
    problems = " | ".join(validate(broken))
    assert "throughput is not 1000 / median" in problems and "latency order" in problems
    assert "unknown backend" in problems and "schema_version 99" in problems


def test_version_1_reports_still_validate(report) -> None:
    old = copy.deepcopy(report)
    old["schema_version"] = 1
    for r in old["results"]:
        del r["eager_baseline_lowering"], r["fp32_baseline_lowering"], r["profile"]
    assert validate(old) == []


def test_cli_writes_table_json_csv_and_png(artifacts, tmp_path: Path, capsys) -> None:
    out = {ext: tmp_path / f"bench.{ext}" for ext in ("json", "csv", "png")}
    assert main(["bench", *artifacts[:2], "--runs", "3", "--warmup", "1", "--profile", "--json", str(out["json"]),
                 "--csv", str(out["csv"]), "--plot", str(out["png"])]) == 0
    text = capsys.readouterr().out
    assert "| as_mlp_mobile | executorch-xnnpack | int8 |" in text and "GEMM peak" in text
    assert "| op | calls | ms | share |" in text and "ETDump + devtools Inspector" in text
    data = json.loads(out["json"].read_text())
    assert validate(data) == [] and len(data["results"]) == 5  # eager slice/roll/conv + two ExecuTorch artifacts
    with out["csv"].open() as f:
        assert len(list(csv.DictReader(f))) == 5
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,message", [
    (["no_such_model"], "is neither a model name"),
    (["mixer_mobile", "--runs", "0"], "argument --runs: must be from 1 to"),
    (["mixer_mobile", "--device", "ios"], "measured by the iOS sample app's XCTest"),
])
def test_bad_bench_input_exits_2(argv: list[str], message: str, capsys) -> None:
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_two_artifacts_of_one_row_are_refused_before_any_work(artifacts, tmp_path: Path, capsys) -> None:
    """An A/B of two exports of the same model, runtime, precision and lowering would share one
    report row (the second silently replacing the first): refused in one line, exit 2."""
    pte = Path(next(a for a in artifacts if a.endswith(".pte")))
    copy = tmp_path / "b" / pte.name
    copy.parent.mkdir()
    shutil.copy(pte, copy)
    shutil.copy(f"{pte}.manifest.json", f"{copy}.manifest.json")
    assert main(["bench", str(pte), str(copy), "--runs", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{pte} and {copy} are both as_mlp_mobile on executorch-xnnpack" in err and err.count("\n") == 1


def test_android_without_adb_or_device_exits_2(artifacts, tmp_path: Path, monkeypatch, capsys) -> None:
    tflite = next(a for a in artifacts if a.endswith(".tflite"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb anywhere
    assert main(["bench", tflite, "--device", "android"]) == 2
    assert "needs adb on PATH" in capsys.readouterr().err
    # A stand-in adb (a phone cannot exist here) replaying real `adb devices` output with nothing attached.
    adb = tmp_path / "adb"
    adb.write_text("#!/bin/sh\nprintf 'List of devices attached\\n\\n'\n")
    adb.chmod(0o755)
    assert main(["bench", tflite, "--device", "android"]) == 2
    assert "adb lists no device" in capsys.readouterr().err
    assert os.environ["PATH"] == str(tmp_path)


def test_android_refuses_targets_it_cannot_run(converted, capsys) -> None:
    onnx = converted("as_mlp_mobile", "onnx", "fp32").artifact
    assert main(["bench", str(onnx), "--device", "android"]) == 2
    assert "runs .pte and .tflite artifacts, not onnx" in capsys.readouterr().err


def test_parses_recorded_benchmark_model_output() -> None:
    """Real benchmark_model output (tests/fixtures/device/README.md says where from)."""
    newer = parse_benchmark_model((FIXTURES / "benchmark_model_android_arm64.txt").read_text())
    # The last stat line is the measured run; the first (count=11) was warm-up.
    assert newer["runs"] == 24 and newer["median_ms"] == pytest.approx(42.419)
    assert newer["p5_ms"] == pytest.approx(42.133) and newer["p95_ms"] == pytest.approx(42.671)
    assert newer["mean_ms"] == pytest.approx(42.3948) and newer["memory_overall_mb"] == pytest.approx(26.6797)
    latency = benchmark_model_latency(newer)
    assert latency.min_ms <= latency.p5_ms <= latency.median_ms <= latency.p95_ms and latency.p10_ms is None
    older = parse_benchmark_model((FIXTURES / "benchmark_model_older.txt").read_text())
    assert older["runs"] == 50 and older["mean_ms"] == pytest.approx(2950.34) and older["median_ms"] is None
    assert benchmark_model_latency(older).median_ms == older["mean_ms"]  # no percentiles: the mean stands in
    with pytest.raises(EdgeMlpError, match="no timing summary"):
        parse_benchmark_model("ERROR: Failed to allocate tensors!\nERROR: Benchmarking failed.\n")


def test_executor_runner_parser_needs_the_timing_line() -> None:
    with pytest.raises(EdgeMlpError, match="Model executed successfully N time"):
        parse_executor_runner("I 00:00:00.437405 executorch:executor_runner.cpp:219] Inputs prepared.\n")
    latency = executor_runner_latency([3.0, 1.0, 2.0, 4.0, 5.0], executions=10)
    assert (latency.median_ms, latency.min_ms, latency.runs) == (3.0, 1.0, 50)
    assert latency.p10_ms <= latency.median_ms <= latency.p90_ms


# The markdown table, from hand-built reports (no conversion, no timing).

def _table_report(runs: int, rows: list[tuple[str, str, str, str, float]]) -> dict:
    """A valid report of (model, backend, precision, shift lowering, median ms) rows timed `runs` times,
    with the speedups run_bench derives (vs the model's fastest exact eager fp32 lowering; int8 vs fp32)."""
    from edge_mlp.bench.schema import BenchReport, BenchResult, Machine
    from edge_mlp.timing import Latency

    macs = 10**9
    results = []
    for model, backend, precision, lowering, median in rows:
        latency = Latency.from_samples([median * (0.9 + 0.2 * i / max(runs - 1, 1)) for i in range(runs)])
        results.append(BenchResult(
            model=model, backend=backend, precision=precision, shift_lowering=lowering, latency=latency,
            throughput_ips=1000.0 / latency.median_ms, macs=macs, gflops=2 * macs / (latency.median_ms * 1e6),
            pct_of_gemm_peak=10.0, size_bytes=None if backend == BACKENDS["eager"] else 8_000_000))
    for r in results:
        eager = [e for e in results if e.model == r.model and e.backend == BACKENDS["eager"] and e.precision == "fp32"
                 and e.shift_lowering in ("slice", "roll", "conv", "none")]
        if eager:
            fastest = min(eager, key=lambda e: e.latency.median_ms)
            r.speedup_vs_eager_fp32 = fastest.latency.median_ms / r.latency.median_ms
            r.eager_baseline_lowering = fastest.shift_lowering
        fp32 = [f for f in results if (f.model, f.backend, f.precision, f.shift_lowering) ==
                (r.model, r.backend, "fp32", r.shift_lowering)]
        if r.precision != "fp32" and fp32:
            r.speedup_vs_fp32 = fp32[0].latency.median_ms / r.latency.median_ms
            r.fp32_baseline_lowering = fp32[0].shift_lowering
    machine = Machine("test CPU", "test", 2, 100.0, "torch.mm", None)
    data = BenchReport(machine, {"warmup": 1, "runs": runs, "interleaved": True, "batch": 1}, results).to_dict()
    assert validate(data) == []
    return data


_EAGER_AND_ORT = [
    ("as_mlp_mobile", BACKENDS["eager"], "fp32", "slice", 50.0),
    ("as_mlp_mobile", BACKENDS["eager"], "fp32", "roll", 55.0),
    ("as_mlp_mobile", BACKENDS["onnx"], "fp32", "slice", 25.0),
    ("as_mlp_mobile", BACKENDS["onnx"], "int8", "slice", 20.0),
    ("mixer_mobile", BACKENDS["eager"], "fp32", "none", 22.0),
]


def _cells(line: str) -> list[str]:
    """The cells of one markdown table line (an escaped `\\|` is text, not a border)."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def _table(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, body rows as cells, lines after the table)."""
    lines = text.split("\n")
    end = lines.index("") if "" in lines else len(lines)
    header, rule, *body = lines[:end]
    assert set(rule) <= set("|-:") and rule.count("|") == len(_cells(header)) + 1
    rows = [_cells(line) for line in body]
    assert all(len(r) == len(_cells(header)) for r in rows)
    return _cells(header), rows, lines[end + 1:]


def test_markdown_table_shows_each_rows_shift_lowering() -> None:
    from edge_mlp.bench.output import markdown_table

    header, rows, after = _table(markdown_table(_table_report(30, _EAGER_AND_ORT)))
    col = header.index("shift lowering")
    assert col == header.index("precision") + 1
    key = {tuple(r[:col + 1]) for r in rows}
    assert len(key) == len(rows) == len(_EAGER_AND_ORT)  # no two rows look alike
    assert ["as_mlp_mobile", "pytorch-eager", "fp32", "roll"] in [r[:col + 1] for r in rows]
    assert ["as_mlp_mobile", "pytorch-eager", "fp32", "slice"] in [r[:col + 1] for r in rows]
    assert ["mixer_mobile", "pytorch-eager", "fp32", "none"] in [r[:col + 1] for r in rows]  # no shift in Mixer
    assert after == []


def test_markdown_table_omits_speedups_of_a_short_run() -> None:
    from edge_mlp.bench.output import MIN_RUNS_FOR_SPEEDUPS, markdown_table

    data = _table_report(3, _EAGER_AND_ORT)
    assert any(r["speedup_vs_fp32"] for r in data["results"]) and MIN_RUNS_FOR_SPEEDUPS > 3
    header, rows, after = _table(markdown_table(data))
    eager, int8 = header.index("vs fastest eager fp32"), header.index("int8 vs fp32")
    assert all(r[eager] == "" and r[int8] == "" for r in rows)
    assert not any(c.endswith("x") for r in rows for c in r)
    median = header.index("median ms (p10-p90)")
    assert all(re.fullmatch(r"[\d.]+ \([\d.]+-[\d.]+\)", r[median]) for r in rows)  # p10-p90 stay
    assert after == [f"speedups omitted: 3 timed runs per backend, too few for a ratio of medians to mean anything; "
                     f"use --runs {MIN_RUNS_FOR_SPEEDUPS} or more"]


@pytest.mark.parametrize("runs", [10, 30])
def test_markdown_table_prints_speedups_of_a_normal_run(runs: int) -> None:
    from edge_mlp.bench.output import markdown_table

    header, rows, after = _table(markdown_table(_table_report(runs, _EAGER_AND_ORT)))
    by_key = {tuple(r[:4]): r for r in rows}
    eager, int8 = header.index("vs fastest eager fp32"), header.index("int8 vs fp32")
    assert by_key["as_mlp_mobile", "pytorch-eager", "fp32", "slice"][eager] == "1.00x"
    assert by_key["as_mlp_mobile", "pytorch-eager", "fp32", "roll"][eager] == "0.91x"
    assert by_key["as_mlp_mobile", "onnxruntime-cpu", "fp32", "slice"][eager] == "2.00x"
    assert by_key["as_mlp_mobile", "onnxruntime-cpu", "int8", "slice"][int8] == "1.25x"
    assert after == []


def test_markdown_table_lines_stay_single_rows() -> None:
    """Whatever a report holds (a model name with a newline or a pipe, a device row without p10/p90),
    each line is one markdown row with the header's cell count."""
    from edge_mlp.bench.output import markdown_table

    data = _table_report(30, _EAGER_AND_ORT)
    data["results"][0]["model"] = "odd\nname | with\r\npipe"
    data["results"][-1]["latency"].update(p10_ms=None, p90_ms=None)  # benchmark_model reports p5/p95 only
    text = markdown_table(data)
    header, rows, after = _table(text)
    assert text.splitlines() == text.split("\n")  # no \r, \u2028 or other line break inside a line
    assert len(text.split("\n")) == 2 + len(data["results"]) and after == []
    assert ["odd name \\| with pipe", "pytorch-eager", "fp32", "slice"] in [r[:4] for r in rows]
    assert ["mixer_mobile", "pytorch-eager", "fp32", "none", "22.00"] in [r[:5] for r in rows]


def test_machine_description_names_the_cpu_and_its_int8_features() -> None:
    """Whether int8 pays depends on a dot-product instruction: the report says which the CPU has."""
    from edge_mlp.bench.measure import machine_description

    x86 = ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n\n"
           "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n")
    assert machine_description(x86) == f"AMD EPYC, {os.cpu_count()} logical CPUs (AVX2, AVX-512, AVX-512 VNNI)"
    avx2_only = x86.replace(" avx512f avx512_vnni", "")
    assert machine_description(avx2_only).endswith("logical CPUs (AVX2)")
    arm64 = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU implementer\t: 0x41\n"
    assert machine_description(arm64).endswith("logical CPUs (dot product, I8MM)")


def _cpu_of_other_threads_ms(seconds: float = 0.05) -> float:
    """CPU the process burns while this thread sleeps: what its other threads do meanwhile."""
    import time

    start = time.process_time()
    time.sleep(seconds)
    return (time.process_time() - start) * 1000.0


def test_timing_starts_each_call_once_spinning_threads_are_idle() -> None:
    """After a parallel PyTorch op its OpenMP team spins for about 8 ms; timed right after, the next
    backend shared its cores with it (benchmarks/neighbours.py). `settle` returns only once no
    other thread of the process is running or runnable: also under load (CI runs two workers on
    two cores), where a first version that watched CPU time in 5 ms windows took a spinning thread
    the scheduler had set aside for an idle one."""
    import torch

    from edge_mlp.bench.measure import settle, torch_threads

    with torch_threads(2):
        x = torch.randn(1 << 22)
        x.add_(1.0)  # wakes the OpenMP team
        settle()
        assert _cpu_of_other_threads_ms() < 1.0
        assert settle() < 0.05  # an idle process: no thread to wait for


def test_an_executorch_call_leaves_no_pytorch_thread_spinning(tmp_path: Path) -> None:
    """The pybindings copy inputs and outputs with PyTorch ops. With PyTorch on 2 threads, copying
    a large output woke its OpenMP team, which spun on for about 8 ms: through the next call, on the
    core XNNPACK's second thread needs (1x1 convs at 48x56x56: 6.6 ms against 3.4 ms)."""
    from contextlib import nullcontext

    import numpy as np
    import torch

    from edge_mlp.bench.measure import settle, torch_threads
    from edge_mlp.converters import ConversionRequest, get_converter

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2.0

    x = torch.randn(1, 64, 64, 64)  # 262,144 values: PyTorch copies them on all its threads
    converter = get_converter("executorch")
    request = ConversionRequest(model=Double().eval(), example=x, precision="fp32", calibration=[x], work_dir=tmp_path,
                                stem="double", num_classes=1, stage=lambda _: nullcontext())
    program = converter.load(converter.convert(request).path, threads=2)
    with torch_threads(2):
        call = program.bind(x.numpy())
        call()
        settle()
        for run in (call, lambda: program.outputs(x.numpy())):
            run()
            assert _cpu_of_other_threads_ms() < 2.0
        assert torch.get_num_threads() == 2
    assert np.array_equal(program.outputs(x.numpy())[0], (x * 2.0).numpy())


def test_interleaved_timing_sets_each_runners_pytorch_threads_outside_its_timer() -> None:
    """A target's runtime runs with PyTorch on 1 thread and eager on the job's threads. Switching
    them inside ExecuTorch's call (converters.executorch.execute) cost about 0.3 ms of a 6 ms int8
    call, time a deployed runner never spends: the loop switches before the timer starts."""
    import torch

    from edge_mlp.bench.measure import load_runner, time_interleaved, torch_threads

    seen: dict[str, list[int]] = {"runtime": [], "eager": []}

    def recording(name: str):
        return lambda: lambda: seen[name].append(torch.get_num_threads())

    with torch_threads(3):
        runners = [load_runner("runtime", recording("runtime"), warmup=1),
                   load_runner("eager", recording("eager"), warmup=1, pytorch_threads=2)]
        assert torch.get_num_threads() == 3  # loading restores them too
        time_interleaved(runners, runs=3)
        assert torch.get_num_threads() == 3
    assert seen == {"runtime": [1] * 4, "eager": [2] * 4}
