"""Data loaders and the committed Fashion-MNIST subsets."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_mlp.data import FASHION_MNIST_CLASSES, image_folder, load_dataset, npz, preprocess_all, read_idx, stratified_indices
from edge_mlp.demo import CALIB_SUBSET, EVAL_SUBSET, demo_config
from edge_mlp.errors import EdgeMlpError
from edge_mlp.preprocess import Preprocessing


def test_read_idx(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 0x08, 3, 2, 3, 4) + data.tobytes())
    assert np.array_equal(read_idx(path), data)


def test_committed_subsets_are_stratified_real_images() -> None:
    evaluation, calibration = npz(EVAL_SUBSET), npz(CALIB_SUBSET)
    assert len(evaluation) == 2000 and np.bincount(evaluation.labels).tolist() == [200] * 10
    assert len(calibration) == 256 and np.bincount(calibration.labels).min() == 25
    assert evaluation.classes == FASHION_MNIST_CLASSES
    assert evaluation.images[0].shape == (28, 28) and evaluation.images[0].dtype == np.uint8
    assert np.std(np.stack(evaluation.images[:50]).astype(float)) > 50  # real pictures, not noise-free blanks


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset-fashion-mnist not installed")
def test_eval_subset_is_drawn_from_the_real_test_split() -> None:
    full = load_dataset("fashion-mnist")
    with np.load(EVAL_SUBSET) as d:
        index = d["source_index"]
        assert np.array_equal(np.stack([full.images[i] for i in index]), d["images"])
        assert np.array_equal(full.labels[index], d["labels"])


def test_preprocessing_of_gray_28px_images() -> None:
    pre = Preprocessing.for_model(demo_config("as_mlp_mobile"))
    x = preprocess_all(npz(EVAL_SUBSET).images[:4], pre)
    assert x.shape == (4, 3, 32, 32) and x.dtype == np.float32
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 1], x[:, 2])  # gray -> RGB
    assert abs(float(x.mean())) < 1.0  # normalized with the dataset statistics


def test_image_folder_and_errors(tmp_path: Path) -> None:
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / cls / "a.png")
    ds = image_folder(tmp_path)
    assert ds.classes == ("cat", "dog") and ds.labels.tolist() == [0, 1]
    with pytest.raises(EdgeMlpError, match="no class subfolders"):
        image_folder(tmp_path / "cat")
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(EdgeMlpError, match="cannot read .* as an image .npz"):
        npz(tmp_path / "bad.npz")


def test_stratified_indices_balance() -> None:
    labels = np.repeat(np.arange(4), [50, 30, 20, 10])
    picks = stratified_indices(labels, 20, seed=0)
    assert len(picks) == 20 and np.bincount(labels[picks]).tolist() == [5, 5, 5, 5]
