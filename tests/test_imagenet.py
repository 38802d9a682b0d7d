"""course_lib.imagenet: WordNet offline, wnids, the ILSVRC-2012 class list, demo photos."""

import os
import sys

import numpy as np
import pytest

from course_lib import imagenet

DEBIAN_WORDNET_DIR = next((folder for folder in imagenet.DEBIAN_WORDNET_DIRS
                           if os.path.isfile(os.path.join(folder, "data.noun"))), None)
DEBIAN_WORDNET = DEBIAN_WORDNET_DIR is not None


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    """One WordNet for this module, assembled fresh from Debian's files when they are here.

    An empty COURSE_CACHE and an empty `nltk.data.path` hide every earlier copy, so
    `wordnet()` must build its NLTK data folder from /usr/share/wordnet, offline.
    """
    import nltk
    with pytest.MonkeyPatch.context() as patch:
        if DEBIAN_WORDNET:
            patch.setenv("COURSE_CACHE", str(tmp_path_factory.mktemp("course_cache")))
            patch.setattr(nltk.data, "path", [])
        imagenet.wordnet.cache_clear()
        yield imagenet.wordnet()
        imagenet.wordnet.cache_clear()


@pytest.mark.skipif(not DEBIAN_WORDNET, reason="Debian's wordnet-base is not installed")
def test_wordnet_is_assembled_offline_from_debian_files(wordnet):
    corpus = os.path.join(os.environ["COURSE_CACHE"], "nltk_data", "corpora", "wordnet")
    assert os.path.samefile(str(wordnet.root), corpus)
    with open(os.path.join(corpus, "lexnames"), encoding="ascii") as file:
        lines = file.read().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[44] == "44\tadj.ppl\t3"
    assert wordnet.get_version() == "3.0"
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"


def _assemble(folder):  # one process of the test below
    imagenet._assemble_from_debian(DEBIAN_WORDNET_DIR, folder)


@pytest.mark.skipif(not DEBIAN_WORDNET, reason="Debian's wordnet-base is not installed")
def test_processes_assembling_wordnet_at_once_all_finish_with_whole_files(tmp_path):
    """Two notebooks (or test workers) opened together both assemble WordNet into the same
    cache; each file is written under a name of its own and renamed, so neither fails and
    no reader sees half a file."""
    import multiprocessing
    copied = [name for name in imagenet.WORDNET_FILES
              if os.path.exists(os.path.join(DEBIAN_WORDNET_DIR, name))]
    folder = str(tmp_path / "nltk_data")
    corpus = os.path.join(folder, "corpora", "wordnet")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        for _ in range(3):
            pool.map(_assemble, [folder] * 8)
            for name in copied:
                assert (os.path.getsize(os.path.join(corpus, name))
                        == os.path.getsize(os.path.join(DEBIAN_WORDNET_DIR, name)))
            with open(os.path.join(corpus, "lexnames"), encoding="ascii") as file:
                assert len(file.read().splitlines()) == 45
            assert sorted(os.listdir(corpus)) == sorted([*copied, "lexnames"])
            for name in os.listdir(corpus):
                os.remove(os.path.join(corpus, name))


def test_wnid_to_synset_and_back(wordnet):
    dog = imagenet.synset("n02084071")
    assert dog == wordnet.synset("dog.n.01")
    assert imagenet.wnid(dog) == "n02084071"
    assert imagenet.synset("n01440764").name() == "tench.n.01"


def test_every_ilsvrc_class_round_trips(wordnet):
    wnids = imagenet.ilsvrc_wnids()
    assert [imagenet.wnid(imagenet.synset(w)) for w in wnids] == wnids


@pytest.mark.parametrize(
    "bad", ["n0208407", "n020840711", "02084071", "N02084071", "v02084071", "dog", 2084071]
)
def test_malformed_wnid_raises_value_error(bad):
    with pytest.raises(ValueError, match="not an ImageNet wnid"):
        imagenet.synset(bad)


def test_wnid_with_no_synset_raises_value_error(wordnet):
    with pytest.raises(ValueError, match="names no synset"):
        imagenet.synset("n99999999")


@pytest.mark.parametrize("offline", [False, True])
def test_wordnet_not_found_says_how_to_fix_it(tmp_path, monkeypatch, offline):
    import nltk

    downloads = []

    def no_network(package, download_dir, **kwargs):
        downloads.append((package, download_dir))
        raise OSError("no network")

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    if offline:
        monkeypatch.setenv("COURSE_OFFLINE", "1")
    else:
        monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(nltk.data, "path", [])
    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr(imagenet, "DEBIAN_WORDNET_DIRS", (str(tmp_path / "no_wordnet"),))
    with pytest.raises(RuntimeError) as error:
        imagenet.wordnet.__wrapped__()  # the uncached function: leaves the module's reader
    message = str(error.value)
    assert "sudo apt-get install wordnet-base" in message
    assert "python -m nltk.downloader wordnet" in message
    if offline:  # COURSE_OFFLINE=1 (as in CI) never touches the network
        assert downloads == [] and "COURSE_OFFLINE=1" in message
    else:
        assert downloads == [("wordnet", str(tmp_path / "nltk_data"))]
        assert "no_wordnet" in message and "no network" in message


def test_ilsvrc_wnids_are_the_1000_classes_in_order():
    had_tfds = "tensorflow_datasets" in sys.modules
    wnids = imagenet.ilsvrc_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert wnids[0] == "n01440764"  # tench
    assert wnids[281] == "n02123045"  # tabby cat
    assert wnids[-1] == "n15075141"  # toilet tissue
    assert wnids == sorted(wnids)
    assert ("tensorflow_datasets" in sys.modules) == had_tfds  # found, not imported


def test_ilsvrc_validation_labels_are_50_per_class():
    labels = imagenet.ilsvrc_validation_wnids()
    assert len(labels) == 50_000
    classes, counts = np.unique(labels, return_counts=True)
    assert list(classes) == imagenet.ilsvrc_wnids()
    assert set(counts) == {50}


def test_ilsvrc_wnids_without_tensorflow_datasets(monkeypatch):
    monkeypatch.setattr(imagenet.importlib.util, "find_spec", lambda name, *args: None)
    imagenet._ilsvrc_wnids.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match="pip install tensorflow-datasets"):
            imagenet.ilsvrc_wnids()
    finally:
        imagenet._ilsvrc_wnids.cache_clear()


@pytest.mark.parametrize("name", sorted(imagenet.PHOTOS))
def test_photo_is_rgb_uint8(name):
    image = imagenet.photo(name)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 256


def test_default_photo_is_chelsea_the_cat():
    assert imagenet.photo().shape == (300, 451, 3)


def test_unknown_photo_names_the_choices():
    with pytest.raises(ValueError, match="chelsea, coffee, astronaut, rocket"):
        imagenet.photo("dog")


def test_photo_at_a_size_is_its_centred_square_resized():
    cat = imagenet.photo("chelsea", size=224)
    assert cat.shape == (224, 224, 3) and cat.dtype == np.uint8
    full = imagenet.photo("chelsea")  # 300 x 451: the square is columns 75 to 374
    same = imagenet.photo("chelsea", size=300)
    np.testing.assert_array_equal(same, full[:, 75:375])
    with pytest.raises(ValueError, match="size"):
        imagenet.photo("chelsea", size=0)
