"""Datasets, offline first, and the input pipeline every notebook trains from.

`load(name, split)` returns a `Split`: uint8 images in memory (resized once, here, never
again per epoch), integer labels, class names and the training split's per-channel mean and
standard deviation. Every source comes back in one random order fixed by `seed`, in which
any first n examples hold each class in proportion. `batches(split, ...)` turns it into a
Keras `PyDataset` that shuffles example by example every epoch, normalises, augments (random
crop and horizontal flip, as the papers did) and prefetches. ``batches(..., device=True)``
serves the same order as uint8 images and leaves resizing, cropping, flipping, PCA colour
noise and normalisation to a layer compiled with the training step (`course_lib.augment`),
which keeps a GPU fed and 32-px data sets small in memory. Nothing here needs TensorFlow
except ImageNette, which comes through tensorflow-datasets, so a GPU machine with only JAX
runs the other data sets.

Where data comes from, tried in order:

1. ``COURSE_DATA_DIR``: ``<dir>/<name>-<split>.zip``, ``<dir>/<name>.zip`` or ``<dir>/<name>/``
   holding ``<split>/<class>/<image>`` files. Any such folder or zip also works directly:
   ``load("path/to/my_photos", "train")`` serves your own data.
2. The course cache (``COURSE_CACHE``, default ~/.cache/course_lib), where prepared arrays
   are kept after the first load.
3. Files from Debian packages: ``dataset-fashion-mnist`` in /usr/share/datasets.
4. The normal download (keras.datasets or tensorflow-datasets), unless ``COURSE_OFFLINE`` is
   on (1, true, yes or on).

In a folder or zip, the class list is the training split's class folders, in name order, and
labels every split. Images are turned upright (EXIF orientation) and read as RGB (grayscale
too); ``__MACOSX/`` and names starting with '.' are skipped. Images of several sizes, or
larger than `image_size`, are resized to it (squashed to a square) as they are decoded;
without `image_size` they must share one size.

Reliability: every argument and environment variable is checked, and an image file that
cannot be read is named. Refused, each with an error that says what to do: an empty
training class folder, a test class the training split lacks, a zip holding the tree twice,
images of several sizes without `image_size`, a crop larger than the (resized, padded)
images, a NumPy `augment` function on the device path and PCA colour noise on images
without colour. Cache files are written atomically, rebuilt when they cannot be read, and
an unwritable cache only means no caching (with a warning).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import math
import os
import pathlib
import socket
import warnings
import zipfile
from dataclasses import dataclass

import keras
import numpy as np

from course_lib.augment import Augment, colour_pca
from course_lib.config import cache_dir, flag, offline, whole_file, whole_number

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
IMAGENETTE = "imagenette/160px-v2"  # tensorflow-datasets' name
IMAGENETTE_HOST = "s3.amazonaws.com"  # where tensorflow-datasets downloads it from
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


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
        """The first `count` examples (all of them if there are fewer).

        `load` orders examples so that any first n hold each class in proportion, so this is
        a balanced subset: ``load(..., limit=n)`` is ``load(...).take(n)``.
        """
        count = whole_number("count", count)
        return dataclasses.replace(self, images=self.images[:count], labels=self.labels[:count])


class DataNotFoundError(FileNotFoundError):
    """A data set is not on this machine and could not be fetched."""


# --------------------------------------------------------------------------- loading


def load(name: str, split: str = "train", *, image_size: int | None = None,
         limit: int | None = None, seed: int = 0) -> Split:
    """Load a split of a data set into memory, resized once to `image_size` (square).

    `name` is one of `DATASETS` or a path to a folder or zip of ``<split>/<class>/<image>``
    files. The examples come in one random order fixed by `seed`, whatever `limit` is, in
    which any first n hold each class in proportion. `limit` keeps the first `limit` of them
    (all of them if there are fewer), so ``load(..., limit=n)`` is ``load(...).take(n)``; the
    profiles use it to make small runs. `image_size` and `limit` are whole numbers >= 1,
    `seed` one >= 0.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise ValueError(f"name is a data set's name or a path, not {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if image_size is not None:
        image_size = whole_number("image_size", image_size)
    if limit is not None:
        limit = whole_number("limit", limit)
    seed = whole_number("seed", seed, minimum=0)  # None would mean a new order every time
    images, labels, classes, source = _read(name, split, image_size)
    mean, std, train_shape = _train_statistics(name, split, images, image_size)
    if image_size is None and images.shape[1:] != train_shape:
        raise ValueError(
            f"{name}: the {split} images are {_size(images[0])} with {images.shape[-1]} "
            f"channel(s) but the training images {train_shape[1]}x{train_shape[0]} with "
            f"{train_shape[-1]}: pass image_size=... to load() for both splits")
    keep = _stratified_order(labels, seed)[:limit]
    images, labels = images[keep], labels[keep].astype("int32")
    if image_size is not None and images.shape[1:3] != (image_size, image_size):
        images = resize(images, image_size)
    return Split(name, split, images, labels, tuple(classes), mean, std, source)


def first_available(*names: str) -> str:
    """The first of `names` whose training split `load` can read here (this machine has it,
    or may and can download it), with a line for each one before it saying why not:
    ``first_available("imagenette", "cifar10")``. Whatever it loaded is in the course cache
    for the `load` that follows. None of them: a `DataNotFoundError` giving every reason."""
    if not names:
        raise ValueError("first_available needs at least one data set name")
    reasons = []
    for name in names:
        try:
            load(name, "train", limit=1)
        except DataNotFoundError as error:
            reasons.append(f"{name}: {error}")
            continue
        for skipped, reason in zip(names[:len(reasons)], reasons, strict=True):
            why = reason.splitlines()[0].removeprefix(f"{skipped}: ")
            print(f"Using {name}: {why}")  # why each one before it was passed over
        return name
    raise DataNotFoundError("none of the data sets is available:\n" + "\n".join(reasons))


def _stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A random order, fixed by `seed`, in which any first n examples hold each class in
    proportion (to within an example or two; exactly, give or take one, when classes are
    equal in size).

    Each class is shuffled and its k-th of n examples gets the key (k + u) / n, u uniform in
    [0, 1): sorting by key interleaves the classes at their rates, in a random order.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    by_class = np.lexsort((rng.random(len(labels)), labels))  # grouped, shuffled within
    rank = np.empty(len(labels))
    rank[by_class] = np.arange(len(labels)) - (np.cumsum(counts) - counts)[labels[by_class]]
    return np.argsort((rank + rng.random(len(labels))) / counts[labels], kind="stable")


def _read(name: str, split: str, image_size: int | None):
    """(images, labels, class names, source) of one split, in the order it is stored."""
    if name in DATASETS:
        return _read_named(name, split, image_size)
    path = os.path.expanduser(name)
    if os.path.exists(path) or "/" in name or os.sep in name or name.lower().endswith(".zip"):
        images, labels, classes = _read_image_tree(path, split, image_size, train_path=path)
        return images, labels, classes, os.path.abspath(path)
    raise ValueError(
        f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}, or give the path "
        "of a folder or zip holding <split>/<class>/<image> files"
    )


