"""Labelled images for calibration, training and parity: Fashion-MNIST, image folders, `.npz`.

Every loader returns raw images; `preprocess_all` turns them into model inputs through the one
preprocessing definition (`edge_mlp.preprocess.Preprocessing`), so training, calibration, parity
and the apps agree.
"""

from __future__ import annotations

import gzip
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import EdgeMlpError
from .preprocess import Preprocessing

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass
class LabelledImages:
    images: Sequence[np.ndarray]  # uint8, (H, W) gray or (H, W, 3) RGB, sizes may differ
    labels: np.ndarray  # int64 (N,)
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Sequence[int] | np.ndarray) -> "LabelledImages":
        index = np.asarray(index)
        return LabelledImages([self.images[i] for i in index], self.labels[index], self.classes, self.source)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzip or plain."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise EdgeMlpError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str = "test", root: Path = FASHION_MNIST_DIR) -> LabelledImages:
    prefix = {"train": "train", "test": "t10k"}[split]
    images, labels = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        raise EdgeMlpError(
            f"Fashion-MNIST not found in {root}: install Debian's dataset-fashion-mnist package "
            "(`make setup` does so when run as root), or pass --data DIR|FILE.npz"
        )
    x = read_idx(images)
    return LabelledImages(list(x), read_idx(labels).astype(np.int64), FASHION_MNIST_CLASSES, f"fashion-mnist/{split}")


def image_files(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted (raises OSError when the folder cannot be listed)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


# Pillow's own decompression-bomb threshold (about 89 MP): above it Pillow only warns (and raises
# at twice as much); we refuse from the header, before any pixel is decoded.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def open_image(path: Path, what: str = "image") -> Image.Image:
    """An image file as an 8-bit PIL image. Its size is checked from the header before decoding
    (a 30000x30000 PNG is a few bytes), and 16-bit images are scaled to 8 bits, not clipped."""
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit and raises above; we refuse both, below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise EdgeMlpError(f"{what} {path} is {w}x{h} ({w * h / 1e6:.0f} MP), over the "
                                   f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP edge-mlp decodes; downscale it first")
            im.load()
            return _eight_bit(im, path, what)
    except Image.DecompressionBombError:
        raise EdgeMlpError(f"{what} {path} is over {2 * MAX_IMAGE_PIXELS / 1e6:.0f} MP (Pillow refuses it as a "
                           "possible decompression bomb); downscale it first") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise EdgeMlpError(f"cannot read {what} {path}: {err}") from None


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _eight_bit(im: Image.Image, path: Path, what: str) -> Image.Image:
    """Pillow's convert() clips 16-bit values at 255 (a 16-bit PNG turns almost white): rescale
    0..65535 to 0..255 instead, rounding, as image libraries do when they reduce bit depth."""
    if im.mode in _SIXTEEN_BIT or im.mode == "I":
        values = np.asarray(im).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise EdgeMlpError(f"{what} {path} has 32-bit integer pixels; save it as an 8- or 16-bit PNG or JPEG")
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L")
    if im.mode == "F":
        raise EdgeMlpError(f"{what} {path} has floating-point pixels; save it as an 8- or 16-bit PNG or JPEG")
    return im.copy()


def read_image(path: Path, what: str = "image") -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); unreadable files give one clear error."""
    return np.asarray(open_image(path, what).convert("RGB"))


def image_folder(folder: Path) -> LabelledImages:
    """Class-subfolder layout: each subfolder name is a class, sorted for the label index."""
    if not folder.is_dir():
        raise EdgeMlpError(f"image folder not found: {folder}")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise EdgeMlpError(f"{folder} has no class subfolders (expected DIR/CLASS/image.jpg)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in image_files(folder / name):
            images.append(read_image(path))
            labels.append(label)
    if not images:
        raise EdgeMlpError(f"{folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return LabelledImages(images, np.asarray(labels, np.int64), tuple(classes), str(folder))


def npz(path: Path) -> LabelledImages:
    """`.npz` with `images` (N, H, W[, 3]) uint8, `labels` (N,), optional `classes`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"].astype(np.int64)
            classes = tuple(str(c) for c in data["classes"]) if "classes" in data else tuple(
                str(i) for i in range(int(labels.max()) + 1))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise EdgeMlpError(f"cannot read {path} as an image .npz (images, labels[, classes]): {err}") from None
    if images.dtype != np.uint8 or len(images) != len(labels):
        raise EdgeMlpError(f"{path}: images must be uint8 and match labels in length")
    return LabelledImages(list(images), labels, classes, str(path))


def load_dataset(spec: str) -> LabelledImages:
    """'fashion-mnist' (its test split), a class-subfolder DIR, or FILE.npz."""
    if spec in ("fashion-mnist", "fashion-mnist/test"):
        return fashion_mnist("test")
    if spec == "fashion-mnist/train":
        return fashion_mnist("train")
    path = Path(spec)
    if path.suffix == ".npz":
        return npz(path)
    return image_folder(path)


def preprocess_all(images: Sequence[np.ndarray], preprocess: Preprocessing) -> np.ndarray:
    """(N, 3, H, W) float32 model inputs."""
    return np.stack([preprocess(Image.fromarray(im)) for im in images])


def stratified_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices with the classes as balanced as the data allows, in a seeded order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    picks = [idx[: count // len(classes) + (i < count % len(classes))] for i, idx in enumerate(per_class)]
    return np.sort(np.concatenate(picks))
