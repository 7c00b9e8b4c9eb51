"""The shape of the code: one home per target, no import circles, a CLI whose help needs no torch,
and no generic top-level package."""

from __future__ import annotations

import ast
import re
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_mlp.converters import Converter, all_converters

ROOT = Path(__file__).resolve().parent.parent
# Where each package's files are in the repository (converters/ installs as edge_mlp.converters).
PACKAGES = {"edge_mlp": ROOT / "edge_mlp", "edge_mlp.converters": ROOT / "converters"}
HEAVY = ("torch", "executorch", "coremltools", "litert_torch", "ai_edge_litert", "onnxruntime", "torchao")


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Internal modules `name` imports anywhere in its file (module level or inside functions)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                 for stmt in block.body for n in ast.walk(stmt)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:  # annotations only: no import at run time
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(base[: len(base) - node.level + 1])
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert graph["edge_mlp.converters.base"] >= {"edge_mlp.converters.pt2e"}  # it sees imports in functions
    assert _cycles(graph) == []


def test_no_private_module_of_the_targets_is_imported_from_outside() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.startswith("edge_mlp.converters"):
            continue
        private = {m for m in _imports(name, path, set(modules))
                   if m.startswith("edge_mlp.converters.") and m.rsplit(".", 1)[1].startswith("_")}
        assert not private, f"{name} imports {private}"


def test_every_target_states_all_its_facts() -> None:
    from edge_mlp.apps import APPS
    from edge_mlp.bench.schema import BACKENDS

    for conv in all_converters():
        assert conv.suffix.startswith(".") and conv.default_precision in conv.precisions
        assert conv.preferred_lowering and conv.lowering_reason and conv.bench_backend
        assert BACKENDS[conv.target] == conv.bench_backend
        assert set(conv.apps) <= set(APPS)
        assert all(conv.target in APPS[app].targets for app in conv.apps)
        assert (conv.device_runner is None) == (type(conv).run_on_device is Converter.run_on_device)


def _run(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_imports_no_torch_or_runtime() -> None:
    code = f"""
import contextlib, io, json, sys
from edge_mlp.cli import main
commands = ["list", "info", "forward", "convert", "parity", "bench", "bundle"]
for argv in [["--help"], *[[c, "--help"] for c in commands]]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit as exit:
            assert exit.code == 0, (argv, exit.code)
    assert "usage: edge-mlp" in out.getvalue(), argv
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert result.stderr == ""


def test_list_and_info_are_quiet_and_need_at_most_torch() -> None:
    for argv in (["list"], ["info", "as_mlp_mobile"]):
        code = ("import json, sys; from edge_mlp.cli import main; rc = main(" + repr(argv) + "); "
                "print(json.dumps([rc, sorted({m.split('.')[0] for m in sys.modules} & set("
                + repr(HEAVY) + "))]))")
        result = _run(code)
        rc, heavy = json.loads(result.stdout.strip().splitlines()[-1])
        assert rc == 0 and result.stderr == "", (argv, result.stderr)
        assert set(heavy) <= {"torch"}, heavy


@pytest.mark.parametrize("argv,match", [
    (["info", "as_mlp_mobil"], "unknown model 'as_mlp_mobil'"),
    (["conver", "as_mlp_mobile"], "invalid choice: 'conver'"),
    (["convert", "as_mlp_mobile", "--target", "coreml", "--precision", "int4"], "invalid choice: 'int4'"),
    (["bench"], "the following arguments are required"),
])
def test_a_typo_prints_one_line_and_exits_2(argv: list[str], match: str) -> None:
    result = subprocess.run([sys.executable, "-m", "edge_mlp", *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and match in result.stderr, result.stderr
    assert re.match(r"edge-mlp( \w+)?: error: ", result.stderr)


def test_bench_help_shows_a_plain_percent() -> None:
    result = subprocess.run([sys.executable, "-m", "edge_mlp", "bench", "--help"], capture_output=True, text=True)
    assert "% of a same-process" in " ".join(result.stdout.split()) and "%%" not in result.stdout


def test_no_generic_top_level_package(tmp_path: Path) -> None:
    outside = _run("import converters", cwd=tmp_path)
    assert outside.returncode != 0 and "No module named 'converters'" in outside.stderr
    inside = _run("import edge_mlp.converters as c; print(c.list_targets())", cwd=tmp_path)
    assert inside.returncode == 0 and "executorch" in inside.stdout, inside.stderr


def test_recorded_zoo_stats_are_current() -> None:
    """`edge-mlp list` reads this table; `make zoo-stats` rewrites it."""
    from edge_mlp.stats import ZOO_STATS, zoo_stats_table

    assert json.loads(ZOO_STATS.read_text()) == json.loads(json.dumps(zoo_stats_table()))


def test_recorded_shift_choice_follows_the_committed_ablation_results() -> None:
    """`--shift-lowering auto` reads this file; `make shift-choice` rewrites it from benchmarks/results/."""
    from edge_mlp.shift_choice import CHOICE_FILE, committed_choices

    assert json.loads(CHOICE_FILE.read_text()) == json.loads(json.dumps(committed_choices()))


def test_auto_picks_the_fastest_measured_lowering() -> None:
    from edge_mlp.shift_choice import choices_from_reports

    def row(backend: str, lowering: str, ms: float, model: str = "as_mlp_mobile") -> dict:
        return {"model": model, "backend": backend, "precision": "int8", "shift_lowering": lowering,
                "latency": {"median_ms": ms}}

    report = {"machine": {"threads": 2}, "settings": {"img_size": 224}, "results": [
        row("executorch-xnnpack", "slice", 30.0), row("executorch-xnnpack", "conv", 20.0),
        row("executorch-xnnpack", "identity", 10.0), row("pytorch-eager", "roll", 1.0),
        row("litert-xnnpack", "slice", 9.0), row("litert-xnnpack", "roll", 11.0),
        row("litert-xnnpack", "slice", 40.0, "cycle_mlp_mobile"), row("litert-xnnpack", "conv", 30.0, "cycle_mlp_mobile"),
    ]}
    choices = choices_from_reports({"shift_ablation_x.json": report})
    assert choices["executorch"]["int8"]["as_mlp"]["lowering"] == "conv"  # identity never wins: not exact
    assert "conv 20.0 ms, slice 30.0 ms" in choices["executorch"]["int8"]["as_mlp"]["reason"]
    assert choices["tflite"]["int8"]["as_mlp"]["lowering"] == "slice"
    assert choices["tflite"]["int8"]["cycle_mlp"]["lowering"] == "conv"
    assert "eager" not in choices


def test_known_noise_is_filtered_and_real_warnings_still_show(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import edge_mlp  # noqa: F401  (installs the filters)

    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_mxfp8.so: Could not load this library")
        logging.getLogger("coremltools").warning(
            "Failed to load _MLModelProxy: No module named 'coremltools.libcoremlpython'")
        logging.getLogger("torchao").warning("a real torchao warning")
        logging.getLogger("coremltools").warning("a real coremltools warning")
    assert [r.getMessage() for r in caplog.records] == ["a real torchao warning", "a real coremltools warning"]
