import warnings

import keras
import numpy as np
import pytest

from course_lib import augment, data, train

BACKEND = keras.backend.backend()


def plain(crop, **options):
    """An Augment that does not normalise (mean 0, std 1): outputs are pixels, in float."""
    channels = options.pop("channels", 3)
    return augment.Augment(crop, mean=[0.0] * channels, std=[1.0] * channels, **options)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def resized(images, size):
    """The float (unrounded) pixels of keras.ops.image.resize, as data.resize makes them."""
    return numpy(keras.ops.image.resize(images.astype("float32"), (size, size),
                                        interpolation="bilinear", antialias=True))


def split_of(images, mean=(120.0, 110.0, 100.0), std=(60.0, 55.0, 50.0)):
    count = len(images)
    return data.Split("toy", "train", images, np.arange(count, dtype="int32") % 4,
                      ("a", "b", "c", "d"), np.array(mean, "float32"),
                      np.array(std, "float32"), "test")


def random_images(count, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), np.uint8)


def windows(image, crop):
    """Every crop x crop window of `image` and its mirror image: (positions * 2, crop, crop, c)."""
    room = image.shape[0] - crop + 1
    found = [image[t:t + crop, s:s + crop] for t in range(room) for s in range(room)]
    return np.stack(found + [w[:, ::-1] for w in found])


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("size_in, size_out", [(32, 256), (32, 76), (28, 32), (40, 36)])
def test_the_resize_matrix_is_keras_resize(size_in, size_out):
    images = random_images(3, size_in)
    layer = plain(size_out, resize=size_out)
    np.testing.assert_allclose(numpy(layer(images)), resized(images, size_out), atol=2e-3)


def test_evaluation_is_the_numpy_paths_normalised_centre_crop():
    split = split_of(random_images(10, 36))
    host = data.batches(split, 10, crop=32)[0][0]
    device = data.batches(split, 10, crop=32, device=True)
    images, labels = device[0]
    assert numpy(images).dtype == np.uint8 and numpy(images).shape == (10, 36, 36, 3)
    np.testing.assert_array_equal(labels, split.labels)
    np.testing.assert_allclose(numpy(device.layer(images)), host, rtol=1e-6, atol=1e-6)


def test_evaluation_after_resizing_is_the_numpy_path_on_data_resized_once():
    split = split_of(random_images(10, 32))
    once = split_of(data.resize(split.images, 64))  # rounded to uint8, as load() keeps it
    host = data.batches(once, 10, crop=56)[0][0]
    device = data.batches(split, 10, crop=56, resize=64, device=True)
    got = numpy(device.layer(device[0][0]))
    # Half a grey level (the rounding the device path skips), in normalised units.
    np.testing.assert_allclose(got, host, rtol=0, atol=0.5 / 50 + 1e-5)
    unrounded = (resized(split.images, 64)[:, 4:60, 4:60] - split.mean) / split.std
    np.testing.assert_allclose(got, unrounded, rtol=0, atol=1e-4)


def test_the_ten_crops_are_the_papers_patches():
    """Four corners and the centre of the resized, padded image, each then mirrored."""
    images = random_images(3, 12, seed=4)
    layer = augment.Augment(8, mean=(120, 110, 100), std=(60, 55, 50), pad=1)
    with pytest.raises(ValueError, match="call the layer on a batch first"):
        layer.patches()
    got = numpy(layer(images, views=10)).reshape(10, 3, 8, 8, 3)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0))).astype("float32")
    assert layer.patches() == [(0, 0), (0, 6), (6, 6), (6, 0), (3, 3)]
    for k, (top, left) in enumerate(layer.patches()):
        patch = (padded[:, top:top + 8, left:left + 8] - layer.mean) / layer.std
        np.testing.assert_allclose(got[2 * k], patch, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got[2 * k + 1], patch[:, :, ::-1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[8], numpy(layer(images)), rtol=1e-6, atol=1e-6)  # centre
    np.testing.assert_allclose(numpy(layer(images, views=2)).reshape(2, 3, 8, 8, 3), got[8:],
                               rtol=1e-6, atol=1e-6)  # the centre and its mirror image


@pytest.mark.parametrize("views", [True, 0, 3, 2.5, "2", None])
def test_test_time_views_are_1_2_or_10(views):
    layer = augment.Augment(8, mean=(120, 110, 100), std=(60, 55, 50))
    with pytest.raises(ValueError, match="views is 1 .* 2 .* or 10"):
        layer(random_images(2, 12, seed=4), views=views)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="views is 1 .* 2 .* or 10"):
        augment.in_front(layer, model, (12, 12, 3), views=views)


