"""Datasets, offline first, and the input pipeline every notebook trains from.

`load(name, split)` returns a `Split`: uint8 images in memory (resized once, here, never
again per epoch), integer labels, class names and the training split's per-channel mean and
standard deviation. `batches(split, ...)` turns it into a Keras `PyDataset` that shuffles
example by example every epoch, normalises, augments (random crop and horizontal flip, as
the papers did) and prefetches. Nothing here needs TensorFlow except ImageNette, which comes
through tensorflow-datasets, so a GPU machine with only JAX runs the other data sets.

Where data comes from, tried in order:

1. ``COURSE_DATA_DIR``: ``<dir>/<name>-<split>.zip``, ``<dir>/<name>.zip`` or ``<dir>/<name>/``
   holding ``<split>/<class>/<image>`` files. Any such folder or zip also works directly:
   ``load("path/to/my_photos", "train")`` serves your own data.
2. The course cache (``COURSE_CACHE``, default ~/.cache/course_lib), where prepared arrays
   are kept after the first load.
3. Files from Debian packages: ``dataset-fashion-mnist`` in /usr/share/datasets.
4. The normal download (keras.datasets or tensorflow-datasets), unless ``COURSE_OFFLINE=1``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zipfile
from dataclasses import dataclass

import keras
import numpy as np

from course_lib.config import cache_dir

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house
    kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
    mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
    plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
    skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
    telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree
    wolf woman worm""".split()
)
IMAGENETTE_CLASSES = (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)
DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagenette")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclass
class Split:
    """One split of a data set, in memory.

    ``images`` is uint8 (N, H, W, C), ``labels`` int32 (N,). ``mean`` and ``std`` are the
    per-channel statistics of the *training* split, in 0-255 units, used to normalise every
    split the same way. ``source`` says where the pixels came from.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple
    mean: np.ndarray
    std: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.images.shape[1:])

    def take(self, count: int) -> Split:
        """The first `count` examples (a balanced-enough subset: sources are shuffled)."""
        return Split(self.name, self.split, self.images[:count], self.labels[:count],
                     self.class_names, self.mean, self.std, self.source)


class DataNotFoundError(FileNotFoundError):
    """A data set is not on this machine and could not be fetched."""


# --------------------------------------------------------------------------- loading


def load(name: str, split: str = "train", *, image_size: int | None = None,
         limit: int | None = None, seed: int = 0) -> Split:
    """Load a split of a data set into memory, resized once to `image_size` (square).

    `name` is one of `DATASETS` or a path to a folder or zip of ``<split>/<class>/<image>``
    files. `limit` keeps a random but fixed (by `seed`) subset of that many examples, with
    every class kept in proportion; the profiles use it to make small runs.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if name in DATASETS:
        images, labels, classes, source = _load_named(name, split)
    elif os.path.exists(name):
        images, labels, classes = _read_image_tree(name, split)
        source = os.path.abspath(name)
    else:
        raise ValueError(
            f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}, or give the path "
            "of a folder or zip holding <split>/<class>/<image> files"
        )
    mean, std = _train_statistics(name, split, images)
    result = Split(name, split, images, labels.astype("int32"), tuple(classes), mean, std,
                   source)
    if limit is not None and limit < len(result):
        result = _subset(result, limit, seed)
    if image_size is not None and result.images.shape[1:3] != (image_size, image_size):
        result.images = resize(result.images, image_size)
    return result


