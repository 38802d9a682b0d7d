import gzip
import io
import os
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from course_lib import config, data


def _write_tree(root, splits=("train", "test"), classes=("cat", "dog"), per_class=3, size=12):
    rng = np.random.default_rng(0)
    for split in splits:
        for cls in classes:
            os.makedirs(root / split / cls, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:04d}.png")
    return root


def _png(size=(12, 12), seed=0, mode="RGB", value=None):
    """The bytes of a PNG image, `size` as (width, height): random pixels, or all `value`."""
    width, height = size
    shape = (height, width) if mode == "L" else (height, width, 3)
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    if value is not None:
        pixels[:] = value
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def _zip(path, members):
    """A zip of `members` ({name: bytes}; a name ending in '/' is a directory entry)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob or b"")
    return str(path)


def _folder(root, members):
    """The same `members` as files and (empty) folders under `root`."""
    for name, blob in members.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
    return str(root)


def _both(tmp_path, members, name="tree"):
    """A zip and a folder holding the same members: every tree rule holds for both."""
    return (_zip(tmp_path / f"{name}.zip", members), _folder(tmp_path / name, members))


def _debian_fashion_mnist(folder):
    """Three 28x28 images, labelled 7, 0 and 9, as Debian's idx files (train and test)."""
    folder.mkdir()
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    for prefix in ("train", "t10k"):
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0" * 16 + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0" * 8 + bytes([7, 0, 9]))
    return images


def _cifar10_data_dir(folder, monkeypatch, **options):
    """COURSE_DATA_DIR=`folder`, holding a small cifar10-train.zip (2 classes x 3 images)."""
    root = _write_tree(folder / "tree", splits=("train",), classes=("airplane", "automobile"),
                       **options)
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / "cifar10-train.zip", "w") as z:
        for path in sorted(root.rglob("*.png")):
            z.write(path, path.relative_to(root).as_posix())
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    return folder


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
    images = _debian_fashion_mnist(folder)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(folder))
    monkeypatch.setattr(data, "_STATISTICS", {})
    split = data.load("fashion_mnist", "test")
    by_label = np.argsort(split.labels)  # the files hold labels 7, 0, 9
    np.testing.assert_array_equal(split.images[by_label, ..., 0], images[[1, 0, 2]])
    assert list(split.labels[by_label]) == [0, 7, 9] and split.source == str(folder)


def test_folder_and_zip_of_class_folders(offline_cache, tmp_path):
    root = _write_tree(tmp_path / "photos")
    from_folder = data.load(str(root), "test")
    assert from_folder.class_names == ("cat", "dog")
    assert sorted(from_folder.labels) == [0, 0, 0, 1, 1, 1]
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


def test_first_available_falls_back_saying_why(offline_cache, tmp_path, monkeypatch, capsys):
    _cifar10_data_dir(tmp_path / "data", monkeypatch)
    assert data.first_available("imagenette", "cifar10") == "cifar10"
    printed = capsys.readouterr().out
    assert printed.startswith("Using cifar10: data set 'imagenette' is not on this machine")
    assert "COURSE_OFFLINE=1 forbids downloads" in printed
    assert data.first_available("cifar10", "imagenette") == "cifar10"
    assert capsys.readouterr().out == ""  # nothing skipped, nothing to say
    with pytest.raises(data.DataNotFoundError, match=r"(?s)none of.*imagenette:.*cifar100:"):
        data.first_available("imagenette", "cifar100")
    with pytest.raises(ValueError, match="at least one"):
        data.first_available()
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        data.first_available("imagenet", "cifar10")  # a typo is not a missing data set


def test_imagenette_comes_through_tensorflow_datasets_when_it_can(offline_cache, monkeypatch):
    """With downloads allowed, ImageNette is first (tensorflow-datasets' mock data stands in
    for the download): 160-px squares, ten classes, kept in the course cache."""
    import tensorflow_datasets as tfds

    monkeypatch.setenv("COURSE_OFFLINE", "0")
    monkeypatch.setattr(data, "_check_reachable", lambda host: None)  # the mock is local
    with tfds.testing.mock_data(num_examples=12):
        assert data.first_available("imagenette", "cifar10") == "imagenette"
    monkeypatch.setenv("COURSE_OFFLINE", "1")  # from the cache now
    split = data.load("imagenette", "train")
    assert split.images.shape == (12, 160, 160, 3) and split.images.dtype == np.uint8
    assert split.num_classes == 10 and split.class_names[0] == "tench"
    assert (offline_cache / "imagenette-train.npz").exists()