def _read_named(name: str, split: str, image_size: int | None):
    """One of `DATASETS`: from COURSE_DATA_DIR, the cache, Debian's files or a download."""
    looked = []
    path = _in_data_dir(name, split, looked)
    if path is not None:
        train_path = _in_data_dir(name, "train", [])
        if train_path is None:
            raise DataNotFoundError(
                f"COURSE_DATA_DIR holds {path} but not {name}'s training split, whose class "
                f"folders label every split: add {name}-train.zip"
            )
        return (*_read_image_tree(path, split, image_size, train_path), path)
    train_path = _in_data_dir(name, "train", [])
    if train_path is not None:  # the other split must not come from another source
        raise DataNotFoundError(
            f"COURSE_DATA_DIR holds {train_path} but not {name}'s {split} split (looked for "
            f"{', '.join(looked)}): add {name}-{split}.zip, or unset COURSE_DATA_DIR")
    cached = _cache_path(name, split)
    looked.append(cached)
    arrays = _checked(_read_cache(cached, ("images", "labels")), len(_classes(name)), cached)
    if arrays is not None:
        return (*arrays, _classes(name), cached)
    if name == "fashion_mnist":
        looked.append(DEBIAN_FASHION_MNIST)
        if os.path.isdir(DEBIAN_FASHION_MNIST):
            images, labels = _read_idx_pair(DEBIAN_FASHION_MNIST, split)
            return images, labels, FASHION_MNIST_CLASSES, DEBIAN_FASHION_MNIST
    if offline():
        why = f"COURSE_OFFLINE={os.environ['COURSE_OFFLINE']} forbids downloads"
        raise DataNotFoundError(_not_found(name, looked, why))
    try:
        images, labels = _download(name, split)
    except Exception as error:  # noqa: BLE001 - any failure means: not available offline
        raise DataNotFoundError(_not_found(name, looked, f"download failed: {error}")) from error
    _save_cache(cached, images=images, labels=labels)
    return images, labels, _classes(name), cached


