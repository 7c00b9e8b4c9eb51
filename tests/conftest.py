"""Shared fixtures: small test models and a session cache of real conversions."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

# Small but complete: every block type of each family, 64x64 inputs (the last CycleMLP stage
# stays 2x2; litert-torch 0.10 cannot lower its Linear over a 1x1 map), 10 classes.
TEST_MODELS: dict[str, dict[str, Any]] = {
    "as_mlp_mobile": {"depths": (1, 1, 1, 1)},
    "cycle_mlp_mobile": {"layers": (1, 1, 1, 1)},
    "mixer_mobile": {"num_blocks": 2},
}
TEST_IMG = 64
TEST_CLASSES = 10
CALIB_SIZE = 8


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """convert(model, target, precision) -> ConvertResult, each combination converted once."""
    from edge_mlp.convert import ConvertJob, convert

    cache: dict[tuple, Any] = {}
    root = tmp_path_factory.mktemp("artifacts")

    def get(model: str, target: str, precision: str, **extra: Any) -> Any:
        key = (model, target, precision, tuple(sorted(extra.items())))
        if key not in cache:
            out = Path(root) / f"run{len(cache)}"
            # Random-init models are checked on synthetic natural images, so they are calibrated
            # on that distribution too (the trained demo models use the real Fashion-MNIST set).
            job = ConvertJob(
                model=model, target=target, precision=precision, img_size=TEST_IMG,
                num_classes=TEST_CLASSES, calib_size=CALIB_SIZE, out_dir=str(out),
                overrides=dict(TEST_MODELS[model]), **{"calib": "synthetic", **extra},
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (cache[key],) = convert(job)
        return cache[key]

    return get
