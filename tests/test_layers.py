"""LocalResponseNormalization: the paper's formula, TensorFlow's op, mixed precision, saving;
BatchNorm: equal to keras.layers.BatchNormalization in both modes and in training."""

import keras
import numpy as np
import pytest

from course_lib.layers import BatchNorm, LocalResponseNormalization

# (k, n, alpha, beta): the paper's constants, and stronger ones that make the sum matter.
SETTINGS = [
    (2.0, 5, 1e-4, 0.75),
    (1.0, 5, 1.0, 0.75),
    (0.5, 3, 2.0, 0.5),
    (1.0, 1, 0.5, 1.0),
]


def reference(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """The paper's equation, one channel at a time, in float64."""
    a = a.astype(np.float64)
    channels = a.shape[-1]
    b = np.empty_like(a)
    for c in range(channels):
        low, high = max(0, c - n // 2), min(channels - 1, c + n // 2)
        energy = np.sum(a[..., low : high + 1] ** 2, axis=-1)
        b[..., c] = a[..., c] / (k + alpha / n * energy) ** beta
    return b


# Loose enough for TF32 matrix products on recent GPUs (5e-4 at worst); a slip of
# convention (alpha not divided by n, a window off by one) is off by more than 1 %.
RTOL = 1e-3


def images(seed: int = 0, shape=(2, 5, 4, 12)) -> np.ndarray:
    """Random ReLU-like activations, large enough for the paper's tiny alpha to bite."""
    return np.random.default_rng(seed).uniform(0.0, 30.0, size=shape).astype("float32")


@pytest.mark.parametrize("k, n, alpha, beta", SETTINGS)
def test_matches_numpy_reference(k, n, alpha, beta):
    x = images()
    layer = LocalResponseNormalization(k=k, n=n, alpha=alpha, beta=beta)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference(x, k, n, alpha, beta), rtol=RTOL)


def test_printed_formula_is_alpha_times_n():
    # Section 3.3 prints b = a / (k + alpha * sum a^2) ** beta, without 1/n: our layer gives
    # it with alpha * n, and differs from it with the same alpha.
    x = images(seed=4)
    k, n, alpha, beta = 2.0, 5, 1e-3, 0.75
    printed = reference(x, k, n, alpha * n, beta)  # reference divides by n: undo it
    ours = LocalResponseNormalization(k=k, n=n, alpha=alpha * n, beta=beta)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), printed, rtol=RTOL)
    same_alpha = LocalResponseNormalization(k=k, n=n, alpha=alpha, beta=beta)(x)
    assert not np.allclose(keras.ops.convert_to_numpy(same_alpha), printed, rtol=1e-2)


def test_paper_defaults():
    layer = LocalResponseNormalization()
    assert (layer.k, layer.n, layer.alpha, layer.beta) == (2.0, 5, 1e-4, 0.75)


@pytest.mark.parametrize("k, n, alpha, beta", SETTINGS)
def test_matches_tensorflow_with_alpha_divided_by_n(k, n, alpha, beta):
    tf = pytest.importorskip("tensorflow")
    x = images(seed=1)
    ours = keras.ops.convert_to_numpy(
        LocalResponseNormalization(k=k, n=n, alpha=alpha, beta=beta)(x)
    )
    theirs = tf.nn.local_response_normalization(
        x, depth_radius=n // 2, bias=k, alpha=alpha / n, beta=beta
    ).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)


def test_tensorflow_alpha_is_not_the_papers_alpha():
    tf = pytest.importorskip("tensorflow")
    x = images(seed=1)
    ours = keras.ops.convert_to_numpy(LocalResponseNormalization()(x))
    same_alpha = tf.nn.local_response_normalization(x, 2, bias=2.0, alpha=1e-4, beta=0.75)
    assert not np.allclose(ours, same_alpha.numpy(), rtol=1e-2)


def test_mixed_bfloat16_computes_in_float32_and_returns_bfloat16():
    x = images(seed=2)
    layer = LocalResponseNormalization(alpha=1.0, dtype="mixed_bfloat16")
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    y = keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))
    # bfloat16 keeps 8 significant bits: one rounding of the output, about 0.4 %.
    np.testing.assert_allclose(y, reference(rounded, 2.0, 5, 1.0, 0.75), rtol=1e-2)


def test_even_n_and_non_positive_k_are_refused():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(n=4)
    with pytest.raises(ValueError, match="positive"):
        LocalResponseNormalization(k=0.0)
    # Found by a review: 4.5 became an even window of 4, and the others gave NaN or inf.
    faults = [(dict(n=4.5), "n must be"), (dict(n="5"), "n must be"),
              (dict(k=float("nan")), "k must be"), (dict(k=float("inf")), "k must be"),
              (dict(alpha=-100), "alpha must be"), (dict(beta=float("nan")), "beta must be")]
    for options, said in faults:
        with pytest.raises(ValueError, match=said):
            LocalResponseNormalization(**options)