def _classes(name: str) -> tuple:
    return {"fashion_mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES,
            "cifar100": CIFAR100_CLASSES, "imagenette": IMAGENETTE_CLASSES}[name]


def _in_data_dir(name: str, split: str, looked: list) -> str | None:
    """The first of <name>-<split>.zip, <name>.zip and <name>/ in COURSE_DATA_DIR, if any."""
    folder = os.path.expanduser(os.environ.get("COURSE_DATA_DIR", ""))
    if not folder:
        return None
    if not os.path.isdir(folder):
        found = "a file" if os.path.exists(folder) else "missing"
        raise ValueError(f"COURSE_DATA_DIR={folder} must be a folder (of <name>-<split>.zip, "
                         f"<name>.zip or <name>/), but it is {found}")
    for candidate in (f"{name}-{split}.zip", f"{name}.zip", name):
        path = os.path.join(folder, candidate)
        looked.append(path)
        if os.path.exists(path):
            return path
    return None


def _train_source(name: str) -> str:
    """What a data set's training split is read from: its folder or zip, with a fingerprint of
    its files' sizes and times (changed files are other data) or, for a built-in data set
    served from the cache, Debian's files or a download (the same data), its name."""
    path = _in_data_dir(name, "train", []) if name in DATASETS else os.path.expanduser(name)
    if path is None:
        return name
    stamp = hashlib.sha1(repr(_stamp(path)).encode()).hexdigest()[:16]
    return f"{os.path.abspath(path)}@{stamp}"


def _cache_path(name: str, split: str) -> str:
    return os.path.join(cache_dir(), f"{name}-{split}.npz")


def _read_cache(path: str, keys: tuple) -> tuple | None:
    """The arrays `keys` of a cache file, or None when it is missing or cannot be read.

    An unreadable one (cut short by a killed process, say) is removed, with one printed line,
    and the caller rebuilds it from its source.
    """
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as archive:
            return tuple(archive[key] for key in keys)
    except Exception as error:  # noqa: BLE001 - whatever is wrong with it, rebuild it
        print(f"The cache file {path} cannot be read ({error}); rebuilding it from its source.")
        with contextlib.suppress(OSError):
            os.remove(path)
        return None


def _checked(arrays, classes: int, path: str) -> tuple | None:
    """`arrays` (images, labels) read from the cache file `path` if they are what the course
    writes (uint8 images (n, height, width, channels), n labels from 0 to `classes` - 1);
    else None, with the file removed and a line saying why, so that it is rebuilt."""
    if arrays is None:
        return None
    images, labels = arrays
    good = (images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] in (1, 3)
            and labels.ndim == 1 and len(labels) == len(images) and len(images) > 0
            and np.issubdtype(labels.dtype, np.integer)
            and 0 <= labels.min() and labels.max() < classes)
    if good:
        return images, labels.astype("int32")
    print(f"The cache file {path} does not hold the course's arrays (images {images.dtype} "
          f"{images.shape}, labels {labels.dtype} {labels.shape}, {classes} classes); "
          "rebuilding it from its source.")
    with contextlib.suppress(OSError):
        os.remove(path)
    return None


