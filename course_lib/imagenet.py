"""ImageNet metadata, offline first: WordNet synsets, the 1000 ILSVRC-2012 classes, demo photos.

ImageNet names every class by a WordNet 3.0 noun synset, written as a *wnid*: the letter
``n`` and the synset's 8-digit offset in WordNet's ``data.noun`` file (``n02084071`` is
dog.n.01). This module turns wnids into NLTK synsets and back, lists the 1000 classes of
the ILSVRC-2012 challenge in the order that every pretrained Keras model uses, and loads a
few photos that ship with scikit-image, so that the course's first notebooks need no
network at all.

WordNet itself is looked for in three places, in order: NLTK's own data folders, Debian's
``wordnet-base`` package (``/usr/share/wordnet``), and finally a one-off download by NLTK
into the course cache.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import warnings
from typing import TYPE_CHECKING

import numpy as np

from course_lib.config import cache_dir, offline, whole_file

if TYPE_CHECKING:
    from nltk.corpus.reader.wordnet import Synset, WordNetCorpusReader

# Where Debian's wordnet-base puts the WordNet 3.0 database; WNSEARCHDIR is WordNet's own
# variable for the folder that holds the database (see lexnames(5WN)).
DEBIAN_WORDNET_DIRS = tuple(d for d in (os.environ.get("WNSEARCHDIR"), "/usr/share/wordnet") if d)

# The database files NLTK reads. Debian ships all of them except `lexnames` (which we write
# below) and `index.sense` (which NLTK only needs to map other WordNet versions onto 3.0).
WORDNET_FILES = (
    "data.noun", "data.verb", "data.adj", "data.adv",
    "index.noun", "index.verb", "index.adj", "index.adv",
    "noun.exc", "verb.exc", "adj.exc", "adv.exc",
    "cntlist.rev",
)  # fmt: skip

# The 45 lexicographer files of WordNet 3.0, numbered 00-44 in this order, with their
# syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb). From lexnames(5WN), the
# manual page that ships with wordnet-base; NLTK needs them as a file named `lexnames`.
LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1),
    ("noun.act", 1), ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1),
    ("noun.body", 1), ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1),
    ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2),
    ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)  # fmt: skip

# The class list that tensorflow-datasets ships (sorted wnids: the order of the ILSVRC-2012
# devkit and of every Keras ImageNet model). Older releases kept it in the second place.
TFDS_LABEL_FILES = (
    "datasets/imagenet2012/labels.txt",
    "image_classification/imagenet2012_labels.txt",
)
TFDS_VALIDATION_FILES = (
    "datasets/imagenet2012/validation_labels.txt",
    "image_classification/imagenet2012_validation_labels.txt",
)

# Photos bundled inside scikit-image's package (so no download), all RGB uint8.
PHOTOS = {
    "chelsea": "Chelsea the cat",
    "coffee": "a cup of coffee on a saucer",
    "astronaut": "the astronaut Eileen Collins",
    "rocket": "a SpaceX Falcon 9 rocket at launch",
}

_WNID = re.compile(r"n\d{8}")

FIX_WORDNET = (
    "Install WordNet 3.0 in one of these two ways, then restart Python:\n"
    "    sudo apt-get install wordnet-base      # Debian/Ubuntu, no Python download\n"
    "    python -m nltk.downloader wordnet      # anywhere, into ~/nltk_data"
)


def _require_nltk():
    try:
        import nltk
    except ImportError as error:  # nltk is in requirements.txt, not in course_lib's deps
        raise ImportError("WordNet needs NLTK: pip install nltk") from error
    return nltk


def _reader(root) -> WordNetCorpusReader:
    """Build an NLTK WordNet reader on `root` without the multilingual (OMW) extras.

    NLTK 3.10 maps every WordNet it opens onto its "wordnet" corpus through `index.sense`,
    a file Debian does not ship; that map only serves the Open Multilingual Wordnet, which
    the course does not use, so this reader skips it (and loads faster).
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNetReader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    with warnings.catch_warnings():  # "multilingual functions are not available"
        warnings.simplefilter("ignore", UserWarning)
        return EnglishWordNetReader(root, None)