def test_imagenette_fails_fast_and_says_why_when_its_server_cannot_be_reached(
        offline_cache, monkeypatch):
    """tensorflow-datasets retries an unreachable server for minutes (3.5 measured here);
    the course asks the server first and falls back at once."""
    import socket

    def unreachable(address, timeout=None):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("COURSE_OFFLINE", "0")
    monkeypatch.setenv("TFDS_DATA_DIR", str(offline_cache / "tfds"))  # nothing prepared
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(data.DataNotFoundError,
                       match="download failed: cannot reach s3.amazonaws.com"):
        data.load("imagenette", "train")


def test_tensorflow_datasets_finds_its_builders_files():
    """tensorflow-datasets needs importlib_resources to prepare any data set (ImageNette,
    ImageNet's manual archives) but does not install it: requirements.txt does."""
    import tensorflow_datasets as tfds

    for name in ("imagenette", "imagenet2012"):
        assert tfds.builder_cls(name).code_path.name.endswith(".py")


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


# ------------------------------------------------ faults found in review, one test each


def test_every_source_comes_back_in_one_seeded_stratified_order(offline_cache, tmp_path):
    root = _write_tree(tmp_path / "photos", classes=("a", "b", "c"), per_class=12, size=4)
    for extra in range(6, 12):  # class a keeps half: shares 1/5, 2/5, 2/5
        os.remove(root / "train" / "a" / f"{extra:04d}.png")
    split = data.load(str(root), "train")
    assert list(split.labels) != sorted(split.labels)  # not sorted by class
    for count in range(1, len(split) + 1):  # every prefix holds each class in proportion
        held = np.bincount(split.take(count).labels, minlength=3)
        assert np.all(np.abs(held - count * np.array([6, 12, 12]) / 30) < 2), (count, held)
    # One order per seed, whatever the limit: load(limit=n) is load().take(n).
    limited = data.load(str(root), "train", limit=7)
    np.testing.assert_array_equal(limited.images, split.images[:7])
    np.testing.assert_array_equal(limited.labels, split.labels[:7])
    np.testing.assert_array_equal(data.load(str(root), "train").images, split.images)
    assert not np.array_equal(data.load(str(root), "train", seed=1).images, split.images)


def test_test_split_is_labelled_with_the_training_class_folders(offline_cache, tmp_path):
    png = _png()
    members = {f"train/{cls}/0.png": png for cls in "abc"}
    members.update({"test/a/0.png": png, "test/b/": None, "test/c/0.png": png,
                    "test/c/1.png": png})
    for source in _both(tmp_path, members):
        test = data.load(source, "test")
        assert test.class_names == ("a", "b", "c") and sorted(test.labels) == [0, 2, 2]
    members["test/d/0.png"] = png  # a class the training split does not have
    for source in _both(tmp_path, members, "unknown"):
        with pytest.raises(ValueError, match="test/d"):
            data.load(source, "test")


def test_an_empty_training_class_folder_is_an_error_naming_it(offline_cache, tmp_path):
    png = _png()
    members = {"train/a/0.png": png, "train/b/": None, "train/c/0.png": png,
               "test/a/0.png": png}
    for source in _both(tmp_path, members):
        with pytest.raises(ValueError, match="train/b"):
            data.load(source, "train")


