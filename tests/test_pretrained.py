"""keras.applications' weights in our builders: copy_weights, load_imagenet, preprocessing."""

import keras
import numpy as np
import pytest

from course_lib.models import WeightsUnavailable, build, copy_weights, pretrained

APPLICATIONS = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}


def peaked(model: keras.Model) -> keras.Model:
    """`model` with its last layer's weights scaled up, so that random weights give
    confident predictions: near-uniform outputs would hide a wrong copy."""
    last = model.layers[-1]
    last.set_weights([w * 300 for w in last.get_weights()])
    return model


# VGG-19 is VGG-16's copy with three more layers: checked once, on TensorFlow (20 s a model on
# 2 cores); the backend-dependent part, Keras's weight layout on JAX, is checked with VGG-16.
COMPARED = list(APPLICATIONS) if keras.backend.backend() == "tensorflow" else ["vgg16"]


@pytest.mark.parametrize("name", COMPARED)
def test_random_keras_applications_weights_give_the_same_predictions(name):
    source = peaked(APPLICATIONS[name](weights=None))
    ours = build(name)
    copy_weights(source, ours)
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    x = keras.ops.convert_to_numpy(pretrained.caffe_preprocess(x))
    theirs, mine = source.predict(x, verbose=0), ours.predict(x, verbose=0)
    assert theirs.max() > 0.5  # confident: the comparison below can tell copies apart
    np.testing.assert_allclose(np.log(mine + 1e-30), np.log(theirs + 1e-30), atol=1e-3)
    # a copy that misses one layer is caught by the same comparison
    fc7 = ours.get_layer("fc7")
    fc7.set_weights([w[::-1] for w in fc7.get_weights()])
    assert np.abs(np.log(ours.predict(x, verbose=0) + 1e-30) - np.log(theirs + 1e-30)).max() > 1e-3


def small(name, **options):
    return build(name, input_shape=(32, 32, 3), num_classes=10, width=0.125, dense=32,
                 **options)


def test_copy_refuses_a_different_shape_naming_both_layers_and_changes_nothing():
    source, target = small("vgg_a"), small("vgg_a", dropout=0.1)
    target_c = small("vgg_c")
    kept = [w.copy() for w in target_c.get_weights()]
    with pytest.raises(ValueError, match="'conv4_1'.*'conv3_3'"):
        copy_weights(small("vgg_b"), target_c)  # the 7th conv: B's conv4_1, C's 1x1 conv3_3
    with pytest.raises(ValueError, match="'conv2_1'.*'conv1_2'"):
        copy_weights(source, small("vgg_b"))  # A's 2nd conv is conv2_1, B's is conv1_2
    for now, before in zip(target_c.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(now, before)
    copy_weights(source, target)  # same shapes, other names or options: fine
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_copy_refuses_a_different_number_of_layers():
    a = small("vgg_a")
    fewer = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Conv2D(8, 3, name="only")], name="fewer")
    fewer.get_layer("only").set_weights(a.get_layer("conv1_1").get_weights())
    with pytest.raises(ValueError, match="no partner"):
        copy_weights(fewer, a)
    with pytest.raises(ValueError, match="'conv2_1' has no partner"):
        copy_weights(a, fewer)


def test_caffe_preprocess_equals_keras_and_leaves_the_input_alone():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    kept = images.copy()
    ours = keras.ops.convert_to_numpy(pretrained.caffe_preprocess(images))
    np.testing.assert_array_equal(images, kept)  # ours did not touch it
    theirs = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-4)
    # the trap: Keras's own works in place on a float array
    keras.applications.vgg16.preprocess_input(images)
    assert not np.array_equal(images, kept)
    # integers (a decoded JPEG) and backend tensors work too
    pixels = rng.integers(0, 256, (1, 4, 4, 3), dtype="uint8")
    expected = pixels[..., ::-1].astype("float32") - np.array(pretrained.IMAGENET_BGR_MEAN)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pretrained.caffe_preprocess(keras.ops.convert_to_tensor(pixels))),
        expected, rtol=1e-6)


def test_caffe_preprocess_refuses_grey_and_warns_on_0_to_1_images():
    with pytest.raises(ValueError, match="RGB"):
        pretrained.caffe_preprocess(np.zeros((1, 8, 8, 1), "float32"))
    with pytest.raises(ValueError, match="RGB"):
        pretrained.caffe_preprocess(np.float32(3))
    listed = [[[[10, 20, 30]]]]  # nested lists work like the array they spell
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pretrained.caffe_preprocess(listed)),
                               [[[[30 - 103.939, 20 - 116.779, 10 - 123.68]]]], rtol=1e-5)
    with pytest.warns(UserWarning, match="0-255"):
        pretrained.caffe_preprocess(np.full((1, 8, 8, 3), 0.5, "float32"))


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(pretrained, "cached", lambda filename: False)
    return tmp_path / "keras"


def test_offline_without_cached_weights_says_so(keras_home, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(keras.applications, "VGG16", lambda **_: pytest.fail("tried"))
    monkeypatch.setattr(keras, "Model", lambda *_, **__: pytest.fail("built a network"))
    with pytest.raises(WeightsUnavailable, match="COURSE_OFFLINE.*vgg16_weights"):
        build("vgg16", weights="imagenet")  # refused before anything is built


def test_a_failed_download_says_so(keras_home, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")

    def no_network(**_):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...")

    monkeypatch.setattr(keras.applications, "VGG16", no_network)
    with pytest.raises(WeightsUnavailable, match="from the internet: URL fetch failure"):
        build("vgg16", weights="imagenet")


def test_imagenet_weights_load_into_our_builder_with_their_preprocessing(monkeypatch):
    """load_imagenet with a stand-in for keras.applications (random weights, no download)."""
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    source = small("vgg_d")
    monkeypatch.setattr(keras.applications, "VGG16", lambda weights: source)
    model = small("vgg_d", dropout=0.1)
    pretrained.load_imagenet(model, "VGG16")
    assert model.preprocess is pretrained.caffe_preprocess
    for ours, theirs in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not hasattr(small("vgg_d"), "preprocess")