def _add_data_path(nltk, folder: str) -> None:
    """NLTK 3.10 only opens corpora under a folder on `nltk.data.path`; register ours."""
    if folder not in nltk.data.path:
        nltk.data.path.append(folder)


def _find_corpus(nltk):
    """NLTK's path to corpora/wordnet (a folder, or inside wordnet.zip), or None."""
    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            return nltk.data.find(resource)
        except LookupError:
            pass
    return None


def _assemble_from_debian(debian_dir: str, nltk_data: str) -> str:
    """Copy Debian's WordNet files into an NLTK data folder and add the `lexnames` file.

    Copies, not symlinks: NLTK refuses files whose real path lies outside its data folder.
    Files already there with the right size are kept, so this costs ~30 MB once.
    """
    corpus = os.path.join(nltk_data, "corpora", "wordnet")
    os.makedirs(corpus, exist_ok=True)
    for name in WORDNET_FILES:
        source, target = os.path.join(debian_dir, name), os.path.join(corpus, name)
        if not os.path.exists(source):
            continue
        if not os.path.exists(target) or os.path.getsize(target) != os.path.getsize(source):
            with whole_file(target) as part:  # two processes at once both finish
                shutil.copyfile(source, part)
    lexnames = "".join(f"{i:02d}\t{name}\t{pos}\n" for i, (name, pos) in enumerate(LEXNAMES))
    with whole_file(os.path.join(corpus, "lexnames")) as part, \
            open(part, "w", encoding="ascii") as file:
        file.write(lexnames)
    return corpus


@functools.lru_cache(maxsize=1)
def wordnet() -> WordNetCorpusReader:
    """WordNet 3.0 as an NLTK `WordNetCorpusReader`, found offline whenever possible.

    Looks in order for (a) NLTK's own downloaded corpus, (b) Debian's ``wordnet-base``
    files, which it assembles into ``cache_dir()/nltk_data/corpora/wordnet`` (NLTK needs a
    `lexnames` file Debian lacks), and (c) a one-off ``nltk.download("wordnet")`` into the
    same cache. Raises RuntimeError, with the commands that fix it, when all three fail.
    Loading takes a second or two; the reader is cached for the session.
    """
    nltk = _require_nltk()
    searched = [f"NLTK data folders {list(nltk.data.path)}"]

    root = _find_corpus(nltk)  # (a)
    if root is not None:
        return _reader(root)

    nltk_data = os.path.abspath(os.path.join(cache_dir(), "nltk_data"))
    for debian_dir in DEBIAN_WORDNET_DIRS:  # (b)
        searched.append(f"wordnet-base files in {debian_dir}")
        if os.path.isfile(os.path.join(debian_dir, "data.noun")):
            corpus = _assemble_from_debian(debian_dir, nltk_data)
            _add_data_path(nltk, nltk_data)
            return _reader(corpus)

    _add_data_path(nltk, nltk_data)  # (c): an earlier download, else download now
    searched.append(f"a download into {nltk_data}")
    root = _find_corpus(nltk)
    if root is None and offline():
        searched[-1] += " (skipped: COURSE_OFFLINE=1 forbids downloads)"
    elif root is None:
        try:
            nltk.download("wordnet", download_dir=nltk_data, quiet=True, raise_on_error=True)
        except Exception as error:  # no network, proxy refused, ...
            searched[-1] += f" (failed: {error})"
        root = _find_corpus(nltk)
    if root is not None:
        return _reader(root)

    raise RuntimeError(
        "WordNet 3.0 was not found. Looked for " + "; ".join(searched) + ".\n" + FIX_WORDNET
    )


