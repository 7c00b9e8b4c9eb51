"""Pieces of the int8 accuracy budget (`edge-mlp convert --max-drop`): labelled held-out data, the
artifact's accuracy on it, and the blocks ranked by int8 sensitivity."""

from __future__ import annotations

from contextlib import nullcontext
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


def holdout_accuracy(conv: Any, artifact: Path, model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(PyTorch fp32 top-1, artifact top-1) in percent."""
    run = conv.load(artifact)
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
    outputs = np.concatenate([run(x[i : i + 1]) for i in range(len(x))])
    return 100.0 * float((reference.argmax(1) == y).mean()), 100.0 * float((outputs.argmax(1) == y).mean())


def sensitivity_ranking(conv: Any, model: nn.Module, x: np.ndarray) -> list[str]:
    """Block names, worst int8 SQNR first, under the target's own PT2E recipe."""
    from converters._pt2e import quantize_pt2e

    from .sensitivity import per_block_sqnr

    quantizer, rewrite, _ = conv.pt2e_recipe()
    inputs = [torch.from_numpy(x[i : i + 1]) for i in range(min(SENSITIVITY_IMAGES, len(x)))]

    def quantize(m: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
        return quantize_pt2e(m, example, quantizer, inputs, lambda _: nullcontext(), rewrite=rewrite)

    return [b.block for b in per_block_sqnr(model, quantize, inputs)]