def _save_cache(path: str, **arrays) -> None:
    """Write `arrays` to a cache file whole (`config.whole_file`). A cache that cannot be
    written (read-only, full, COURSE_CACHE not a folder) is warned about and skipped."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with whole_file(path) as temporary, open(temporary, "wb") as file:
            np.savez(file, **arrays)
    except OSError as error:
        warnings.warn(f"cannot write to the course cache {os.path.dirname(path)} "
                      f"({error.strerror or error}): carrying on without caching. Set "
                      "COURSE_CACHE to a writable folder to keep prepared data.", stacklevel=2)


_GET_IT = {
    "fashion_mnist": "sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu), or run once "
                     "online: python -c \"import course_lib.data as d; d.load('fashion_mnist')\"",
    "cifar10": "run once online: python -c \"import course_lib.data as d; d.load('cifar10')\"  "
               "or set COURSE_DATA_DIR to a folder holding cifar10-train.zip and cifar10-test.zip",
    "cifar100": "run once online: python -c \"import course_lib.data as d; d.load('cifar100')\"",
    "imagenette": "run once online: python -c \"import course_lib.data as d; "
                  "d.load('imagenette')\"",
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
    """ImageNette's 160-px version via tensorflow-datasets, centre-cropped square once.
    Before a download, its server must answer: without a network tensorflow-datasets
    retries for minutes before it gives up."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(IMAGENETTE)
    if not builder.is_prepared():
        _check_reachable(IMAGENETTE_HOST)
        builder.download_and_prepare()
    tfds_split = "train" if split == "train" else "validation"
    dataset = builder.as_dataset(split=tfds_split, as_supervised=True)
    images, labels = [], []
    for image, label in tfds.as_numpy(dataset):
        images.append(resize(centre_square(image)[None], size)[0])
        labels.append(label)
    return np.stack(images), np.array(labels, dtype="int32")


def _check_reachable(host: str, port: int = 443, seconds: float = 10.0) -> None:
    """Raise OSError, saying so, when `host` does not answer within `seconds`."""
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as error:
        raise OSError(f"cannot reach {host} ({error}); is this machine online?") from error


def centre_square(image: np.ndarray) -> np.ndarray:
    """The largest square at the centre of one (H, W, C) image."""
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


def _read_image_tree(path: str, split: str, image_size: int | None, train_path: str):
    """Read ``<split>/<class>/<image>`` files from a folder or zip, labelled by the class
    folders of the training split at `train_path` (the same tree, or its own zip).

    Decoding tens of thousands of images takes a while, so the arrays are kept in the course
    cache, keyed by the source (and its files' sizes and times), split, classes and size.
    """
    classes = _class_folders(train_path)
    cache_files = _tree_cache_files(path, split, classes, image_size)
    for cached in cache_files.values():  # at the images' own size, else at image_size
        arrays = _checked(_read_cache(cached, ("images", "labels")), len(classes), cached)
        if arrays is not None:
            return (*arrays, classes)
    root, tree = _split_tree(path, split)
    unknown = [f"{root}{split}/{cls}/" for cls in sorted(set(tree) - set(classes))]
    if unknown:
        raise ValueError(f"{path}: no training class folder for {', '.join(unknown)}; the "
                         f"training split's class folders are the class list: {', '.join(classes)}")
    members = [(label, member) for label, cls in enumerate(classes)
               for member in sorted(tree.get(cls, []))]
    if not members:
        raise DataNotFoundError(_no_images(path, split))
    images, resized = _decode_all(path, [member for _, member in members], image_size)
    labels = np.array([label for label, _ in members], dtype="int32")
    _save_cache(cache_files[image_size if resized else None], images=images, labels=labels)
    return images, labels, classes


def _no_images(path: str, split: str) -> str:
    return (f"{path} holds no images under '{split}/<class>/': expected files like "
            f"{split}/cat/0001.jpg (one folder per class; images ending in "
            f"{', '.join(IMAGE_SUFFIXES)})")


def _class_folders(train_path: str) -> tuple:
    """The training split's class folders, in name order: the class list of every split.

    An empty one is an error: its class could not be learned, and zips often leave empty
    folders out, so keeping it would make the class list depend on how the zip was made.
    """
    root, tree = _split_tree(train_path, "train")
    if not tree:
        raise DataNotFoundError(_no_images(train_path, "train"))
    empty = [f"{root}train/{cls}/" for cls, members in sorted(tree.items()) if not members]
    if empty:
        raise ValueError(f"{train_path}: the training class folder {', '.join(empty)} holds "
                         "no images; the training split's class folders are the class list, "
                         "so add images to it or remove it")
    return tuple(sorted(tree))


