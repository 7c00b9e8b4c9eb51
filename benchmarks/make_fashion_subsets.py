"""Write the committed Fashion-MNIST subsets (deterministic): 2,000 stratified test images for
parity in CI and 256 stratified training images for int8 calibration.

    .venv/bin/python benchmarks/make_fashion_subsets.py
"""

from __future__ import annotations

import numpy as np

from edge_mlp.data import FASHION_MNIST_CLASSES, fashion_mnist, stratified_indices
from edge_mlp.demo import CALIB_SUBSET, EVAL_SUBSET


def write(split: str, count: int, seed: int, path) -> None:
    data = fashion_mnist(split)
    index = stratified_indices(data.labels, count, seed)
    np.savez_compressed(path, images=np.stack([data.images[i] for i in index]), labels=data.labels[index],
                        classes=np.asarray(FASHION_MNIST_CLASSES), source_index=index)
    print(f"{path}: {count} images from fashion-mnist/{split}, {np.bincount(data.labels[index]).tolist()} per class")


if __name__ == "__main__":
    EVAL_SUBSET.parent.mkdir(parents=True, exist_ok=True)
    write("test", 2000, 0, EVAL_SUBSET)
    write("train", 256, 1, CALIB_SUBSET)
