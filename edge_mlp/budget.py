"""Pieces of the int8 accuracy budget (`edge-mlp convert --max-drop`): labelled held-out data, the
artifact's accuracy on it, and the blocks ranked by int8 sensitivity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .data import image_folder, npz, preprocess_all
from .errors import EdgeMlpError
from .preprocess import Preprocessing

SENSITIVITY_IMAGES = 16


def labelled_holdout(calib: str, preprocess: Preprocessing, num_classes: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The labelled images the budget is measured on: the calibration source itself."""
    if calib == "demo":
        from .demo import CALIB_SUBSET

        data = npz(CALIB_SUBSET)
    else:
        data = image_folder(Path(calib))
    if len(data.classes) != num_classes:
        raise EdgeMlpError(f"{data.source} has {len(data.classes)} classes; the model predicts {num_classes}")
    return preprocess_all(data.images, preprocess), data.labels, data.source


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((logits.argmax(1) == labels).mean())


def reference_top1(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return top1(model(torch.from_numpy(x)).numpy(), y)


def sensitivity_ranking(conv: Any, model: nn.Module, x: np.ndarray) -> list[str]:
    """Block names, worst int8 SQNR first, under the target's own PT2E recipe."""
    from .sensitivity import target_block_sqnr

    inputs = [torch.from_numpy(x[i : i + 1]) for i in range(min(SENSITIVITY_IMAGES, len(x)))]
    results, _ = target_block_sqnr(conv, model, inputs, inputs)
    return [b.block for b in results]