def _split_tree(path: str, split: str) -> tuple[str, dict]:
    """(root, {class: [image members]}) of the one ``<root><split>/`` tree in a folder or zip,
    empty class folders included. Names under ``__MACOSX/`` or starting with '.' are skipped.
    A tree found under two roots (``a/train/`` and ``train/``) is an error naming both."""
    roots, tree, deeper = set(), {}, []
    for name in _names(path):
        parts = [part for part in name.rstrip("/").split("/") if part != "."]  # ./train/...
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        if name.endswith("/") and len(parts) >= 2 and parts[-2] == split:  # a class folder
            top, cls, member = parts[:-2], parts[-1], None
        elif len(parts) >= 3 and parts[-3] == split and name.lower().endswith(IMAGE_SUFFIXES):
            top, cls, member = parts[:-3], parts[-2], name
        else:
            if split in parts[:-3] and name.lower().endswith(IMAGE_SUFFIXES):
                deeper.append(name)  # train/cat/more/0001.jpg: it would be left out
            continue
        roots.add("".join(f"{part}/" for part in top))
        members = tree.setdefault(cls, [])
        if member:
            members.append(member)
    if deeper:
        raise ValueError(f"{path}: images must lie directly in {split}/<class>/, but "
                         f"{deeper[0]} ({len(deeper)} in all) is in a folder inside a class "
                         "folder: move them up, or they would be left out")
    if len(roots) > 1:
        shown = ", ".join(sorted(root or "the top level" for root in roots))
        raise ValueError(f"{path} holds more than one tree of '{split}/<class>/' files, under "
                         f"{shown}: remove all but one of them")
    return (roots.pop() if roots else ""), tree


def _names(path: str) -> list[str]:
    """Every file and folder in a zip or under a folder, '/'-separated; folders end in '/'."""
    if not os.path.exists(path):
        raise DataNotFoundError(f"no such file or folder: {path}")
    if os.path.isfile(path):
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a zip: give a folder or a zip of "
                             "<split>/<class>/<image> files")
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    names = []
    for folder, subfolders, files in os.walk(path, followlinks=True):
        prefix = os.path.relpath(folder, path).replace(os.sep, "/") + "/"
        prefix = "" if prefix == "./" else prefix
        names += [f"{prefix}{sub}/" for sub in subfolders] + [prefix + f for f in files]
    return names


def _tree_cache_files(path: str, split: str, classes: tuple, image_size: int | None) -> dict:
    """{size: cache file} for a split kept at its images' own size (None) or resized to
    `image_size`. The names hash the source and its files' sizes and times: any change to
    the tree's files changes them."""
    stamp = _stamp(path)
    names = {}
    for size in (None, image_size):
        source = (os.path.abspath(path), split, classes, size, stamp)
        digest = hashlib.sha1(repr(source).encode()).hexdigest()[:16]
        names[size] = os.path.join(cache_dir(), f"tree-{digest}.npz")
    return names


