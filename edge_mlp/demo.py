"""The shipped demo models: small mobile variants trained on Fashion-MNIST (32x32, 10 classes).

One source of truth for their configs: `benchmarks/train_demo.py` trains exactly these, and
`--weights demo` / `make demo` load them from `edge_mlp/assets/demo/`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .data import FASHION_MNIST_CLASSES
from .errors import EdgeMlpError
from .models import DataConfig, ModelConfig, resolve_config

ASSETS = Path(__file__).parent / "assets"
DEMO_DIR = ASSETS / "demo"
EVAL_SUBSET = ASSETS / "fashion_mnist_eval2000.npz"
CALIB_SUBSET = ASSETS / "fashion_mnist_calib256.npz"

# Fashion-MNIST statistics (gray, replicated to RGB); 28x28 images resized to 32x32, no crop.
FASHION_MNIST_DATA = DataConfig(mean=(0.2860,) * 3, std=(0.3530,) * 3, crop_pct=1.0, interpolation="bilinear")

# Reduced widths/depths so each trains in minutes on 2 CPU cores; see README "Demo models".
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "as_mlp_mobile": dict(img_size=32, num_classes=10, embed_dim=32, depths=(1, 1, 2, 1)),
    "cycle_mlp_mobile": dict(
        img_size=32, num_classes=10, embed_dims=(32, 64, 128, 128), layers=(1, 1, 2, 1),
        transitions=(True, True, False, False), mlp_ratios=(4, 4, 4, 4),
    ),  # no last downsample: the final stage stays 2x2 (litert-torch cannot lower 1x1 Linears)
    "mixer_mobile": dict(img_size=32, num_classes=10, patch_size=4, embed_dim=64, num_blocks=4),
}


def demo_config(name: str) -> ModelConfig:
    if name not in DEMO_MODELS:
        raise EdgeMlpError(f"no demo weights for {name}; demo models: {', '.join(DEMO_MODELS)}")
    return dataclasses.replace(resolve_config(name, **DEMO_MODELS[name]), data=FASHION_MNIST_DATA)


def demo_weights(name: str) -> Path:
    demo_config(name)  # validates the name
    path = DEMO_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise EdgeMlpError(f"demo weights for {name} are missing ({path}); run benchmarks/train_demo.py")
    return path


DEMO_WEIGHTS = "demo"  # --weights demo: the shipped Fashion-MNIST checkpoint of the model
_DEMO_PREFIX = "demo:"  # how a manifest names it: demo:<model>, resolved on each machine


def weights_reference(model: str, weights: str | None) -> str | None:
    """What a manifest records as the source of `--weights` (None: random init)."""
    if weights is None:
        return None
    return f"{_DEMO_PREFIX}{model}" if weights == DEMO_WEIGHTS else str(Path(weights))


def weights_file(reference: str) -> Path:
    """The file behind a manifest's weights reference."""
    if reference.startswith(_DEMO_PREFIX):
        return demo_weights(reference[len(_DEMO_PREFIX):])
    return Path(reference)


def demo_record(name: str) -> dict[str, Any]:
    """Training record of a demo checkpoint (accuracy, epochs, seed, ...)."""
    return json.loads((DEMO_DIR / f"{name}.json").read_text())


def demo_labels() -> tuple[str, ...]:
    return FASHION_MNIST_CLASSES