def test_a_corrupt_cache_file_is_rebuilt_from_its_source(offline_cache, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.setattr(data, "_STATISTICS", {})
    _cifar10_data_dir(tmp_path / "data", monkeypatch)
    first = data.load("cifar10", "train")
    [cached] = [offline_cache / f for f in os.listdir(offline_cache) if f.endswith(".npz")]
    cached.write_bytes(cached.read_bytes()[:200])  # cut short, as by a killed process
    capsys.readouterr()
    again = data.load("cifar10", "train")
    assert "rebuilding it" in capsys.readouterr().out
    np.testing.assert_array_equal(again.images, first.images)
    with np.load(cached) as archive:  # rewritten whole
        assert archive["images"].shape == first.images.shape
    # A downloaded data set's cache file too: here Debian's files serve it instead.
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(tmp_path / "debian"))
    _debian_fashion_mnist(tmp_path / "debian")
    (offline_cache / "fashion_mnist-test.npz").write_bytes(b"PK\3\4 not a whole npz")
    assert len(data.load("fashion_mnist", "test")) == 3
    assert "fashion_mnist-test.npz" in capsys.readouterr().out


def test_cache_files_are_written_whole_or_not_at_all(offline_cache, tmp_path, monkeypatch):
    _cifar10_data_dir(tmp_path / "data", monkeypatch)

    def disk_full(file, **arrays):
        (open(file, "wb") if isinstance(file, str) else file).write(b"PK\3\4 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.warns(UserWarning, match="cache"):
        assert len(data.load("cifar10", "train")) == 6
    assert not offline_cache.exists() or os.listdir(offline_cache) == []


def test_an_unwritable_cache_does_not_stop_a_load(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("COURSE_CACHE", str(blocker / "cache"))  # cannot be created
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert config.cache_dir() == str(blocker / "cache")
    _cifar10_data_dir(tmp_path / "data", monkeypatch)
    with pytest.warns(UserWarning, match="cache"):
        assert len(data.load("cifar10", "train")) == 6


def test_images_of_different_sizes_need_image_size(offline_cache, tmp_path):
    members = {"train/a/0.png": _png((12, 12)), "train/b/0.png": _png((16, 10)),
               "test/a/0.png": _png((20, 20))}
    source = _zip(tmp_path / "mixed.zip", members)
    with pytest.raises(ValueError, match=r"train/b/0.png is 16x10.*image_size"):
        data.load(source, "train")
    for size in (8, 10):  # each image resized as it is decoded; the cache keeps both sizes
        split = data.load(source, "train", image_size=size)
        assert split.images.shape == (2, size, size, 3)
    assert data.load(source, "test", image_size=8).images.shape == (1, 8, 8, 3)
    # Images of one size no larger than image_size are kept (and cached) once at their own
    # size, and enlarged after `limit`.
    before = set(os.listdir(offline_cache))
    uniform = _zip(tmp_path / "uniform.zip", {f"train/a/{i}.png": _png(seed=i) for i in range(3)})
    for size in (16, 20):
        assert data.load(uniform, "train", image_size=size).image_shape == (size, size, 3)
    assert len(set(os.listdir(offline_cache)) - before) == 1


def test_a_corrupt_image_names_itself(offline_cache, tmp_path):
    members = {"train/a/0.png": _png(), "train/a/1.png": b"not an image",
               "test/a/0.png": _png()}
    for source in _both(tmp_path, members):
        with pytest.raises(ValueError, match="train/a/1.png"):
            data.load(source, "train")


def test_mac_zips_and_hidden_files_are_skipped(offline_cache, tmp_path):
    png = _png()
    members = {"train/a/0.png": png, "train/b/0.png": _png(mode="L"),
               "__MACOSX/train/a/._0.png": b"\0\5\26\7 resource fork",
               "train/a/._0.png": b"\0\5\26\7 resource fork", "train/.DS_Store": b"\0",
               "train/.ipynb_checkpoints/0-checkpoint.png": png, "test/a/0.png": png}
    for source in _both(tmp_path, members):
        split = data.load(source, "train")
        assert split.class_names == ("a", "b") and len(split) == 2
        # Grayscale images are read as RGB (three equal channels), like every other image.
        gray = split.images[split.labels == 1][0]
        assert gray.shape == (12, 12, 3) and (gray == gray[..., :1]).all()
    # Some tools write names as ./train/a/0.png: '.' alone is not a hidden name.
    assert len(data.load(_zip(tmp_path / "dot.zip", {"./train/a/0.png": png}), "train")) == 1


def test_exif_orientation_is_applied(offline_cache, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": a camera held upright
    photo = io.BytesIO()
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(photo, "JPEG", exif=exif)
    source = _zip(tmp_path / "camera.zip", {"train/a/0.jpg": photo.getvalue()})
    assert data.load(source, "train").image_shape == (12, 8, 3)  # 8 wide, 12 high


def test_a_zip_holding_the_tree_twice_is_an_error(offline_cache, tmp_path):
    png = _png()
    twice = {"cifar10/train/a/0.png": png, "train/a/0.png": png}
    with pytest.raises(ValueError, match="more than one tree.*cifar10/.*top level"):
        data.load(_zip(tmp_path / "twice.zip", twice), "train")
    two_tops = {"old/train/a/0.png": png, "new/train/a/0.png": png}
    with pytest.raises(ValueError, match="new/.*old/"):
        data.load(_zip(tmp_path / "two_tops.zip", two_tops), "train")
    # One top folder is fine.
    assert len(data.load(_zip(tmp_path / "top.zip", {"top/train/a/0.png": png}))) == 1


def test_bad_arguments_are_clear_value_errors(offline_cache, tmp_path):
    root = str(_write_tree(tmp_path / "photos", size=10))
    for value in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError, match="limit must be a whole number"):
            data.load(root, "train", limit=value)
        with pytest.raises(ValueError, match="image_size must be a whole number"):
            data.load(root, "train", image_size=value)
    for seed in (None, -1, "a", 1.5):  # None would draw a new order on every call
        with pytest.raises(ValueError, match="seed must be a whole number of at least 0"):
            data.load(root, "train", seed=seed)
    split = data.load(root, "train", limit=100)  # more than there are: all of them
    assert len(split) == 6
    with pytest.raises(ValueError, match="seed must be a whole number of at least 0"):
        data.batches(split, 2, training=True, seed=None)
    with pytest.raises(ValueError, match="count must be a whole number"):
        split.take(0)
    for size in (0, -8, "8", 2.0):
        with pytest.raises(ValueError, match="batch_size must be a whole number"):
            data.batches(split, size)
    with pytest.raises(ValueError, match="pad must be a whole number of at least 0"):
        data.batches(split, 2, training=True, pad=-1)
    for crop in (0, -2):
        with pytest.raises(ValueError, match="crop must be a whole number"):
            data.batches(split, 2, crop=crop)
    # Evaluation does not pad: its crop must fit the image itself.
    data.batches(split, 2, training=True, crop=12, pad=1)
    with pytest.raises(ValueError, match="larger than the 10x10 images"):
        data.batches(split, 2, crop=12, pad=1)


def test_crops_of_non_square_images(offline_cache):
    images = np.arange(4 * 6).reshape(1, 4, 6, 1)  # 4 high, 6 wide
    np.testing.assert_array_equal(data.centre_crop(images, 4), images[:, :, 1:5])
    crops = data.random_crop(np.repeat(images, 20, 0), 4, 0, np.random.default_rng(0))
    assert crops.shape == (20, 4, 4, 1) and len({int(c[0, 0, 0]) for c in crops}) == 3
    split = _toy_split(count=4, size=8)
    split.images = np.zeros((4, 8, 6, 3), np.uint8)
    assert data.batches(split, 4)[0][0].shape == (4, 6, 6, 3)  # a centre square by default


def test_a_constant_channel_normalises_without_nan(offline_cache, tmp_path):
    rng = np.random.default_rng(0)
    members = {}
    for i in range(4):
        pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        pixels[..., 2] = 0  # no blue at all
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        members[f"train/a/{i}.png"] = buffer.getvalue()
    split = data.load(_zip(tmp_path / "no_blue.zip", members), "train")
    assert split.std[2] == 1.0  # clipped to one grey level, documented
    assert np.isfinite(data.batches(split, 4)[0][0]).all()


def test_data_dir_must_be_a_folder(offline_cache, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    for value in (tmp_path / "a_file", tmp_path / "missing"):
        monkeypatch.setenv("COURSE_DATA_DIR", str(value))
        with pytest.raises(ValueError, match="COURSE_DATA_DIR=.* must be a folder"):
            data.load("cifar10", "train")


def test_a_path_that_does_not_exist_says_so(offline_cache, tmp_path):
    for name in ("no/such/folder", "photos.zip", str(tmp_path / "gone")):
        with pytest.raises(data.DataNotFoundError, match="no such file or folder"):
            data.load(name, "train")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        data.load(str(tmp_path / "broken.zip"), "train")


def test_course_offline_accepts_the_usual_spellings(offline_cache, monkeypatch):
    for value, expected in [("1", True), ("true", True), ("YES", True), (" On ", True),
                            ("0", False), ("false", False), ("No", False), ("off", False),
                            ("", False)]:
        monkeypatch.setenv("COURSE_OFFLINE", value)
        assert config.offline() is expected, value
    monkeypatch.delenv("COURSE_OFFLINE")
    assert config.offline() is False
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="1, true, yes or on"):
        config.offline()
    monkeypatch.setenv("COURSE_OFFLINE", "true")
    monkeypatch.setattr(data, "_download", lambda *args: pytest.fail("downloaded offline"))
    with pytest.raises(data.DataNotFoundError, match="forbids downloads"):
        data.load("cifar100", "test")


def test_statistics_follow_the_source_not_the_name(offline_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_STATISTICS", {})
    means = {}
    for value in (20, 200):  # two data folders, each with its own cifar10-train.zip
        folder = tmp_path / f"data{value}"
        folder.mkdir()
        _zip(folder / "cifar10-train.zip",
             {f"train/{cls}/0.png": _png(value=value) for cls in CIFAR_TWO})
        monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
        means[value] = data.load("cifar10", "train").mean
        monkeypatch.chdir(folder)  # and the same relative path in either folder
        assert data.load("cifar10-train.zip", "train").mean[0] == value
    assert means[20][0] == 20 and means[200][0] == 200


CIFAR_TWO = ("airplane", "automobile")


# --------------------------------------------------------------- augmentation on the device


def test_device_batches_serve_the_numpy_order_as_uint8():
    split = _toy_split(count=20, size=8)
    host = data.batches(split, 5, training=True, seed=4)
    device = data.batches(split, 5, training=True, seed=4, device=True, crop=6)
    assert isinstance(device, data.DeviceBatches) and len(device) == len(host) == 4
    for epoch in (0, 1, 0):  # the order is a function of (seed, epoch), as on the host
        host.set_epoch(epoch)
        device.set_epoch(epoch)
        for index in range(len(device)):
            images, labels = device[index]
            np.testing.assert_array_equal(labels, host[index][1])
            images = np.asarray(images)
            assert images.dtype == np.uint8  # as stored: the layer crops on the device
            np.testing.assert_array_equal(images, split.images[labels])
    with pytest.raises(IndexError):
        device[4]


def test_device_batches_say_what_they_keep_on_the_device():
    split = _toy_split(count=20, size=8)
    device = data.batches(split, 5, device=True)
    on_jax = keras.backend.backend() == "jax"
    assert device.resident is on_jax  # TensorFlow feeds uint8 batches from the host
    assert device.device_bytes == (20 * 8 * 8 * 3 if on_jax else 0)
    assert device.layer.crop == 8 and device.layer.resize is None


def test_device_batches_check_their_arguments():
    split = _toy_split(count=20, size=8)
    with pytest.raises(ValueError, match="crop 12 is larger.*resize them on the device"):
        data.batches(split, 5, device=True, crop=12)
    assert data.batches(split, 5, device=True, crop=12, resize=12).layer.crop == 12
    for size in (0, 2.5, "8"):
        with pytest.raises(ValueError, match="resize must be a whole number"):
            data.batches(split, 5, device=True, resize=size)
    with pytest.raises(ValueError, match="pca=True"):
        data.batches(split, 5, training=True, device=True, augment=lambda x, rng: x)
    grey = data.load("fashion_mnist", "test", limit=20)
    with pytest.raises(ValueError, match="RGB"):
        data.batches(grey, 5, training=True, device=True, pca=True)
    colour = data.batches(split, 5, training=True, device=True, pca=True)
    values, vectors = colour.pca
    assert values.shape == (3,) and vectors.shape == (3, 3)
    assert data.batches(split, 5, device=True, pca=True).pca is None  # evaluation: no noise


# --------------------------------------------------------------- faults a review found


def test_a_data_dir_without_the_test_split_does_not_borrow_another_source(
        offline_cache, tmp_path, monkeypatch):
    """Only fashion_mnist-train.zip in COURSE_DATA_DIR: the test split must not quietly come
    from Debian's files, with other pixels, channels and class names."""
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(tmp_path / "debian"))
    _debian_fashion_mnist(tmp_path / "debian")
    folder = tmp_path / "data"
    folder.mkdir()
    _zip(folder / "fashion_mnist-train.zip", {f"train/{c}/0.png": _png() for c in "ab"})
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    assert len(data.load("fashion_mnist", "train")) == 2
    with pytest.raises(data.DataNotFoundError, match="not fashion_mnist's test split.*"
                                                     "fashion_mnist-test.zip"):
        data.load("fashion_mnist", "test")


def test_statistics_follow_a_changed_source(offline_cache, tmp_path, monkeypatch):
    """The same zip rewritten with other pixels (a cell run again): new mean and std."""
    monkeypatch.setattr(data, "_STATISTICS", {})
    path = tmp_path / "tree.zip"
    for value in (10, 240):
        _zip(path, {f"train/{c}/{i}.png": _png(value=value) for c in "ab" for i in range(3)})
        os.utime(path, ns=(value * 10**9, value * 10**9))  # a time of its own, as a rewrite
        split = data.load(str(path), "train")
        assert split.mean[0] == value and split.images.mean() == value
        assert abs(data.batches(split, 2)[0][0].mean()) < 1e-6


def test_sixteen_bit_images_are_refused_not_clipped(offline_cache, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.linspace(0, 63_000, 144).astype(np.uint16).reshape(12, 12)).save(
        buffer, "PNG")
    source = _zip(tmp_path / "deep.zip", {"train/a/0.png": _png(), "train/b/0.png":
                                          buffer.getvalue()})
    with pytest.raises(ValueError, match=r"train/b/0.png.*I;16.*8 bits per channel"):
        data.load(source, "train")


def test_splits_of_different_sizes_need_image_size(offline_cache, tmp_path):
    members = {**{f"train/{c}/0.png": _png((8, 8)) for c in "ab"},
               **{f"test/{c}/0.png": _png((12, 12)) for c in "ab"}}
    source = _zip(tmp_path / "sizes.zip", members)
    assert data.load(source, "train").image_shape == (8, 8, 3)
    with pytest.raises(ValueError, match="test images are 12x12.*training images 8x8.*"
                                         "image_size"):
        data.load(source, "test")
    assert data.load(source, "test", image_size=8).image_shape == (8, 8, 3)


@pytest.mark.parametrize("planted", ["floats", "channels first", "labels beyond", "column",
                                     "lengths", "negative"])
def test_a_cache_file_of_other_arrays_is_rebuilt(planted, offline_cache, tmp_path,
                                                 monkeypatch, capsys):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", str(tmp_path / "debian"))
    _debian_fashion_mnist(tmp_path / "debian")
    images, labels = np.zeros((3, 28, 28, 1), np.uint8), np.array([7, 0, 9])
    images, labels = {
        "floats": (images / 255.0, labels), "channels first": (images.reshape(3, 1, 28, 28),
                                                               labels),
        "labels beyond": (images, labels * 10), "column": (images, labels[:, None]),
        "lengths": (images, labels[:2]), "negative": (images, labels - 5)}[planted]
    offline_cache.mkdir(parents=True, exist_ok=True)
    np.savez(offline_cache / "fashion_mnist-test.npz", images=images, labels=labels)
    split = data.load("fashion_mnist", "test")
    assert "does not hold the course's arrays" in capsys.readouterr().out
    assert split.images.shape == (3, 28, 28, 1) and split.images.dtype == np.uint8
    assert sorted(split.labels) == [0, 7, 9]


def test_resizing_does_not_depend_on_what_was_loaded_before(tmp_path, monkeypatch):
    """32-px images asked for at 16 px: resized as decoded, or after, the same pixels."""
    members = {f"train/{c}/{i}.png": _png((32, 32), seed=i + 3 * (c == "b")) for c in "ab"
               for i in range(3)}
    source = _zip(tmp_path / "big.zip", members)
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("COURSE_CACHE", str(first))
    small_first = data.load(source, "train", image_size=16)
    monkeypatch.setenv("COURSE_CACHE", str(second))
    data.load(source, "train")  # caches the 32-px images
    small_after = data.load(source, "train", image_size=16)
    np.testing.assert_array_equal(small_first.images, small_after.images)
    np.testing.assert_array_equal(small_first.images, data.resize(
        data.load(source, "train").images, 16))


def test_batches_index_from_the_end_like_a_list():
    split = _toy_split(count=20, size=8)
    for options in ({}, {"training": True, "crop": 6}, {"device": True}):
        batches = data.batches(split, 6, **options)
        for index in range(-len(batches), 0):
            np.testing.assert_array_equal(batches[index][1],
                                          batches[index + len(batches)][1])
        for index in (len(batches), -len(batches) - 1):
            with pytest.raises(IndexError, match=f"of {len(batches)}"):
                batches[index]


def test_switches_and_epochs_must_be_what_they_say():
    split = _toy_split(count=20, size=8)
    for name in ("training", "flip", "drop_remainder"):
        for value in ("no", 0, 1, None if name != "drop_remainder" else "yes"):
            with pytest.raises(ValueError, match=f"{name} must be True or False"):
                data.batches(split, 4, **{name: value})
    batches = data.batches(split, 4, training=np.bool_(True))
    assert batches.training is True
    for epoch in (-1, 2.5, "3"):
        with pytest.raises(ValueError, match="epoch must be a whole number of at least 0"):
            batches.set_epoch(epoch)
    with pytest.raises(ValueError, match="pca is True .* not 'yes'"):
        data.batches(split, 4, training=True, device=True, crop=6, pca="yes")
    # NumPy's False is no noise (it was kept as the eigen-pair and failed in Augment)
    assert data.batches(split, 4, training=True, device=True, crop=6,
                        pca=np.bool_(False)).layer.pca is None


def test_the_crop_helpers_refuse_crops_that_do_not_fit():
    images = np.zeros((10, 8, 6, 3), np.uint8)
    for size in (7, 0, -2, 2.5):
        with pytest.raises(ValueError, match="does not fit 6x8|size must be a whole number"):
            data.centre_crop(images, size)
    with pytest.raises(ValueError, match="a 12-px crop does not fit 10x12"):
        data.random_crop(images, 12, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="pad must be a whole number of at least 0"):
        data.random_crop(images, 4, -1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="cut from a batch"):
        data.centre_crop(images[0], 4)
    assert data.random_crop(images, 10, 2, np.random.default_rng(0)).shape == (10, 10, 10, 3)


def test_a_path_object_names_a_tree_too(offline_cache, tmp_path):
    root = _write_tree(tmp_path / "photos", size=10)
    assert len(data.load(root, "train")) == 6  # a pathlib.Path
    with pytest.raises(ValueError, match="name is a data set's name or a path"):
        data.load(42, "train")
    with pytest.raises(ValueError, match="no images to resize"):
        data.resize(np.zeros((0, 8, 8, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="chunk must be a whole number"):
        data.resize(np.zeros((2, 8, 8, 3), np.uint8), 4, chunk=0)


def test_images_in_folders_inside_class_folders_are_not_left_out_silently(offline_cache,
                                                                         tmp_path):
    members = {"train/a/0.png": _png(), "train/b/0.png": _png(), "train/b/more/1.png": _png()}
    for source in _both(tmp_path, members):
        with pytest.raises(ValueError, match=r"train/b/more/1.png \(1 in all\).*inside a "
                                             "class folder"):
            data.load(source, "train")
    tiff = io.BytesIO()
    Image.fromarray(np.full((12, 12, 3), 7, np.uint8)).save(tiff, "TIFF")
    source = _zip(tmp_path / "tiff.zip", {"train/a/0.tif": tiff.getvalue(),
                                          "train/b/0.png": _png()})
    assert len(data.load(source, "train")) == 2  # TIFF files are images too