def synset(wnid: str) -> Synset:
    """The WordNet synset behind an ImageNet id: ``synset("n02084071")`` is dog.n.01."""
    if not isinstance(wnid, str) or not _WNID.fullmatch(wnid):
        raise ValueError(
            f"{wnid!r} is not an ImageNet wnid: expected 'n' and the 8-digit offset of a "
            "WordNet 3.0 noun synset, e.g. 'n02084071' (dog)"
        )
    with warnings.catch_warnings():  # NLTK warns, then returns None, for a bad offset
        warnings.simplefilter("ignore", UserWarning)
        found = wordnet().synset_from_pos_and_offset("n", int(wnid[1:]))
    if found is None:
        raise ValueError(f"{wnid!r} names no synset in WordNet 3.0's data.noun")
    return found


def wnid(synset: Synset) -> str:
    """The ImageNet id of a synset: its part of speech and 8-digit offset, ``n02084071``."""
    return f"{synset.pos()}{synset.offset():08d}"


def _tfds_file(candidates: tuple[str, ...]) -> str:
    """A data file shipped inside tensorflow-datasets, found without importing it.

    Importing tensorflow_datasets imports TensorFlow (seconds, and the wrong thing on the
    JAX backend); `find_spec` only locates the package folder.
    """
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The ILSVRC-2012 class list comes from tensorflow-datasets, which is not "
            "installed: pip install tensorflow-datasets"
        )
    for folder in spec.submodule_search_locations:
        for name in candidates:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(
        f"tensorflow-datasets in {list(spec.submodule_search_locations)} has none of "
        f"{list(candidates)}; try: pip install -U tensorflow-datasets"
    )


def _read_wnids(path: str) -> tuple[str, ...]:
    with open(path, encoding="ascii") as file:
        return tuple(line.strip() for line in file if line.strip())


@functools.lru_cache(maxsize=1)
def _ilsvrc_wnids() -> tuple[str, ...]:
    path = _tfds_file(TFDS_LABEL_FILES)
    wnids = _read_wnids(path)
    if len(wnids) != 1000 or len(set(wnids)) != 1000 or wnids[0] != "n01440764":
        raise ValueError(
            f"{path} is not the ILSVRC-2012 class list: expected 1000 distinct wnids starting "
            f"with n01440764 (tench), got {len(wnids)} starting with {wnids[:1]}"
        )
    return wnids


def ilsvrc_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 classes as wnids, in class-index order (0 is n01440764, tench).

    This is the order of the challenge's devkit (sorted wnids) and of the 1000 outputs of
    every pretrained Keras ImageNet model. Read from the copy tensorflow-datasets ships.
    """
    return list(_ilsvrc_wnids())


def ilsvrc_validation_wnids() -> list[str]:
    """The true class (a wnid) of each of the 50,000 ILSVRC-2012 validation images, in order.

    Entry i labels ``ILSVRC2012_val_{i + 1:08d}.JPEG``; also read from tensorflow-datasets.
    """
    return list(_read_wnids(_tfds_file(TFDS_VALIDATION_FILES)))


def photo(name: str = "chelsea", size: int | None = None) -> np.ndarray:
    """A demo photo bundled with scikit-image (no download), as an RGB uint8 (H, W, 3) array.

    Choices are the keys of `PHOTOS`: "chelsea" (a cat), "coffee", "astronaut", "rocket".
    With `size`, the largest centred square of it, resized to size x size: what an
    ImageNet network is fed (224 for VGG-16).
    """
    if name not in PHOTOS:
        raise ValueError(f"No photo named {name!r}; choose one of: {', '.join(PHOTOS)}")
    try:
        import skimage.data
    except ImportError as error:
        raise ImportError("photo() needs scikit-image: pip install scikit-image") from error
    image = np.asarray(getattr(skimage.data, name)())
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    if size is None:
        return image
    from course_lib.data import centre_square, resize

    return resize(centre_square(image)[None], size)[0]
