"""Labelled images for calibration, training and parity: Fashion-MNIST, image folders, `.npz`.

Every loader returns raw images; `preprocess_all` turns them into model inputs through the one
preprocessing definition (`edge_mlp.preprocess.Preprocessing`), so training, calibration, parity
and the apps agree.
"""

from __future__ import annotations

import gzip
import struct
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


def read_image(path: Path, what: str = "image") -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); unreadable files give one clear error."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise EdgeMlpError(f"cannot read {what} {path}: {err}") from None


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
    except (OSError, KeyError, ValueError) as err:
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