def test_test_time_views_refuse_training():
    layer = augment.Augment(8, mean=(120, 110, 100), std=(60, 55, 50))
    with pytest.raises(ValueError, match="for evaluation, not training"):
        layer(random_images(2, 12, seed=4), training=True, views=2)


@pytest.mark.parametrize("views", [2, 10])
def test_test_time_prediction_averages_the_softmax_of_the_views(views):
    images = random_images(5, 36, seed=5)
    layer = augment.Augment(28, mean=(120, 110, 100), std=(60, 55, 50), resize=32)
    inputs = keras.Input((28, 28, 3))
    features = keras.layers.Conv2D(4, 5, strides=3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(features))
    model = keras.Model(inputs, outputs)
    viewer = augment.in_front(layer, model, (36, 36, 3), views=views)
    got = numpy(viewer.predict(images, verbose=0))
    each = numpy(model.predict(numpy(layer(images, views=views)), verbose=0))
    np.testing.assert_allclose(got, each.reshape(views, 5, 3).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match=r"takes \(28, 28, 3\).*\(24, 24, 3\) crops"):
        augment.in_front(augment.Augment(24, mean=[0] * 3, std=[1] * 3), model,
                         (36, 36, 3), views=views)


# --------------------------------------------------------------------------- training


def test_training_crops_and_flips_are_windows_of_the_image():
    rows, columns = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    image = np.stack([rows, columns, np.zeros_like(rows)], -1).astype(np.uint8)
    layer = plain(32, seed=3)
    out = numpy(layer(np.repeat(image[None], 400, 0), training=True)).round().astype(int)
    tops, lefts = out[:, 0, 0, 0], out[:, 0, :, 1].min(-1)
    flipped = out[:, 0, 0, 1] > out[:, 0, -1, 1]
    steps = np.arange(32)
    for o, top, left, flip in zip(out, tops, lefts, flipped, strict=True):
        np.testing.assert_array_equal(o[..., 0], (top + steps)[:, None] * np.ones(32, int))
        across = left + (steps[::-1] if flip else steps)
        np.testing.assert_array_equal(o[..., 1], np.ones((32, 1), int) * across)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9))  # every position
    assert 150 < flipped.sum() < 250  # half of them mirrored
    # Another draw, another window: the generator moves on.
    again = numpy(layer(np.repeat(image[None], 400, 0), training=True)).round()
    assert not np.array_equal(again, out)


def test_training_crops_of_a_resized_image_are_its_windows():
    images = random_images(6, 24, seed=1)
    layer = plain(28, resize=32, seed=0)
    out = numpy(layer(images, training=True))
    for crop, image in zip(out, resized(images, 32), strict=True):
        distance = np.abs(windows(image, 28) - crop).max(axis=(1, 2, 3))
        assert distance.min() < 2e-3, distance.min()


def test_padded_crops_are_windows_of_the_zero_padded_image():
    images = random_images(8, 16, seed=2)
    out = numpy(plain(16, pad=4, seed=1)(images, training=True))
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0))).astype("float32")
    for crop, image in zip(out, padded, strict=True):
        assert (np.abs(windows(image, 16) - crop).max(axis=(1, 2, 3)) == 0).any()


def colour_pca_of_notebook_01(images, mean, std):
    """notebooks/01_alexnet.ipynb's colour_pca before it moved to the library."""
    pixels = (images.reshape(-1, 3).astype("float64") - mean) / std
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def test_pca_colour_noise_follows_the_paper():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (200, 8, 8, 1)) * [60, 50, 40] + rng.normal(0, 15, (200, 8, 8, 3))
    images = np.clip(base + 128, 0, 255).astype(np.uint8)  # channels strongly correlated
    mean, std = images.reshape(-1, 3).mean(0), images.reshape(-1, 3).std(0)
    values, vectors = augment.colour_pca(images, mean, std)
    want_values, want_vectors = colour_pca_of_notebook_01(images, mean, std)
    np.testing.assert_allclose(values, want_values, rtol=1e-5)
    np.testing.assert_allclose(np.abs(vectors.T @ want_vectors), np.eye(3), atol=1e-5)
    layer = augment.Augment(8, mean=mean, std=std, flip=False, pca=(values, vectors))
    many = np.repeat(images[:1], 4000, 0)
    shifts = numpy(layer(many, training=True)) - numpy(layer(many))
    # One shift per image, the same at every pixel: a change of lighting.
    np.testing.assert_allclose(shifts, np.broadcast_to(shifts[:, :1, :1], shifts.shape),
                               atol=1e-5)
    # shift = [p1 p2 p3] [a1 l1, a2 l2, a3 l3]: recover the alphas, which are N(0, 0.1).
    alphas = shifts[:, 0, 0] @ vectors / values
    np.testing.assert_allclose(numpy(augment.pca_shift(alphas, values, vectors)),
                               shifts[:, 0, 0], atol=1e-5)
    assert np.abs(alphas.mean(0)).max() < 0.01
    np.testing.assert_allclose(alphas.std(0), 0.1, rtol=0.06)
    assert np.abs(np.corrcoef(alphas, rowvar=False) - np.eye(3)).max() < 0.08
    with pytest.raises(ValueError, match="RGB"):
        augment.colour_pca(images[..., :1], mean[:1], std[:1])


