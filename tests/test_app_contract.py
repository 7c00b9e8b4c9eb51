"""Contract between the sample apps and edge-mlp's schemas.

Each app declares the manifest fields it reads in one file of typed structs (Manifest.kt,
Manifest.swift) and the bench JSON it writes in another (BenchReport.kt, BenchReport.swift). These
tests read those declarations and check them against the Python dataclasses, so a schema change
that breaks an app fails here, and check that manifests converted now decode with them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from .app_structs import Structs, check, decode_problems, parse_structs
from edge_mlp.apps import APPS
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
