"""Contract between the sample apps and edge-mlp's schemas.

Each app declares the manifest fields it reads in one file of typed structs (Manifest.kt,
Manifest.swift) and the bench JSON it writes in another (BenchReport.kt, BenchReport.swift). These
tests read those declarations and check them against the Python dataclasses, so a schema change
that breaks an app fails here, and check that manifests converted now decode with them.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml  # PyYAML: installed with executorch, which edge-mlp pins

from .app_structs import Structs, check, code_only, decode_problems, parse_structs
from edge_mlp.apps import APPS, REPO_APPS
from edge_mlp.converters import get_converter
from edge_mlp.bench.schema import BenchReport, BenchResult, Latency, Machine
from edge_mlp.manifest import DICT_FIELD_SCHEMAS, Manifest, ModelInfo, QuantParams, TargetInfo, TensorSpec
from edge_mlp.preprocess import Preprocessing

# What the apps cannot work without: their runtime, preprocessing, labels and bench mode use these.
NEEDED = [
    ("input", "shape"), ("input", "dtype"), ("input", "quantization", "scale"), ("input", "quantization", "zero_point"),
    ("output", "tensor", "dtype"), ("output", "tensor", "quantization", "zero_point"), ("output", "labels_file"),
    ("output", "num_classes"), ("preprocessing", "resize"), ("preprocessing", "crop"), ("preprocessing", "interpolation"),
    ("preprocessing", "mean"), ("preprocessing", "std"), ("preprocessing", "scale"), ("target", "name"),
    ("artifact", "file"), ("artifact", "sha256"), ("artifact", "size_bytes"), ("model", "name"), ("model", "macs"),
    ("precision",), ("shift_lowering", "used"), ("schema_version",),
]


def _structs(app: str, which: str) -> Structs:
    layout = APPS[app]
    return parse_structs(layout.default_dir() / getattr(layout, which))


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_parsers_see_the_declarations(app: str) -> None:
    manifest, bench = _structs(app, "manifest_structs"), _structs(app, "bench_structs")
    assert {"Manifest", "TensorSpec", "QuantParams", "PreprocessingSpec"} <= manifest.keys()
    assert {"BenchReport", "BenchResult", "Latency", "Machine"} <= bench.keys()
    assert all(manifest[name] for name in manifest) and all(bench[name] for name in bench)


def test_manifest_fields_the_app_reads_are_in_the_schema_with_the_same_types(app: str) -> None:
    assert check(_structs(app, "manifest_structs"), "Manifest", Manifest, dict_schemas=DICT_FIELD_SCHEMAS) == []


def test_the_app_declares_what_its_runtime_and_preprocessing_need(app: str) -> None:
    structs = _structs(app, "manifest_structs")
    for path in NEEDED:
        name = "Manifest"
        for key in path:
            field = structs[name].get(key)
            assert field is not None, f"{app} does not declare {'.'.join(path)}"
            if field.kind[0] == "struct":
                name = field.kind[1]


@pytest.mark.parametrize("change,field", [
    ({(QuantParams, "zero_point"): None}, "zero_point"),  # removed
    ({(TensorSpec, "shape"): list[str]}, "shape"),  # retyped
    ({(TargetInfo, "name"): str | None}, "target.name"),  # became optional
    ({(Preprocessing, "mean"): None}, "preprocessing.mean"),
    ({(ModelInfo, "macs"): float}, "macs"),
])
def test_a_schema_change_that_breaks_the_app_fails_the_contract(app: str, change: dict, field: str) -> None:
    problems = check(_structs(app, "manifest_structs"), "Manifest", Manifest, dict_schemas=DICT_FIELD_SCHEMAS,
                     overrides=change)
    assert any(field in p for p in problems), problems


def test_bench_json_the_app_writes_is_the_bench_schema(app: str) -> None:
    assert check(_structs(app, "bench_structs"), "BenchReport", BenchReport, writer=True) == []


@pytest.mark.parametrize("change,field", [
    ({(BenchResult, "energy_mj"): float}, "energy_mj"),  # added: the app does not write it
    ({(Latency, "median_ms"): int}, "median_ms"),
    ({(Machine, "threads"): None}, "threads"),
])
def test_a_bench_schema_change_fails_the_contract(app: str, change: dict, field: str) -> None:
    problems = check(_structs(app, "bench_structs"), "BenchReport", BenchReport, writer=True, overrides=change)
    assert any(field in p for p in problems), problems


# Every precision of every target each app runs (all converted for test_convert already).
APP_TARGETS = {app: [(t, str(p)) for t in layout.targets for p in get_converter(t).precisions]
               for app, layout in APPS.items()}


@pytest.mark.parametrize("app_name", sorted(APPS))
def test_manifests_converted_now_decode_with_the_apps_structs(app_name: str, converted: Callable[..., Any]) -> None:
    structs = _structs(app_name, "manifest_structs")
    for target, precision in APP_TARGETS[app_name]:
        data = json.loads(converted("mixer_mobile", target, precision).manifest_path.read_text())
        assert data["model"]["macs"] > 0
        assert decode_problems(structs, "Manifest", data) == [], (target, precision)


def test_decode_check_catches_a_missing_or_mistyped_field(app: str, converted: Callable[..., Any]) -> None:
    data = json.loads(converted("mixer_mobile", "executorch", "fp32").manifest_path.read_text())
    structs = _structs(app, "manifest_structs")
    del data["preprocessing"]["mean"]
    data["input"]["shape"] = "1x3x64x64"
    problems = decode_problems(structs, "Manifest", data)
    assert any("preprocessing.mean" in p for p in problems) and any("input.shape" in p for p in problems)


def test_the_apps_test_manifests_are_current(app: str) -> None:
    """The manifests the apps' own unit tests decode are of this schema and decode with the structs."""
    resources = {"android": "app/src/test/resources", "ios": "EdgeMLPCore/Tests/EdgeMLPCoreTests/Resources"}[app]
    files = sorted((APPS[app].default_dir() / resources).glob("*manifest*.json"))
    assert files
    structs = _structs(app, "manifest_structs")
    for f in files:
        data = json.loads(Path(f).read_text())
        Manifest.from_dict(data)  # this edge-mlp reads it
        assert decode_problems(structs, "Manifest", data) == [], f.name