@pytest.mark.parametrize("layer", [LocalResponseNormalization, BatchNorm])
def test_integer_inputs_are_refused_not_rounded(layer):
    """uint8 pixels of 200 came out of the LRN as 118, and out of BatchNorm as 0."""
    pixels = np.full((2, 4, 4, 3), 200, np.uint8)
    with pytest.raises(ValueError, match="takes floating-point inputs, not uint8"):
        layer()(pixels, **({"training": True} if layer is BatchNorm else {}))


def test_config_round_trip():
    layer = LocalResponseNormalization(k=1.0, n=3, alpha=0.5, beta=0.6, name="norm1")
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.k, clone.n, clone.alpha, clone.beta, clone.name) == (1.0, 3, 0.5, 0.6, "norm1")
    assert keras.saving.get_registered_name(LocalResponseNormalization) == (
        "course_lib>LocalResponseNormalization"
    )


def test_saves_and_reloads_inside_a_model(tmp_path):
    inputs = keras.Input((5, 4, 12))
    outputs = LocalResponseNormalization(alpha=1.0, name="norm")(inputs)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "lrn.keras")
    reloaded = keras.models.load_model(tmp_path / "lrn.keras")
    assert isinstance(reloaded.get_layer("norm"), LocalResponseNormalization)
    x = images(seed=3)
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


# --------------------------------------------------------------------------- BatchNorm

# (N, C) after a dense layer, (N, H, W, C) after a convolution: statistics per channel.
SHAPES = [(16, 6), (4, 5, 3, 6)]


def batch_of(shape, seed: int) -> np.ndarray:
    """Activations with a mean and a spread of their own in each channel."""
    rng = np.random.default_rng(seed)
    channels = shape[-1]
    return (rng.normal(size=shape) * rng.uniform(0.5, 3.0, channels)
            + rng.uniform(-2.0, 2.0, channels)).astype("float32")


def twin_layers(shape, momentum=0.99, **options):
    """Our BatchNorm and Keras's, built, with the same random gamma, beta and statistics."""
    ours = BatchNorm(momentum=momentum, **options)
    keras_bn = keras.layers.BatchNormalization(momentum=momentum, **options)
    ours.build(shape)
    keras_bn.build(shape)
    rng = np.random.default_rng(7)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in keras_bn.weights]
    keras_bn.set_weights(weights)
    ours.set_weights(weights)
    return ours, keras_bn


def numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_equals_keras_in_training_and_inference(shape):
    ours, keras_bn = twin_layers(shape)
    for step in range(4):  # four different batches: outputs and moving statistics agree
        x = batch_of(shape, seed=step)
        np.testing.assert_allclose(numpy(ours(x, training=True)),
                                   numpy(keras_bn(x, training=True)), rtol=1e-5, atol=1e-5)
        for mine, theirs in zip(ours.weights, keras_bn.weights, strict=True):
            np.testing.assert_allclose(numpy(mine), numpy(theirs), rtol=1e-6, atol=1e-6)
    x = batch_of(shape, seed=9)
    inference = numpy(ours(x, training=False))
    np.testing.assert_allclose(inference, numpy(keras_bn(x, training=False)), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(inference, numpy(ours(x)))  # inference by default


def test_batchnorm_without_center_and_scale_equals_keras():
    ours, keras_bn = twin_layers((8, 4), center=False, scale=False, epsilon=1e-5)
    assert len(ours.weights) == 2 and not ours.trainable_weights
    x = batch_of((8, 4), seed=3)
    np.testing.assert_allclose(numpy(ours(x, training=True)),
                               numpy(keras_bn(x, training=True)), rtol=1e-5, atol=1e-5)


def test_batchnorm_statistics_are_the_paper_algorithm_1():
    # Normalised with the biased variance; gamma 1 and beta 0 at the start.
    x = batch_of((10, 3), seed=5)
    y = numpy(BatchNorm(epsilon=0.0)(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=0), 1.0, rtol=1e-4)  # np.var is the biased one


def test_batchnorm_momentum_is_the_weight_of_the_old_value_not_pytorchs():
    # One step from moving_mean = 0, moving_variance = 1. Keras (and we): 0.99 of the old
    # value and 0.01 of the batch's. PyTorch's momentum=0.1 is the batch's weight, and its
    # running variance takes the unbiased batch variance: either slip fails this test.
    x = batch_of((4, 3), seed=6)
    layer = BatchNorm(momentum=0.99)
    layer(x, training=True)
    mean, variance = x.mean(axis=0), x.var(axis=0)  # np.var: biased (ddof=0)
    np.testing.assert_allclose(numpy(layer.moving_mean), 0.01 * mean, rtol=1e-5)
    np.testing.assert_allclose(numpy(layer.moving_variance), 0.99 + 0.01 * variance, rtol=1e-5)
    pytorch_way = 0.99 * mean  # momentum taken as the batch's weight
    assert not np.allclose(numpy(layer.moving_mean), pytorch_way, rtol=1e-2)
    unbiased = 0.99 + 0.01 * x.var(axis=0, ddof=1)
    assert not np.allclose(numpy(layer.moving_variance), unbiased, rtol=1e-3)


def test_frozen_batchnorm_runs_in_inference_mode_and_learns_nothing():
    ours, keras_bn = twin_layers((8, 4))
    ours.trainable = keras_bn.trainable = False
    x = batch_of((8, 4), seed=8)
    before = [numpy(w) for w in ours.weights]
    y = numpy(ours(x, training=True))  # Keras 3: a frozen BN layer ignores training=True
    np.testing.assert_allclose(y, numpy(ours(x, training=False)), rtol=1e-6)
    np.testing.assert_allclose(y, numpy(keras_bn(x, training=True)), rtol=1e-5, atol=1e-5)
    for old, new in zip(before, ours.weights, strict=True):
        np.testing.assert_array_equal(old, numpy(new))


def small_net(norm, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.Activation("relu")(norm(name="bn1")(x))
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, use_bias=False)(x)
    x = keras.layers.Activation("relu")(norm(name="bn2")(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def test_batchnorm_trains_like_keras_inside_model_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 2)).astype("float32")
    y = rng.integers(0, 3, size=64).astype("int32")  # JAX warns about (and truncates) int64
    nets = [small_net(BatchNorm, seed=1), small_net(keras.layers.BatchNormalization, seed=1)]
    for net in nets:
        net.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
        net.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)  # 8 steps
    ours, theirs = (net.get_weights() for net in nets)
    assert len(ours) == len(theirs) == 12  # 3 kernels, 4 per BN layer, 1 bias
    for mine, keras_weight in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nets[0].predict(x, verbose=0), nets[1].predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_batchnorm_mixed_bfloat16_returns_bfloat16_with_float32_statistics():
    x = batch_of((4, 5, 3, 6), seed=2)
    layer = BatchNorm(momentum=0.0, dtype="mixed_bfloat16")  # moving = the last batch's
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    rounded = numpy(keras.ops.cast(keras.ops.cast(x, "bfloat16"), "float32"))
    np.testing.assert_allclose(numpy(layer.moving_mean), rounded.mean(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(numpy(layer.moving_variance), rounded.var(axis=(0, 1, 2)),
                               rtol=1e-5)
    expected = (rounded - rounded.mean(axis=(0, 1, 2))) / np.sqrt(
        rounded.var(axis=(0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(numpy(keras.ops.cast(y, "float32")), expected, rtol=1e-2,
                               atol=1e-2)


def test_batchnorm_config_round_trip():
    layer = BatchNorm(momentum=0.9, epsilon=1e-5, center=False, name="bn")
    clone = BatchNorm.from_config(layer.get_config())
    assert (clone.momentum, clone.epsilon, clone.center, clone.scale, clone.name) == (
        0.9, 1e-5, False, True, "bn")
    assert keras.saving.get_registered_name(BatchNorm) == "course_lib>BatchNorm"


def test_batchnorm_saves_and_reloads_inside_a_model(tmp_path):
    model = small_net(BatchNorm, seed=2)
    x = np.random.default_rng(4).normal(size=(8, 6, 6, 2)).astype("float32")
    model(x, training=True)  # moving statistics away from their start
    model.save(tmp_path / "bn.keras")
    reloaded = keras.models.load_model(tmp_path / "bn.keras")
    assert isinstance(reloaded.get_layer("bn1"), BatchNorm)
    np.testing.assert_array_equal(numpy(reloaded.get_layer("bn2").moving_variance),
                                  numpy(model.get_layer("bn2").moving_variance))
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


@pytest.mark.parametrize("options, word", [(dict(momentum=1.0), "momentum"),
                                           (dict(momentum=-0.1), "momentum"),
                                           (dict(epsilon=-1e-3), "epsilon"),
                                           (dict(epsilon=float("inf")), "epsilon"),
                                           (dict(center="False"), "center must be True"),
                                           (dict(scale=0), "scale must be True")])
def test_batch_norm_refuses_impossible_settings(options, word):
    with pytest.raises(ValueError, match=word):
        BatchNorm(**options)