def _subset(data: Split, count: int, seed: int) -> Split:
    """A stratified random subset: every class keeps its share of the examples."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    # Take examples round-robin over classes so small subsets stay balanced.
    rank = np.zeros(len(data), dtype=np.int64)
    for label in np.unique(data.labels):
        members = order[data.labels[order] == label]
        rank[members] = np.arange(len(members))
    keep = order[np.argsort(rank[order], kind="stable")[:count]]
    keep = keep[rng.permutation(len(keep))]
    return Split(data.name, data.split, data.images[keep], data.labels[keep],
                 data.class_names, data.mean, data.std, data.source)


def _load_named(name: str, split: str):
    looked = []
    from_dir = _from_data_dir(name, split, looked)
    if from_dir is not None:
        return from_dir
    cached = _cache_path(name, split)
    looked.append(cached)
    if os.path.exists(cached):
        with np.load(cached) as archive:
            return archive["images"], archive["labels"], _classes(name), cached
    if name == "fashion_mnist":
        looked.append(DEBIAN_FASHION_MNIST)
        if os.path.isdir(DEBIAN_FASHION_MNIST):
            images, labels = _read_idx_pair(DEBIAN_FASHION_MNIST, split)
            return images, labels, FASHION_MNIST_CLASSES, DEBIAN_FASHION_MNIST
    if os.environ.get("COURSE_OFFLINE") == "1":
        raise DataNotFoundError(_not_found(name, looked, "COURSE_OFFLINE=1 forbids downloads"))
    try:
        images, labels = _download(name, split)
    except Exception as error:  # noqa: BLE001 - any failure means: not available offline
        raise DataNotFoundError(_not_found(name, looked, f"download failed: {error}")) from error
    np.savez(cached, images=images, labels=labels)
    return images, labels, _classes(name), cached


def _classes(name: str) -> tuple:
    return {"fashion_mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES,
            "cifar100": CIFAR100_CLASSES, "imagenette": IMAGENETTE_CLASSES}[name]


def _from_data_dir(name: str, split: str, looked: list):
    folder = os.environ.get("COURSE_DATA_DIR")
    if not folder:
        return None
    for candidate in (f"{name}-{split}.zip", f"{name}.zip", name):
        path = os.path.join(folder, candidate)
        looked.append(path)
        if os.path.exists(path):
            images, labels, classes = _read_image_tree(path, split, cache=True)
            return images, labels, classes, path
    return None


def _cache_path(name: str, split: str) -> str:
    return os.path.join(cache_dir(), f"{name}-{split}.npz")


_GET_IT = {
    "fashion_mnist": "sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu), or run once "
                     "online: python -c \"import course_lib.data as d; d.load('fashion_mnist')\"",
    "cifar10": "run once online: python -c \"import course_lib.data as d; d.load('cifar10')\"  "
               "or set COURSE_DATA_DIR to a folder holding cifar10-train.zip and cifar10-test.zip",
    "cifar100": "run once online: python -c \"import course_lib.data as d; d.load('cifar100')\"",
    "imagenette": "run once online: python -c \"import tensorflow_datasets as tfds; "
                  "tfds.load('imagenette/160px-v2')\"",
}


def _not_found(name: str, looked: list, why: str) -> str:
    places = "\n  ".join(looked) if looked else "(nowhere)"
    return (f"data set {name!r} is not on this machine ({why}).\nLooked in:\n  {places}\n"
            f"To get it: {_GET_IT[name]}")


def _download(name: str, split: str):
    """Fetch through keras.datasets (a few tens of MB) or tensorflow-datasets (ImageNette)."""
    if name == "imagenette":
        return _download_imagenette(split)
    loader = {"fashion_mnist": keras.datasets.fashion_mnist, "cifar10": keras.datasets.cifar10,
              "cifar100": keras.datasets.cifar100}[name]
    train, test = loader.load_data()
    images, labels = train if split == "train" else test
    if images.ndim == 3:
        images = images[..., None]
    return images.astype("uint8"), labels.reshape(-1).astype("int32")


def _download_imagenette(split: str, size: int = 160):
    """ImageNette's 160-px version via tensorflow-datasets, centre-cropped square once."""
    import tensorflow_datasets as tfds

    tfds_split = "train" if split == "train" else "validation"
    dataset = tfds.load("imagenette/160px-v2", split=tfds_split, as_supervised=True)
    images, labels = [], []
    for image, label in tfds.as_numpy(dataset):
        images.append(resize(_centre_square(image)[None], size)[0])
        labels.append(label)
    return np.stack(images), np.array(labels, dtype="int32")


