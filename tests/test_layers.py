"""LocalResponseNormalization: the paper's formula, TensorFlow's op, mixed precision, saving."""

import keras
import numpy as np
import pytest

from course_lib.layers import LocalResponseNormalization

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
