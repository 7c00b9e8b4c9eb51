"""Shared fixtures: small test models and a cache of real conversions that every test, and every
pytest-xdist worker of the run, shares: each combination is converted once per run."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest
from filelock import FileLock

# Small but complete: every block type of each family (AS-MLP: patch embed, shifted block,
# patch merging; CycleMLP: overlapping embed, cycle block, downsample; Mixer: mixer blocks), two
# stages so that each conversion is quick, 64x64 inputs (CycleMLP's last stage stays 8x8;
# litert-torch 0.10 cannot lower its Linear over a 1x1 map), 10 classes.
TEST_MODELS: dict[str, dict[str, Any]] = {
    "as_mlp_mobile": {"depths": (1, 1)},
    "cycle_mlp_mobile": {"layers": (1, 1), "embed_dims": (32, 64), "mlp_ratios": (4, 4), "transitions": (True, True)},
    "mixer_mobile": {"num_blocks": 2},
}
TEST_IMG = 64
TEST_CLASSES = 10
CALIB_SIZE = 8


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        # Workers share the machine's cores: one intra-op thread each, all alike, so conversions
        # (calibration included) compute the same bits in whichever worker runs them.
        torch.set_num_threads(1)


def run_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this test run that all xdist workers share."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    root.mkdir(exist_ok=True)
    return root


def conversion_cache(tmp_path_factory: pytest.TempPathFactory, name: str) -> Callable[..., Any]:
    """get(key, make_job) -> ConvertResult: `make_job(out_dir)` is converted once per run and key,
    under a lock, whichever worker asks first; the others read the published artifact."""
    from edge_mlp.convert import ConvertResult, convert
    from edge_mlp.manifest import MANIFEST_SUFFIX, Manifest, split_artifact_path

    root = run_folder(tmp_path_factory, name)
    cache: dict[tuple, Any] = {}

    def get(key: tuple, make_job: Callable[[str], Any]) -> Any:
        if key not in cache:
            folder = root / hashlib.sha256(repr(key).encode()).hexdigest()[:16]
            with FileLock(f"{folder}.lock"):
                published = sorted(folder.glob(f"*{MANIFEST_SUFFIX}")) if folder.exists() else []
                if published:
                    artifact, manifest = split_artifact_path(published[0])
                    cache[key] = ConvertResult(artifact, manifest, Manifest.read(manifest))
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        (cache[key],) = convert(make_job(str(folder)))
        return cache[key]

    return get


# Long tests first, so that pytest-xdist's workers do not end on a lone long test: the
# conversion-heavy files, demo-model parity (its own conversions) leading.
_HEAVY_FIRST = ("test_parity.py", "test_convert.py", "test_backbones.py", "test_delegation.py", "test_bench.py", "test_budget.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return _HEAVY_FIRST.index(name) if name in _HEAVY_FIRST else len(_HEAVY_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


def small_job(model: str, target: str, precision: str, out: str, **extra: Any) -> Any:
    """The ConvertJob of a small test model, as the `converted` fixture converts it."""
    from edge_mlp.convert import ConvertJob

    # Random-init models are checked on synthetic natural images, so they are calibrated on that
    # distribution too (the trained demo models use the real Fashion-MNIST set).
    options = {"calib": "synthetic", "img_size": TEST_IMG, **extra}
    return ConvertJob(model=model, target=target, precision=precision, num_classes=TEST_CLASSES,
                      calib_size=CALIB_SIZE, out_dir=out, overrides=dict(TEST_MODELS[model]), **options)


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """convert(model, target, precision) -> ConvertResult, each combination converted once."""
    get = conversion_cache(tmp_path_factory, "artifacts")

    def convert_small(model: str, target: str, precision: str, **extra: Any) -> Any:
        key = (model, target, precision, tuple(sorted((k, repr(v)) for k, v in extra.items())))
        return get(key, lambda out: small_job(model, target, precision, out, **extra))

    return convert_small