def _centre_square(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top:top + side, left:left + side]


def _read_idx_pair(folder: str, split: str):
    """Read the MNIST-style idx files (gzip) that Fashion-MNIST ships as."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels.astype("int32")


def _read_image_tree(path: str, split: str, cache: bool = False):
    """Read ``<split>/<class>/<image>`` files from a folder or a zip, classes in name order.

    Decoding tens of thousands of JPEGs takes a while, so with `cache` the arrays are kept in
    the course cache, keyed by the path, size and modification time of the source.
    """
    if cache:
        stat = os.stat(path)
        key = hashlib.sha1(f"{os.path.abspath(path)}|{split}|{stat.st_size}|{stat.st_mtime}"
                           .encode()).hexdigest()[:16]
        cached = os.path.join(cache_dir(), f"tree-{key}.npz")
        if os.path.exists(cached):
            with np.load(cached) as archive:
                return archive["images"], archive["labels"], tuple(archive["classes"])
    files = _list_image_tree(path, split)
    if not files:
        raise DataNotFoundError(
            f"{path} holds no images under '{split}/<class>/': expected files like "
            f"{split}/cat/0001.jpg (one folder per class)"
        )
    classes = sorted({cls for cls, _ in files})
    index = {cls: i for i, cls in enumerate(classes)}
    images = np.stack([_decode(blob) for _, blob in _read_blobs(path, files)])
    labels = np.array([index[cls] for cls, _ in files], dtype="int32")
    if cache:
        np.savez(cached, images=images, labels=labels, classes=np.array(classes))
    return images, labels, tuple(classes)


def _list_image_tree(path: str, split: str) -> list[tuple[str, str]]:
    """(class, member) pairs for every image under <split>/<class>/, sorted."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    else:
        names = [os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/")
                 for root, _, found in os.walk(path) for f in found]
    pairs = []
    for member in names:
        parts = member.split("/")
        # Accept an optional top folder: <top>/<split>/<class>/<file>.
        if len(parts) >= 3 and parts[-3] == split and member.lower().endswith(IMAGE_SUFFIXES):
            pairs.append((parts[-2], member))
    return sorted(pairs)


def _read_blobs(path: str, files: list[tuple[str, str]]):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for cls, member in files:
                yield cls, archive.read(member)
    else:
        for cls, member in files:
            with open(os.path.join(path, member), "rb") as f:
                yield cls, f.read()


def _decode(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image.convert("RGB"))