# --------------------------------------------------------------------------- compiled


def test_the_training_model_compiles_with_xla():
    split = split_of(random_images(16, 32))
    batches = data.batches(split, 8, training=True, device=True, crop=56, resize=64,
                           pca=True)
    inputs = keras.Input((56, 56, 3))
    outputs = keras.layers.Dense(4, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs, name="head")
    trainer = train.training_model(model, batches, None)
    trainer.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    assert trainer.jit_compile is True
    if BACKEND == "jax":  # fit compiles with XLA on JAX, trains, and says so
        history = train.fit(model, batches, epochs=1, lr=0.01, verbose=False)
        assert history["run"]["xla"] is True and np.isfinite(history["loss"][0])
    # The trap the layer avoids: one Keras RandomCrop turns XLA off for the whole model.
    cropped = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.RandomCrop(56, 56),
                                model])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cropped.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    assert cropped.jit_compile is False


def test_the_model_must_take_the_crops():
    layer = plain(32)
    inputs = keras.Input((28, 28, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    with pytest.raises(ValueError, match=r"takes \(28, 28, 3\).*\(32, 32, 3\) crops"):
        augment.in_front(layer, model, (40, 40, 3))


@pytest.mark.parametrize("options, message", [
    (dict(crop=0), "crop must be a whole number"),
    (dict(crop=32, resize=2.5), "resize must be a whole number"),
    (dict(crop=32, pad=-1), "pad must be a whole number"),
    (dict(crop=32, std=[0.0, 1.0, 1.0]), "std above 0"),
    (dict(crop=32, mean=[0.0]), "one finite number per channel"),
    (dict(crop=32, pca=(np.ones(2), np.eye(2))), "3 eigenvalues"),
    (dict(crop=32, flip="no"), "flip must be True or False"),  # 'no' meant yes
    (dict(crop=32, pca_sigma=float("nan")), "pca_sigma must be a number >= 0"),
    (dict(crop=32, pca_sigma=-1), "pca_sigma must be a number >= 0"),
    (dict(crop=32, mean=[float("nan")] * 3), "one finite number per channel"),
])
def test_bad_arguments_are_refused(options, message):
    options = {"mean": [0.0] * 3, "std": [1.0] * 3, **options}
    with pytest.raises(ValueError, match=message):
        augment.Augment(**options)


def test_a_crop_larger_than_the_resized_padded_image_is_refused():
    with pytest.raises(ValueError, match="crop 40 is larger.*resized to 36 and padded by 1"):
        plain(40, resize=36, pad=1)(random_images(1, 32), training=True)
    with pytest.raises(ValueError, match="3 channels but mean and std 1"):
        plain(8, channels=1)(random_images(1, 8))


def test_the_layer_is_rebuilt_from_its_config_and_cloned_with_its_model():
    """keras.models.clone_model (and so data-parallel training) rebuilds layers from their
    configs: the float32 that Augment always computes in must not be passed twice."""
    layer = augment.Augment(24, mean=(120, 110, 100), std=(60, 55, 50), pad=2, seed=5)
    again = augment.Augment.from_config(layer.get_config())
    assert again.get_config() == layer.get_config() and again.compute_dtype == "float32"
    inputs = keras.Input((24, 24, 3))
    head = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    trainer = augment.in_front(layer, head, (32, 32, 3))
    copy = keras.models.clone_model(trainer, recursive=True)
    assert [type(x).__name__ for x in copy.layers] == [type(x).__name__ for x in trainer.layers]
