import gzip
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from course_lib import data


def _write_tree(root, splits=("train", "test"), classes=("cat", "dog"), per_class=3, size=12):
    rng = np.random.default_rng(0)
    for split in splits:
        for cls in classes:
            os.makedirs(root / split / cls, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}.png")
    return root


def _toy_split(count=20, size=8, classes=4):
    """A split whose labels are the example numbers, so the order of examples is visible."""
    images = np.arange(count, dtype=np.uint8)[:, None, None, None] * np.ones(
        (1, size, size, 3), np.uint8)
    return data.Split("toy", "train", images, np.arange(count, dtype="int32"),
                      tuple(str(i) for i in range(classes)), np.zeros(3, "float32"),
                      np.ones(3, "float32"), "test")


def test_fashion_mnist_is_real_and_complete():
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    assert train.images.shape == (60_000, 28, 28, 1) and test.images.shape == (10_000, 28, 28, 1)
    assert train.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(train.labels), [6_000] * 10)
    assert train.class_names[9] == "ankle boot"
    # Both splits are normalised with the training split's statistics.
    np.testing.assert_array_equal(train.mean, test.mean)
    assert 60 < train.mean[0] < 90


def test_fashion_mnist_reads_debian_idx_files(offline_cache, tmp_path, monkeypatch):
    folder = tmp_path / "debian"
    folder.mkdir()
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    for prefix in ("train", "t10k"):
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0" * 16 + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0" * 8 + bytes([7, 0, 9]))
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(folder))
    monkeypatch.setattr(data, "_STATISTICS", {})
    split = data.load("fashion_mnist", "test")
    np.testing.assert_array_equal(split.images[..., 0], images)
    assert list(split.labels) == [7, 0, 9] and split.source == str(folder)


def test_folder_and_zip_of_class_folders(offline_cache, tmp_path):
    root = _write_tree(tmp_path / "photos")
    from_folder = data.load(str(root), "test")
    assert from_folder.class_names == ("cat", "dog")
    assert list(from_folder.labels) == [0, 0, 0, 1, 1, 1]
    assert from_folder.images.shape == (6, 12, 12, 3)
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(root.rglob("*.png")):
            z.write(path, path.relative_to(root).as_posix())
    from_zip = data.load(str(archive), "test", image_size=8)
    assert from_zip.images.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(from_zip.labels, from_folder.labels)


def test_data_dir_serves_cifar10_zips_and_caches_them(offline_cache, tmp_path, monkeypatch):
    root = _write_tree(tmp_path / "tree", classes=("airplane", "automobile"), size=32)
    with zipfile.ZipFile(tmp_path / "cifar10-train.zip", "w") as z:
        for path in sorted((root / "train").rglob("*.png")):
            z.write(path, path.relative_to(root).as_posix())
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "_STATISTICS", {})
    split = data.load("cifar10", "train")
    assert split.images.shape == (6, 32, 32, 3) and split.class_names[1] == "automobile"
    assert any(name.startswith("tree-") for name in os.listdir(offline_cache))


def test_unknown_name_and_split_say_what_to_choose():
    with pytest.raises(ValueError, match="fashion_mnist, cifar10, cifar100, imagenette"):
        data.load("mnist")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load("cifar10", "validation")


def test_missing_data_says_where_it_looked_and_how_to_get_it(offline_cache):
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("cifar100", "test")
    message = str(error.value)
    assert "Looked in" in message and str(offline_cache) in message
    assert "d.load('cifar100')" in message


def test_folder_without_the_split_is_a_clear_error(offline_cache, tmp_path):
    root = _write_tree(tmp_path / "only_train", splits=("train",))
    with pytest.raises(data.DataNotFoundError, match="no images under 'test/<class>/'"):
        data.load(str(root), "test")


def test_limit_keeps_classes_balanced():
    split = data.load("fashion_mnist", "test", limit=200, image_size=32)
    assert split.images.shape == (200, 32, 32, 1)
    np.testing.assert_array_equal(np.bincount(split.labels), [20] * 10)


def test_training_batches_shuffle_examples_every_epoch():
    batches = data.batches(_toy_split(), 5, training=True, flip=False)
    first = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(first) == list(range(20))  # every example exactly once
    # Shuffled example by example: the first batch is not a run of neighbours.
    assert np.ptp(first[:5]) > 4
    batches.set_epoch(1)
    second = np.concatenate([batches[i][1] for i in range(len(batches))])
    assert sorted(second) == list(range(20)) and list(second) != list(first)
    batches.set_epoch(0)  # the order is a function of (seed, epoch): resumable
    again = np.concatenate([batches[i][1] for i in range(len(batches))])
    np.testing.assert_array_equal(again, first)


def test_training_drops_the_incomplete_last_batch():
    batches = data.batches(_toy_split(), 8, training=True)
    assert len(batches) == 2 and all(len(batches[i][1]) == 8 for i in range(2))
    with pytest.raises(ValueError, match="no whole batch"):
        data.batches(_toy_split(), 32, training=True)


def test_evaluation_batches_keep_order_and_centre_crop():
    split = _toy_split(size=10)
    batches = data.batches(split, 8, crop=8)
    images, labels = batches[0]
    assert list(labels) == list(range(8)) and images.shape == (8, 8, 8, 3)
    assert len(batches) == 3 and len(batches[2][1]) == 4
    with pytest.raises(ValueError, match="larger than"):
        data.batches(split, 8, crop=12)


def test_crop_flip_and_normalisation():
    rng = np.random.default_rng(0)
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    crops = data.random_crop(np.repeat(image, 50, 0), 4, pad=1, rng=rng)
    assert crops.shape == (50, 4, 4, 3)
    assert (crops == 0).any() and not all((c == image[0]).all() for c in crops)
    flipped = data.random_flip(np.repeat(image, 50, 0), rng)
    mirrored = [(f == image[0, :, ::-1]).all() for f in flipped]
    assert 10 < sum(mirrored) < 40
    assert all(m or (f == image[0]).all() for f, m in zip(flipped, mirrored, strict=True))
    split = data.load("fashion_mnist", "test", limit=500)
    x, _ = data.batches(split, 500)[0]
    assert abs(float(x.mean())) < 0.1 and 0.9 < float(x.std()) < 1.1
    np.testing.assert_array_equal(data.denormalize(x, split), split.images)
