"""The one definition of how an image becomes a model input.

Derived from the model's `DataConfig` and input size; converters record it in the manifest, and
calibration, parity and the sample apps all follow it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image

from .models import ModelConfig

_PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "nearest": Image.Resampling.NEAREST}


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to `resize`, center-crop `crop`, scale to [0, 1], normalize."""

    resize: int
    crop: tuple[int, int]
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1.0 / 255.0
    color: str = "RGB"
    layout: str = "NCHW"

    @classmethod
    def for_model(cls, config: ModelConfig) -> "Preprocessing":
        assert config.data is not None, f"{config.name} has no data config"
        _, h, w = config.input_size
        return cls(
            resize=int(math.floor(max(h, w) / config.data.crop_pct)),
            crop=(h, w),
            interpolation=config.data.interpolation,
            mean=tuple(config.data.mean),
            std=tuple(config.data.std),
        )

    def at_size(self, height: int, width: int) -> "Preprocessing":
        """The same preprocessing for another input size of a multi-size artifact (same crop ratio)."""
        ratio = self.resize / max(self.crop)
        return replace(self, resize=int(math.floor(max(height, width) * ratio + 1e-9)), crop=(height, width))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop"] = list(self.crop)
        return d

    def __call__(self, image: Image.Image) -> np.ndarray:
        """PIL image (any mode) -> float32 array (3, H, W); grayscale is replicated to RGB."""
        x = np.asarray(self.resized(image), dtype=np.float32) * self.scale
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def resized(self, image: Image.Image) -> Image.Image:
        """The image in `color`, shorter side resized to `resize`, center-cropped to `crop`."""
        image = image.convert(self.color)
        w, h = image.size
        ratio = self.resize / min(w, h)
        image = image.resize((max(1, round(w * ratio)), max(1, round(h * ratio))), _PIL_FILTERS[self.interpolation])
        w, h = image.size
        ch, cw = self.crop
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch))


def quantize_input(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type = np.int8) -> np.ndarray:
    """Float input -> integer input of an int8-I/O model: clip(round_half_even(x / scale) + zp).

    In float32, as the sample apps do it too (their preprocessing vectors pin this).
    """
    info = np.iinfo(dtype)
    x = np.asarray(x, np.float32)
    return np.clip(np.round(x / np.float32(scale)) + zero_point, info.min, info.max).astype(dtype)