def resize(images: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Resize uint8 images to size x size (bilinear, antialiased), in chunks, once."""
    out = []
    for start in range(0, len(images), chunk):
        batch = keras.ops.convert_to_tensor(images[start:start + chunk].astype("float32"))
        batch = keras.ops.image.resize(batch, (size, size), interpolation="bilinear",
                                       antialias=True)
        out.append(np.clip(np.round(keras.ops.convert_to_numpy(batch)), 0, 255))
    return np.concatenate(out).astype("uint8")


_STATISTICS: dict[str, tuple] = {}


def _train_statistics(name: str, split: str, images: np.ndarray):
    """Per-channel mean and std of the training split (0-255 units), at its stored size.

    The test split is normalised with the training split's numbers; they are computed once
    per data set and process.
    """
    if name not in _STATISTICS:
        if split != "train":
            images = load(name, "train").images
        pixels = images.reshape(-1, images.shape[-1])
        step = max(1, len(pixels) // 5_000_000)  # a few million pixels estimate it well
        sample = pixels[::step].astype("float64")
        _STATISTICS[name] = (sample.mean(0).astype("float32"), sample.std(0).astype("float32"))
    return _STATISTICS[name]


# --------------------------------------------------------------------------- pipeline


class Batches(keras.utils.PyDataset):
    """Shuffled, normalised, augmented batches of a `Split`, for `model.fit`.

    Every epoch visits the examples in a fresh random order (per example, not per batch),
    fixed by (seed, epoch) so that a resumed run sees what an uninterrupted one would.
    Training augmentation is the papers': pad-and-crop or a random crop of `crop` pixels
    (a centre crop at evaluation), and a horizontal flip with probability 0.5.

    Prefetching: on TensorFlow, Keras wraps this in a prefetching tf.data pipeline. On JAX,
    ``workers=2`` or more prepares batches in threads, but then a resumed run is no longer
    guaranteed the exact batch order, so the default stays one synchronous worker.
    """

    def __init__(self, data: Split, batch_size: int = 128, *, training: bool = False,
                 crop: int | None = None, pad: int = 0, flip: bool = True,
                 augment=None, seed: int = 0, drop_remainder: bool | None = None,
                 workers: int = 1, **kwargs):
        super().__init__(workers=workers, **kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        height = data.images.shape[1]
        self.crop = crop or height
        if self.crop > height + 2 * pad:
            raise ValueError(f"crop {self.crop} is larger than the {height}-pixel images "
                             f"(+{pad} padding); resize with load(..., image_size=...)")
        self.data, self.batch_size, self.training = data, batch_size, training
        self.pad, self.flip, self.augment, self.seed = pad, flip, augment, seed
        # Training drops the last, incomplete batch: every step then has one shape (compiled
        # once) and the examples it leaves out change every epoch. Evaluation sees them all.
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        if self.drop_remainder and len(data) < batch_size:
            raise ValueError(f"{len(data)} examples make no whole batch of {batch_size}")
        self.epoch = 0
        self._mean = data.mean.reshape(1, 1, 1, -1)
        self._std = data.std.reshape(1, 1, 1, -1)
        self._order = self._shuffle()

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.data) // self.batch_size
        return math.ceil(len(self.data) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Jump to `epoch`'s order (used when a run resumes from a checkpoint)."""
        self.epoch = epoch
        self._order = self._shuffle()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def _shuffle(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.data))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.data))

    def __getitem__(self, index: int):
        if index >= len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.data.images[rows]
        if self.training:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            images = random_crop(images, self.crop, self.pad, rng)
            if self.flip:
                images = random_flip(images, rng)
        elif self.crop != images.shape[1]:
            images = centre_crop(images, self.crop)
        images = (images.astype("float32") - self._mean) / self._std
        if self.training and self.augment is not None:
            images = self.augment(images, rng)
        return images, self.data.labels[rows]


def batches(data: Split, batch_size: int = 128, *, training: bool = False, **options) -> Batches:
    """`Batches` for `model.fit`/`evaluate`: ``batches(train, 128, training=True, pad=4)``."""
    return Batches(data, batch_size, training=training, **options)


def random_crop(images: np.ndarray, size: int, pad: int, rng) -> np.ndarray:
    """One random size x size window per image, after zero-padding `pad` pixels per side."""
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    room = images.shape[1] - size
    if room == 0:
        return images
    tops = rng.integers(0, room + 1, len(images))
    lefts = rng.integers(0, room + 1, len(images))
    windows = zip(images, tops, lefts, strict=True)
    return np.stack([im[t:t + size, s:s + size] for im, t, s in windows])


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    top = (images.shape[1] - size) // 2
    return images[:, top:top + size, top:top + size]


def random_flip(images: np.ndarray, rng) -> np.ndarray:
    """Mirror each image left-right with probability 0.5."""
    flipped = rng.random(len(images)) < 0.5
    images = images.copy()
    images[flipped] = images[flipped, :, ::-1]
    return images


def denormalize(images: np.ndarray, data: Split) -> np.ndarray:
    """Undo the pipeline's normalisation, back to uint8 pixels for plotting."""
    pixels = images * data.std.reshape(1, 1, 1, -1) + data.mean.reshape(1, 1, 1, -1)
    return np.clip(np.round(pixels), 0, 255).astype("uint8")
