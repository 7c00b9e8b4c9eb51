"""Plain per-element references of the official semantics, written independently of edge_mlp.ops.

- AS-MLP: the CuPy kernel in svip-lab/AS-MLP `models/shift_cuda.py`: group = ceil(C / k),
  g = c // group, s = -(g - k // 2); out[n, c, h, w] = in[n, c, h + s, w] (dim 2) or
  in[n, c, h, w + s] (dim 3), zero outside.
- CycleMLP: torchvision `deform_conv2d` with a 1x1 weight and the offsets of the official
  `CycleFC.gen_offset`: bilinear sampling at (h + dy_c, w + dx_c), zero outside, then the weight.
"""

from __future__ import annotations

import math

import numpy as np


def axial_shift_reference(x: np.ndarray, shift: int, dim: int) -> np.ndarray:
    if shift == 1:
        return x.copy()
    n_, c_, h_, w_ = x.shape
    group = math.ceil(c_ / shift)
    out = np.zeros_like(x)
    for n in range(n_):
        for c in range(c_):
            s = -(c // group - shift // 2)
            for h in range(h_):
                for w in range(w_):
                    hh, ww = (h + s, w) if dim == 2 else (h, w + s)
                    if 0 <= hh < h_ and 0 <= ww < w_:
                        out[n, c, h, w] = x[n, c, hh, ww]
    return out


def gen_offset_reference(in_channels: int, kernel_size: tuple[int, int]) -> np.ndarray:
    """The official CycleFC.gen_offset, transcribed loop by loop."""
    offset = np.empty((1, in_channels * 2, 1, 1), dtype=np.float32)
    start_idx = (kernel_size[0] * kernel_size[1]) // 2
    for i in range(in_channels):
        if kernel_size[0] == 1:
            offset[0, 2 * i + 0, 0, 0] = 0
            offset[0, 2 * i + 1, 0, 0] = (i + start_idx) % kernel_size[1] - (kernel_size[1] // 2)
        else:
            offset[0, 2 * i + 0, 0, 0] = (i + start_idx) % kernel_size[0] - (kernel_size[0] // 2)
            offset[0, 2 * i + 1, 0, 0] = 0
    return offset


def _bilinear(img: np.ndarray, y: float, x: float) -> float:
    """torchvision's deform_conv2d sampling of one (H, W) plane: zero outside the image."""
    h_, w_ = img.shape
    if y <= -1 or y >= h_ or x <= -1 or x >= w_:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    val = 0.0
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < h_ and 0 <= xx < w_:
                val += wy * wx * float(img[yy, xx])
    return val


def deform_sample_reference(x: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Per-channel sampled input of a 1x1 deform_conv2d whose offset has one (dy, dx) per channel."""
    n_, c_, h_, w_ = x.shape
    out = np.zeros_like(x)
    for n in range(n_):
        for c in range(c_):
            dy, dx = float(offset[0, 2 * c, 0, 0]), float(offset[0, 2 * c + 1, 0, 0])
            for h in range(h_):
                for w in range(w_):
                    out[n, c, h, w] = _bilinear(x[n, c], h + dy, w + dx)
    return out


def cycle_fc_reference(
    x: np.ndarray, offset: np.ndarray, weight: np.ndarray, bias: np.ndarray | None
) -> np.ndarray:
    sampled = deform_sample_reference(x, offset).astype(np.float64)
    out = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0].astype(np.float64), sampled)
    if bias is not None:
        out += bias.astype(np.float64)[None, :, None, None]
    return out
