"""Calibration images for static int8 quantization.

`demo` is the committed real calibration subset (256 Fashion-MNIST training images), `synthetic`
generates images with natural-image statistics, anything else is an image folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data import IMAGE_SUFFIXES, image_files, npz, preprocess_all, read_image
from .errors import EdgeMlpError
from .preprocess import Preprocessing

FASHION_NOTE = ("real Fashion-MNIST clothing images, evenly spaced over the 256 stratified training images "
                "in edge_mlp/assets: the demo checkpoints' domain")
SYNTHETIC_NOTE = (
    "synthetic images with natural-image statistics (1/f amplitude spectrum, correlated RGB), "
    "generated deterministically; not real photos"
)


@dataclass(frozen=True)
class CalibrationSet:
    batches: list[np.ndarray]  # each (1, C, H, W) float32, already preprocessed
    source: str
    note: str

    def describe(self) -> dict:
        return {"source": self.source, "size": len(self.batches), "note": self.note}


def load_calibration(source: str, preprocess: Preprocessing, size: int, seed: int = 0) -> CalibrationSet:
    if size < 1:
        raise EdgeMlpError(f"--calib-size must be at least 1, got {size}")
    if source == "demo":
        from .demo import CALIB_SUBSET

        images = npz(CALIB_SUBSET).images
        batches = list(preprocess_all([images[i] for i in evenly_spaced(len(images), size)], preprocess)[:, None])
        return CalibrationSet(batches, "demo", FASHION_NOTE)
    if source == "synthetic":
        return CalibrationSet(synthetic_images(preprocess, size, seed), "synthetic", SYNTHETIC_NOTE)
    return CalibrationSet(folder_images(Path(source), preprocess, size), str(source),
                          "image folder, evenly spaced over the sorted file list")


def folder_images(folder: Path, preprocess: Preprocessing, size: int) -> list[np.ndarray]:
    """Images from a flat folder or a class-subfolder layout, spread evenly over the sorted files."""
    if not folder.is_dir():
        raise EdgeMlpError(f"calibration folder not found: {folder} (pass an image folder or 'demo')")
    try:
        files = image_files(folder)
    except OSError as err:
        raise EdgeMlpError(f"cannot read calibration folder {folder}: {err.strerror or err}") from None
    if not files:
        raise EdgeMlpError(
            f"calibration folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}); "
            "pass a folder of images or 'demo'"
        )
    picks = dict.fromkeys(files[i] for i in evenly_spaced(len(files), size))
    return list(preprocess_all([read_image(p, "calibration image") for p in picks], preprocess)[:, None])


def evenly_spaced(count: int, size: int) -> np.ndarray:
    """Up to `size` indices spread evenly over range(count), ends included."""
    return np.linspace(0, count - 1, min(size, count)).round().astype(int)


def synthetic_images(preprocess: Preprocessing, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    side = max(preprocess.resize, *preprocess.crop)
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0 / side
    mix = np.array([[1.0, 0.9, 0.8], [0.9, 1.0, 0.9], [0.8, 0.9, 1.0]])  # channels correlate in photos
    out = []
    for _ in range(size):
        alpha = rng.uniform(0.8, 1.4)  # natural images: amplitude ~ 1/f^alpha
        planes = []
        for _ in range(3):
            spectrum = radius**-alpha * np.exp(2j * np.pi * rng.random(radius.shape))
            plane = np.fft.irfft2(spectrum, s=(side, side))
            planes.append((plane - plane.mean()) / (plane.std() + 1e-8))
        rgb = np.tensordot(np.stack(planes, -1), mix.T, axes=1) / mix.sum(1)
        rgb = rgb * rng.uniform(30, 70) + rng.uniform(80, 170, size=3)
        image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        out.append(preprocess(image)[None])
    return out