# --- how the apps reach the runtimes (from a review of every runtime call) ------------------------

IOS = APPS["ios"].default_dir()
REPO_ROOT = REPO_APPS.parent
ANDROID_SOURCES = APPS["android"].default_dir() / "app/src/main/java"


def _ios_project() -> dict:
    return yaml.safe_load((IOS / "project.yml").read_text())


def _swift_imports(folder: Path) -> set[str]:
    return {m for f in folder.rglob("*.swift") for m in re.findall(r"^\s*(?:@testable\s+)?import\s+(\w+)",
                                                                  f.read_text(), re.M)}


def test_ios_tests_depend_on_the_executorch_module_without_linking_it_twice() -> None:
    """`@testable import EdgeMLPDemo` needs every module the app imports; Xcode does not hand the
    binary ExecuTorch package's module to a test target that does not depend on it ("Missing
    required module 'ExecuTorch'"). The hosted tests must depend on it with `link: false`: linked
    into the test bundle too, its static libraries would be in the process twice."""
    project = _ios_project()
    app, tests = project["targets"]["EdgeMLPDemo"], project["targets"]["EdgeMLPDemoTests"]
    assert {"target": "EdgeMLPDemo"} in tests["dependencies"]
    assert "EdgeMLPDemo" in _swift_imports(IOS / "EdgeMLPDemoTests")
    assert "ExecuTorch" in _swift_imports(IOS / "EdgeMLPDemo/Sources")
    linked = {(d["package"], p) for d in app["dependencies"] if "package" in d and d.get("link", True)
              for p in d.get("products", [d["package"]])}
    assert ("executorch", "executorch") in linked  # the product whose module is `ExecuTorch`
    in_tests = [d for d in tests["dependencies"] if "package" in d]
    assert any(d["package"] == "executorch" and "executorch" in d.get("products", [d["package"]]) for d in in_tests)
    for d in in_tests:
        assert d.get("link") is False, f"{d}: a package the app links is linked into the hosted tests again"
        if "url" in project["packages"][d["package"]]:
            assert all((d["package"], p) in linked for p in d.get("products", [d["package"]]))


def test_ios_executorch_package_is_a_release_of_the_pinned_runtime() -> None:
    """A release branch ("swiftpm-X.Y.Z", not a dated nightly) of the ExecuTorch release edge-mlp
    exports with (same major.minor, not newer), named the same in the README."""
    package = _ios_project()["packages"]["executorch"]
    assert package["url"] == "https://github.com/pytorch/executorch"
    branch = package["branch"]
    m = re.fullmatch(r"swiftpm-(\d+)\.(\d+)\.(\d+)", branch)
    assert m, f"{branch} is not a release branch"
    pinned = next(d for d in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                  if d.startswith("executorch=="))
    version = tuple(int(v) for v in pinned.split("==")[1].split("."))
    assert tuple(map(int, m.groups()))[:2] == version[:2] and tuple(map(int, m.groups())) <= version
    versions = (IOS / "README.md").read_text().split("## Versions", 1)[1]
    assert f"branch `{branch}`" in versions


def test_both_apps_load_executorch_programs_memory_mapped() -> None:
    """Android maps the .pte (`Module.LOAD_MODE_MMAP`); iOS must too (`loadMode: .mmap`; the Swift
    `Module(filePath:)` default reads the whole file into memory), or `load_rss_mb` does not compare."""
    kotlin = [m for f in ANDROID_SOURCES.rglob("*.kt") for m in re.findall(r"Module\.load\(([^)]*)\)",
                                                                            code_only(f.read_text()))]
    assert kotlin and all("Module.LOAD_MODE_MMAP" in args for args in kotlin), kotlin
    swift = [m for f in (IOS / "EdgeMLPDemo").rglob("*.swift")
             for m in re.findall(r"\bModule\(([^)]*)\)", code_only(f.read_text()))]
    assert swift and all(re.search(r"\bloadMode:\s*\.mmap\b", args) for args in swift), swift