def _stamp(path: str) -> list:
    """The files of a zip or folder with their sizes and times: what changes when they do."""
    if os.path.isfile(path):
        files = [path]
    else:
        files = [os.path.join(folder, f)
                 for folder, _, found in os.walk(path, followlinks=True) for f in found]
    return sorted((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files)


def _decode_all(path: str, members: list[str], image_size: int | None):
    """Decode `members` of a folder or zip into one uint8 array, naming any file that fails.

    Images that share one size, no larger than `image_size`, keep it (`load` resizes them
    after `limit`: fewer to resize). Larger ones of one size are resized with `resize`, as
    `load` would resize them, a chunk at a time, which keeps big photos from filling the
    memory; images of several sizes, given `image_size`, each as it is decoded (`_square`).
    Returns the array and whether it was resized.
    """
    images, waiting, mixed, first, big = [], [], False, None, False
    with _reader(path) as read:
        for member in members:
            try:
                image = _decode(read(member))
            except Exception as error:  # noqa: BLE001 - whatever failed, say which file
                raise ValueError(f"cannot read the image {member} in {path}: {error}") from error
            if first is None:  # images larger than image_size are resized in chunks
                first = image
                big = image_size is not None and max(first.shape[:2]) > image_size
            if image.shape != first.shape and not mixed:
                if image_size is None:
                    raise ValueError(
                        f"{path}: images differ in size: {members[0]} is {_size(first)} but "
                        f"{member} is {_size(image)}; pass image_size=... to load() to resize "
                        "each image as it is read")
                mixed = True  # from here on, and those before
                images = [_square(earlier, image_size) for earlier in images + waiting]
                waiting = []
            if mixed:
                images.append(_square(image, image_size))
            elif big:
                waiting.append(image)
                if len(waiting) == RESIZE_CHUNK:
                    images += list(resize(np.stack(waiting), image_size))
                    waiting = []
            else:
                images.append(image)
    if waiting:
        images += list(resize(np.stack(waiting), image_size))
    return np.stack(images), mixed or big


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"  # width x height, as image viewers say


@contextlib.contextmanager
def _reader(path: str):
    """A function that reads one member's bytes from a zip or a folder."""
    if os.path.isfile(path):
        with zipfile.ZipFile(path) as archive:
            yield archive.read
    else:
        yield lambda member: pathlib.Path(path, member).read_bytes()


def _decode(blob: bytes) -> np.ndarray:
    """One image as uint8 RGB (grayscale too), turned upright by its EXIF orientation."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(blob)) as image:
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            raise ValueError(f"it has {image.mode} pixels (16-bit or floating point), which "
                             "would be clipped to white: save it with 8 bits per channel")
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """One image resized to size x size: bilinear, antialiased when shrinking, like `resize`."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


RESIZE_CHUNK = 2048  # images resized at once: 2,048 of 256 px take 400 MB as float32


def resize(images: np.ndarray, size: int, chunk: int = RESIZE_CHUNK) -> np.ndarray:
    """Resize uint8 images to size x size (bilinear, antialiased), in chunks, once."""
    size = whole_number("size", size)
    chunk = whole_number("chunk", chunk)
    if len(images) == 0:
        raise ValueError("there are no images to resize")
    out = []
    for start in range(0, len(images), chunk):
        batch = keras.ops.convert_to_tensor(images[start:start + chunk].astype("float32"))
        batch = keras.ops.image.resize(batch, (size, size), interpolation="bilinear",
                                       antialias=True)
        out.append(np.clip(np.round(keras.ops.convert_to_numpy(batch)), 0, 255))
    return np.concatenate(out).astype("uint8")


_STATISTICS: dict[tuple, tuple] = {}
MIN_STD = 1.0  # one grey level: a channel that never varies would otherwise divide by zero


def _train_statistics(name: str, split: str, images: np.ndarray, image_size: int | None):
    """Per-channel mean and std of the training split (0-255 units), at the size it is read,
    and the shape of its images.

    The test split is normalised with the training split's numbers. They are computed once
    per process for each training source (folder or zip and its files' sizes and times, or
    built-in data set; never just a name) and image size. The std is at least `MIN_STD`: a
    channel that never varies (an all-black one) then normalises to pixel minus mean, not
    NaN.
    """
    key = (_train_source(name), image_size)
    if key not in _STATISTICS:
        if split != "train":
            images = _read(name, "train", image_size)[0]
        pixels = images.reshape(-1, images.shape[-1])
        step = max(1, len(pixels) // 5_000_000)  # a few million pixels estimate it well
        sample = pixels[::step].astype("float64")
        std = np.maximum(sample.std(0), MIN_STD)
        _STATISTICS[key] = (sample.mean(0).astype("float32"), std.astype("float32"),
                            images.shape[1:])
    return _STATISTICS[key]


# --------------------------------------------------------------------------- pipeline


class Batches(keras.utils.PyDataset):
    """Shuffled, normalised, augmented batches of a `Split`, for `course_lib.train.fit`.

    Every epoch visits the examples in a fresh random order (per example, not per batch),
    fixed by (seed, epoch) so that a resumed run sees what an uninterrupted one would.
    Training augmentation is the papers': pad-and-crop or a random crop of `crop` pixels
    (a centre crop at evaluation, without padding), and a horizontal flip with probability
    0.5. `crop` defaults to the images' shorter side; `batch_size` and `crop` are whole
    numbers >= 1, `pad` >= 0, and the crop must fit the (padded, in training) images.

    Keras' own ``model.fit`` takes them too, but pass it ``shuffle=False`` (its default
    reorders the batches with Python's `random`) and expect it to read ahead: it calls
    `on_epoch_end` once before training, so its epochs run one order later than
    `train.fit`'s, which sets each epoch's order itself (`set_epoch`).

    Prefetching: on TensorFlow, Keras wraps this in a prefetching tf.data pipeline. On JAX,
    ``workers=2`` or more prepares batches in threads, but then a resumed run is no longer
    guaranteed the exact batch order, so the default stays one synchronous worker.
    """

    def __init__(self, data: Split, batch_size: int = 128, *, training: bool = False,
                 crop: int | None = None, pad: int = 0, flip: bool = True,
                 augment=None, seed: int = 0, drop_remainder: bool | None = None,
                 workers: int = 1, **kwargs):
        super().__init__(workers=workers, **kwargs)
        training, flip = flag("training", training), flag("flip", flip)
        if drop_remainder is not None:
            drop_remainder = flag("drop_remainder", drop_remainder)
        batch_size = whole_number("batch_size", batch_size)
        pad = whole_number("pad", pad, minimum=0)
        height, width = self._sides(data)
        self.crop = min(height, width) if crop is None else whole_number("crop", crop)
        room = min(height, width) + (2 * pad if training else 0)
        if self.crop > room:
            padding = f"+{pad} padding" if training else "evaluation does not pad"
            raise ValueError(f"crop {self.crop} is larger than the {width}x{height} images "
                             f"({padding}); {self._larger}")
        self.data, self.batch_size, self.training = data, batch_size, training
        self.pad, self.flip, self.augment = pad, flip, augment
        self.seed = whole_number("seed", seed, minimum=0)
        # Training drops the last, incomplete batch: every step then has one shape (compiled
        # once) and the examples it leaves out change every epoch. Evaluation sees them all.
        self.drop_remainder = training if drop_remainder is None else drop_remainder
        if self.drop_remainder and len(data) < batch_size:
            raise ValueError(f"{len(data)} examples make no whole batch of {batch_size}")
        self.epoch = 0
        self._mean = data.mean.reshape(1, 1, 1, -1)
        self._std = data.std.reshape(1, 1, 1, -1)
        self._order = self._shuffle()

    _larger = "resize with load(..., image_size=...)"  # what to do when crop is too large

    def _sides(self, data: Split) -> tuple[int, int]:
        """(height, width) of the images that crops are cut from."""
        return data.images.shape[1:3]

    def __len__(self) -> int:
        if self.drop_remainder:
            return len(self.data) // self.batch_size
        return math.ceil(len(self.data) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Jump to `epoch`'s order (used when a run resumes from a checkpoint)."""
        self.epoch = whole_number("epoch", epoch, minimum=0)
        self._order = self._shuffle()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def _shuffle(self) -> np.ndarray:
        if not self.training:
            return np.arange(len(self.data))
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.data))

    def _rows(self, index: int) -> tuple[int, np.ndarray]:
        """The examples of batch `index` (from the end when negative, as for a list)."""
        index = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        return index, self._order[index * self.batch_size:(index + 1) * self.batch_size]

    def __getitem__(self, index: int):
        index, rows = self._rows(index)
        images = self.data.images[rows]
        if self.training:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            images = random_crop(images, self.crop, self.pad, rng)
            if self.flip:
                images = random_flip(images, rng)
        elif images.shape[1:3] != (self.crop, self.crop):
            images = centre_crop(images, self.crop)
        images = (images.astype("float32") - self._mean) / self._std
        if self.training and self.augment is not None:
            images = self.augment(images, rng)
        return images, self.data.labels[rows]


class DeviceBatches(Batches):
    """uint8 batches of a `Split` as stored, in `Batches`' order, to be augmented on the
    device by `layer`, an `augment.Augment` that `course_lib.train.fit` puts in front of
    the model.

    The order is `Batches`' (per example, fixed by seed and epoch); `crop`, `pad` and `flip`
    mean what they mean there, `resize` is the side images are resized to before cropping
    (None: as stored) and `pca` adds AlexNet's colour noise in training (True: with the
    eigenvectors of this split, `augment.colour_pca`; or give (eigenvalues, eigenvectors)).

    Memory: on JAX the whole uint8 split is copied to the device once (`device_bytes`:
    CIFAR-10's 50,000 training images at 32 px take 153.6 MB) and each batch is gathered
    there; on TensorFlow it stays in host memory and uint8 batches go to the device through
    tf.data's prefetching (a batch of 128 at 32 px is 393 kB, a quarter of float32's).
    """

    _larger = "resize them on the device with resize=..."

    def __init__(self, data: Split, batch_size: int = 128, *, training: bool = False,
                 crop: int | None = None, resize: int | None = None, pad: int = 0,
                 flip: bool = True, pca=False, seed: int = 0, **options):
        if "augment" in options:
            raise ValueError("augment= takes a NumPy function, for the NumPy path; on the "
                             "device, pca=True adds the paper's colour noise")
        self.resize = None if resize is None else whole_number("resize", resize)
        super().__init__(data, batch_size, training=training, crop=crop, pad=pad, flip=flip,
                         seed=seed, **options)
        if isinstance(pca, (bool, np.bool_)):  # NumPy's False too: no noise
            pca = colour_pca(data.images, data.mean, data.std) if pca and training else None
        elif not (pca is None or isinstance(pca, (tuple, list))):
            raise ValueError("pca is True (the split's own colour PCA), False, or "
                             f"(eigenvalues, eigenvectors) from augment.colour_pca, not {pca!r}")
        self.pca = pca
        self.layer = Augment(self.crop, resize=self.resize, pad=self.pad, flip=self.flip,
                             mean=data.mean, std=data.std, pca=self.pca, seed=self.seed)
        self.resident = keras.backend.backend() == "jax"
        self._images = keras.ops.convert_to_tensor(data.images) if self.resident else None
        self.device_bytes = data.images.nbytes if self.resident else 0

    def _sides(self, data: Split) -> tuple[int, int]:
        return (self.resize, self.resize) if self.resize else data.images.shape[1:3]

    def __getitem__(self, index: int):
        _, rows = self._rows(index)
        if self.resident:
            images = keras.ops.take(self._images, keras.ops.convert_to_tensor(rows), axis=0)
        else:
            images = self.data.images[rows]
        return images, self.data.labels[rows]


def batches(data: Split, batch_size: int = 128, *, training: bool = False,
            device: bool = False, **options) -> Batches:
    """`Batches` for `model.fit`/`evaluate`: ``batches(train, 128, training=True, pad=4)``.

    With ``device=True``, `DeviceBatches`: uint8 images whose augmentation runs on the
    device, in the layer `course_lib.train.fit` puts in front of the model:
    ``batches(train, 128, training=True, device=True, resize=256, crop=227, pca=True)``.
    """
    if device:
        return DeviceBatches(data, batch_size, training=training, **options)
    return Batches(data, batch_size, training=training, **options)


def random_crop(images: np.ndarray, size: int, pad: int, rng) -> np.ndarray:
    """One random size x size window per image, after zero-padding `pad` pixels per side."""
    check_crop(images, size, whole_number("pad", pad, minimum=0))
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rooms = np.array(images.shape[1:3]) - size
    if not rooms.any():
        return images
    tops = rng.integers(0, rooms[0] + 1, len(images))
    lefts = rng.integers(0, rooms[1] + 1, len(images))
    windows = zip(images, tops, lefts, strict=True)
    return np.stack([im[t:t + size, s:s + size] for im, t, s in windows])


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of each image."""
    check_crop(images, size)
    top, left = (images.shape[1] - size) // 2, (images.shape[2] - size) // 2
    return images[:, top:top + size, left:left + size]


def check_crop(images: np.ndarray, size: int, pad: int = 0) -> None:
    """Refuse a crop that is not a whole number of pixels, or larger than the (padded)
    images of a batch (batch, height, width, channels)."""
    if np.ndim(images) != 4:
        raise ValueError(f"crops are cut from a batch (batch, height, width, channels), not "
                         f"an array of shape {np.shape(images)}")
    height, width = images.shape[1] + 2 * pad, images.shape[2] + 2 * pad
    if whole_number("size", size) > min(height, width):
        raise ValueError(f"a {size}-px crop does not fit {width}x{height} images")


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
