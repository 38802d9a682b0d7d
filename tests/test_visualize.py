"""The projections (deconvnet, gradient, guided backpropagation) and occlusion maps: shapes,
switches, transposed filters, exact identities, agreement with autodiff; the first-layer
measures and the figures.

Every model here is built with random or hand-set weights; nothing is trained.
"""

import keras
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402

from course_lib.analysis import layer_table  # noqa: E402
from course_lib.models import build  # noqa: E402
from course_lib.visualize import (  # noqa: E402
    METHODS,
    Activation,
    aliased_energy,
    dead_filters,
    occlusion_map,
    plot_first_layers,
    plot_methods,
    plot_occlusion,
    plot_projections,
    project,
    receptive_patch,
    top_activations,
)


def chain(input_shape, *steps, name="chain") -> keras.Model:
    """A functional model that applies `steps` one after the other."""
    x = inputs = keras.Input(input_shape)
    for step in steps:
        x = step(x)
    return keras.Model(inputs, x, name=name)


def random_images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --------------------------------------------------------------------------- shapes


# Built once per module: building (random initialisation) is the slow part on JAX.
MODELS = {
    "zfnet_small": ("zfnet", {"stem": "small"}, 32),
    "alexnet_small": ("alexnet", {"stem": "small"}, 32),  # grouped conv2, conv4, conv5
    "zfnet_67": ("zfnet", {}, 67),  # the paper's 7x7 stride-2 stem, with its padding
}


@pytest.fixture(scope="module")
def models():
    built = {}
    for key, (name, options, size) in MODELS.items():
        built[key] = build(name, input_shape=(size, size, 3), num_classes=10, width=0.25,
                           dense=16, **options)
    return built


@pytest.mark.parametrize(
    "key, layer",
    [
        ("zfnet_small", "conv5"),
        ("alexnet_small", "norm1"),
        ("alexnet_small", "conv4"),
        ("zfnet_67", "norm1"),
        ("zfnet_67", "pool5"),
    ],
)
def test_projection_has_the_input_shape(models, key, layer):
    model = models[key]
    images = random_images((3, *model.input_shape[1:]))
    projected = project(model, layer, images, channels=[0, 1, 2])
    assert projected.shape == images.shape
    assert np.all(np.isfinite(projected))


def test_refuses_layers_it_cannot_walk_back_through(models):
    model = models["zfnet_small"]
    with pytest.raises(ValueError, match="cannot walk back"):
        project(model, "fc6", random_images((1, 32, 32, 3)), 0)
    with pytest.raises(ValueError, match="no layer"):
        project(model, "conv9", random_images((1, 32, 32, 3)), 0)
    for relu in (keras.layers.ReLU(max_value=6.0), keras.layers.ReLU(negative_slope=0.1)):
        capped = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), relu])
        with pytest.raises(ValueError, match="cannot walk back"):  # its rule is not ReLU's
            project(capped, relu.name, random_images((1, 8, 8, 1)), 0)


# --------------------------------------------------------------------------- switches


def test_unpooling_puts_each_max_back_where_it_came_from():
    # Two channels; 2x2 windows, stride 2: each window's max is kept in place.
    image = np.array([[1, 5, 0, 2],
                      [3, 2, 7, 1],
                      [0, 4, 2, 2],
                      [9, 1, 3, 8]], "float32")  # fmt: skip
    images = np.stack([image, -image], axis=-1)[None]  # channel 1: the maxima move
    model = chain((4, 4, 2), layers.MaxPooling2D(2, name="pool"))
    both = np.concatenate([images, images])  # project map 0 of one copy, map 1 of the other
    kept, other = project(model, "pool", both, [0, 1], strongest_only=False)
    expected = np.zeros((4, 4), "float32")
    for row, col in [(0, 1), (1, 2), (3, 0), (3, 3)]:
        expected[row, col] = image[row, col]
    np.testing.assert_array_equal(kept[..., 0], expected)
    np.testing.assert_array_equal(kept[..., 1], 0)  # the other map is zeroed
    np.testing.assert_array_equal(other[..., 0], 0)
    other = other[..., 1]
    expected = np.zeros((4, 4), "float32")
    for row, col in [(0, 0), (0, 2), (2, 0), (2, 2)]:  # the first minimum of each window
        expected[row, col] = -image[row, col]
    np.testing.assert_array_equal(other, expected)


def test_overlapping_windows_that_share_a_max_add_up():
    # 3x3 windows, stride 2, on 5x5: four windows, all containing the centre.
    image = np.arange(25, dtype="float32").reshape(5, 5) / 10
    image[2, 2] = 9.0  # the max of all four windows
    model = chain((5, 5, 1), layers.MaxPooling2D(3, strides=2, name="pool"))
    kept = project(model, "pool", image[None, ..., None], 0, strongest_only=False)
    expected = np.zeros((5, 5), "float32")
    expected[2, 2] = 4 * 9.0
    np.testing.assert_allclose(kept[0, ..., 0], expected)
    strongest = project(model, "pool", image[None, ..., None], 0)  # one window only
    expected[2, 2] = 9.0
    np.testing.assert_allclose(strongest[0, ..., 0], expected)


def test_same_padded_pooling_never_picks_the_padding():
    # All values negative: a zero-padded pool would put the max in the padding.
    image = -np.arange(1, 10, dtype="float32").reshape(3, 3)
    model = chain((3, 3, 1), layers.MaxPooling2D(2, padding="same", name="pool"))
    kept = project(model, "pool", image[None, ..., None], 0, strongest_only=False)
    expected = np.zeros((3, 3), "float32")
    for row, col in [(0, 0), (0, 2), (2, 0), (2, 2)]:
        expected[row, col] = image[row, col]
    np.testing.assert_array_equal(kept[0, ..., 0], expected)


# --------------------------------------------------------------------------- transposed filters


def test_one_activation_projects_to_its_filter():
    # 2x2 filters, stride 2, no overlap: the strongest unit paints its own filter, scaled
    # by its activation, onto the 2x2 input window it saw.
    conv = layers.Conv2D(2, 2, strides=2, activation="relu", use_bias=False, name="conv")
    model = chain((4, 4, 1), conv)
    kernel = np.zeros((2, 2, 1, 2), "float32")
    kernel[..., 0, 0] = [[1.0, 2.0], [3.0, 4.0]]
    kernel[..., 0, 1] = [[-1.0, 0.5], [0.0, 1.0]]
    conv.set_weights([kernel])
    image = np.zeros((4, 4), "float32")
    image[2:, :2] = [[1.0, 0.0], [0.0, 2.0]]  # unit (1, 0) of map 0: 1 * 1 + 2 * 4 = 9
    image[0, 3] = 0.5  # unit (0, 1) of map 0: 0.5 * 2 = 1, weaker
    projected = project(model, "conv", image[None, ..., None], 0)[0, ..., 0]
    expected = np.zeros((4, 4), "float32")
    expected[2:, :2] = 9.0 * kernel[..., 0, 0]
    np.testing.assert_allclose(projected, expected)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, groups",
    [(7, 3, 2, "valid", 1), (7, 3, 2, "same", 2), (8, 5, 1, "same", 2), (9, 4, 3, "valid", 1)],
)
def test_projection_is_the_transpose_of_the_convolution(size, kernel, stride, padding, groups):
    # For a linear conv z = W x and the whole map c kept, the projection is d = W^T P_c W x
    # (P_c zeroes every other map), so <d, x> = <P_c W x, W x> = sum(z_c ** 2) exactly. This
    # checks the transposed filters, strides, padding offsets and groups together.
    conv = layers.Conv2D(4, kernel, strides=stride, padding=padding, groups=groups,
                         name="conv")
    model = chain((size, size, 4), layers.ZeroPadding2D(((1, 0), (2, 1))), conv)
    images = random_images((2, size, size, 4), seed=1)
    conv.set_weights([random_images(conv.kernel.shape, seed=2), np.zeros(4, "float32")])
    maps = keras.ops.convert_to_numpy(model(images))
    channels = [0, 0, 3, 3]  # maps 0 and 3 of both images, in one call
    projected = project(model, "conv", np.concatenate([images, images]), channels,
                          strongest_only=False)
    assert projected.shape == (4, *images.shape[1:])
    inner = np.sum(projected * np.concatenate([images, images]), axis=(1, 2, 3))
    energy = [np.sum(maps[i % 2, ..., c] ** 2) for i, c in enumerate(channels)]
    np.testing.assert_allclose(inner, energy, rtol=1e-4)


def test_rectification_keeps_the_signal_non_negative():
    # conv (no ReLU) -> ReLU -> conv (ReLU): every projection through a ReLU is >= 0
    # before the last transposed filter, so a 1x1 positive first filter keeps it >= 0.
    first = layers.Conv2D(1, 1, use_bias=False, name="conv1")
    model = chain((6, 6, 1), first, layers.ReLU(name="relu1"),
                  layers.Conv2D(2, 3, activation="relu", name="conv2"))
    first.set_weights([np.ones((1, 1, 1, 1), "float32")])
    projected = project(model, "conv2", random_images((4, 6, 6, 1)), 1, method="deconvnet")
    assert projected.min() >= 0


# --------------------------------------------------------------------------- three methods


# How each method crosses a ReLU on the way down, given the signal and the ReLU's output.
RULES = {
    "deconvnet": lambda signal, output: keras.ops.relu(signal),
    "gradient": lambda signal, output: signal * keras.ops.cast(output > 0, "float32"),
    "guided": lambda signal, output: keras.ops.relu(signal)
    * keras.ops.cast(output > 0, "float32"),
}


class RuleReLU(layers.Layer):
    """A ReLU whose gradient follows one of `RULES`: autodiff through a model made of these
    computes that method's projection by an independent route."""

    def __init__(self, method="gradient", **kwargs):
        super().__init__(**kwargs)
        self.rule = RULES[method]

    def call(self, x):
        @keras.ops.custom_gradient
        def relu(x):
            output = keras.ops.relu(x)

            def grad(*args, upstream=None):
                return self.rule(args[0] if upstream is None else upstream, output)

            return output, grad

        return relu(x)


def small_model(method=None) -> keras.Model:
    """conv (fused ReLU) -> max-pool -> conv stride 2 (fused ReLU) -> conv valid -> ReLU
    layer. With a `method`, every ReLU is a separate `RuleReLU` following that method (conv1
    and conv2's are named r1 and r2). The weights are set from NumPy's generator, so they
    are the same either way and on every backend."""

    def relu(x, name):
        return x if method is None else RuleReLU(method, name=name)(x)

    fused = "relu" if method is None else None
    x = inputs = keras.Input((16, 16, 3))
    x = relu(layers.Conv2D(4, 3, padding="same", activation=fused, name="conv1")(x), "r1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(5, 3, strides=2, padding="same", activation=fused, name="conv2")(x)
    x = relu(x, "r2")
    x = layers.Conv2D(6, 3, name="conv3")(x)
    x = (layers.ReLU(name="relu3") if method is None else RuleReLU(method, name="relu3"))(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(3)
    for name in ("conv1", "conv2", "conv3"):
        kernel, bias = model.get_layer(name).get_weights()
        fan_in = np.prod(kernel.shape[:3])
        model.get_layer(name).set_weights([rng.normal(size=kernel.shape) / np.sqrt(fan_in),
                                           rng.normal(size=bias.shape) * 0.1])
    return model


def unit_gradient(model, layer_name, images, channels) -> np.ndarray:
    """value * d value / d image for the strongest unit of map channels[i] in image i,
    by the backend's own autodiff."""
    probe = keras.Model(model.input, model.get_layer(layer_name).output)
    maps = keras.ops.convert_to_numpy(probe(images))
    weights = np.zeros_like(maps)  # the chosen unit's value there, zero elsewhere
    for i, channel in enumerate(channels):
        row, col = np.unravel_index(maps[i, ..., channel].argmax(), maps.shape[1:3])
        weights[i, row, col, channel] = maps[i, row, col, channel]
        assert weights[i, row, col, channel] > 0  # a unit that fired: a real test

    def objective(x):  # sum over images of value * value.stop_gradient
        return keras.ops.sum(probe(x) * weights)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(images)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = objective(x)
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(objective)(images))
    pytest.skip(f"no autodiff reference for the {backend} backend")


@pytest.mark.parametrize("layer", ["relu3", "conv2"])
@pytest.mark.parametrize("method", METHODS)
def test_each_method_is_the_gradient_with_its_relu_rule(method, layer):
    # "gradient" is exactly value * d value / d image (autodiff through the model as it
    # is); "deconvnet" and "guided" are the same autodiff through a twin whose ReLUs have
    # their rule as gradient. This checks every mask against the right forward output.
    model = small_model()
    images = random_images((3, 16, 16, 3), seed=4)
    channels = [0, 3, 1]  # maps that fire in these images
    projected = project(model, layer, images, channels, method=method)
    twin = small_model(method)
    if method == "gradient":
        expected = unit_gradient(model, layer, images, channels)
    else:  # the twin's conv2 is linear; its ReLU, r2, is the layer to start from
        expected = unit_gradient(twin, {"conv2": "r2"}.get(layer, layer), images, channels)
    scale = np.abs(expected).max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(projected / scale, expected / scale, rtol=1e-4, atol=1e-5)
    if method != "gradient":  # the rule made a difference, so the check could fail
        plain = unit_gradient(model, layer, images, channels)
        assert np.abs(plain - expected).max() > 1e-2 * np.abs(plain).max()


def test_methods_agree_where_no_relu_sees_a_negative_signal():
    # No ReLU at all (conv -> max-pool -> conv, signed signals): nothing to differ on.
    linear = chain((9, 9, 2), layers.Conv2D(3, 3, name="conv1"), layers.MaxPooling2D(2),
                   layers.Conv2D(4, 2, name="conv2"))
    images = random_images((2, 9, 9, 2), seed=5)
    results = [project(linear, "conv2", images, [1, 3], method=method, strongest_only=False)
               for method in METHODS]
    assert results[0].min() < 0 < results[0].max()  # a rectifying method would differ
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-5, atol=1e-6)
    # One conv with a fused ReLU: the signal starts as the ReLU's output, already >= 0 and
    # zero where the ReLU was shut, so the three rules coincide; a mask with the wrong
    # sense (output <= 0) would break this.
    single = chain((9, 9, 2), layers.Conv2D(3, 3, activation="relu", name="conv"))
    results = [project(single, "conv", images, 2, method=method, strongest_only=False)
               for method in METHODS]
    assert np.abs(results[0]).max() > 0
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-5, atol=1e-6)


def test_an_unknown_method_is_refused_with_the_choices():
    model = chain((4, 4, 1), layers.Conv2D(1, 3, name="conv"))
    with pytest.raises(ValueError, match="'deconvnet', 'gradient', 'guided'"):
        project(model, "conv", random_images((1, 4, 4, 1)), 0, method="saliency")


def test_plot_methods_draws_the_image_and_one_column_per_method():
    images = random_images((3, 8, 8, 3))
    projections = {method: images * k for k, method in enumerate(METHODS, start=1)}
    fig = plot_methods(images, projections, titles=["a", "b", "c"])
    try:
        assert len(fig.axes) == 3 * (1 + 3)
        assert [ax.get_title() for ax in fig.axes[:4]] == ["image", *METHODS]
        assert fig.axes[4].get_ylabel() == "b"
        shown = fig.axes[5].images[0].get_array()  # image 1, "deconvnet": scaled to [0, 1]
        assert shown.min() == 0 and shown.max() == 1
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- finding units


def test_top_activations_rank_images_and_find_the_position():
    maps = np.zeros((4, 5, 5, 2), "float32")  # 4 images, 5 x 5 maps, 2 channels
    maps[0, 1, 2, 0], maps[1, 4, 0, 0], maps[2, 3, 3, 0] = 2.0, 5.0, 1.0
    maps[3, 0, 4, 1] = 7.0
    found = top_activations(maps, count=2)
    assert set(found) == {0, 1}
    assert [(a.image, a.row, a.col, a.value) for a in found[0]] == [(1, 4, 0, 5.0),
                                                                    (0, 1, 2, 2.0)]
    assert found[1][0][:3] == (3, 0, 4)
    assert list(top_activations(maps, channels=[1])) == [1]


def test_receptive_patch_cuts_the_window_a_unit_sees():
    image = np.arange(100, dtype="float32").reshape(10, 10, 1)
    model = chain((10, 10, 1), layers.Conv2D(1, 3, strides=2, name="conv"))
    patch = receptive_patch(image, model, "conv", 1, 2)  # rows 2-4, columns 4-6
    np.testing.assert_array_equal(patch, image[2:5, 4:7])
    padded = chain((10, 10, 1), layers.ZeroPadding2D(1), layers.Conv2D(1, 3, name="conv"))
    corner = receptive_patch(image, padded, "conv", 0, 0)  # window starts at (-1, -1)
    np.testing.assert_array_equal(corner, image[:2, :2])  # the padding is cut off
    deep = chain((10, 10, 1), layers.Conv2D(1, 7, name="conv1"),
                 layers.Conv2D(1, 3, name="conv2"))  # receptive field 9 of 10 pixels
    np.testing.assert_array_equal(receptive_patch(image, deep, "conv2", 1, 1),
                                  image[1:10, 1:10])


# --------------------------------------------------------------------------- occlusion


def test_occlusion_map_tracks_the_region_the_model_looks_at():
    # The model only sees the top-left 4x4 corner: logit(class 0) = 0.25 * (sum of it),
    # logit(class 1) = 0. On an image of ones p(class 0) = sigmoid(0.25 * visible pixels).
    dense = layers.Dense(2, name="fc")
    model = chain((8, 8, 1), layers.Cropping2D(((0, 4), (0, 4))), layers.Flatten(), dense,
                  layers.Softmax())
    weights = np.zeros((16, 2), "float32")
    weights[:, 0] = 0.25
    dense.set_weights([weights, np.zeros(2, "float32")])
    image = np.ones((8, 8, 1), "float32")
    heat = occlusion_map(model, image, 0, patch=4, stride=2, fill=0.0)
    assert heat.shape == (3, 3)  # corners at 0, 2, 4 in each direction
    assert np.all((heat >= 0) & (heat <= 1))
    covered = np.array([[16, 8, 0], [8, 4, 0], [0, 0, 0]])  # corner pixels under the patch
    expected = 1 / (1 + np.exp(-0.25 * (16 - covered)))
    np.testing.assert_allclose(heat, expected, rtol=1e-5)
    assert heat[0, 0] < heat[2, 2]  # hiding what the model looks at lowers its confidence


def test_occlusion_map_counts_patch_positions(models):
    heat = occlusion_map(models["zfnet_small"], random_images((32, 32, 3)), 3, patch=8, stride=4,
                         batch_size=16)
    assert heat.shape == (7, 7)  # (32 - 8) / 4 + 1 positions per side
    assert np.all((heat >= 0) & (heat <= 1))


def test_plot_occlusion_centres_the_colours_on_the_unoccluded_probability():
    picture = np.random.default_rng(0).integers(0, 256, (20, 20, 3)).astype("uint8")
    heat = np.linspace(0.2, 0.9, 16, dtype="float32").reshape(4, 4)
    fig = plot_occlusion(picture, heat, 0.7, patch=8, stride=4, class_name="cat")
    try:
        overlay = fig.axes[1].images[-1]
        assert overlay.get_cmap().name == "RdBu_r"
        assert overlay.norm.vcenter == pytest.approx(0.7)
        assert overlay.norm.halfrange == pytest.approx(0.5)  # 0.2 is the farthest from 0.7
        # Cell (0, 0) is centred on the first square's centre, pixel 3.5; cells are 4 px.
        assert overlay.get_extent() == pytest.approx([1.5, 17.5, 17.5, 1.5])
        assert "p(cat)" in fig.axes[1].get_title()
    finally:
        plt.close(fig)


def test_plot_projections_draws_a_projection_and_a_patch_row_per_map(models):
    model = models["zfnet_67"]
    images = random_images((2, 67, 67, 3))
    units = [(c, Activation(i, 1, 1, 1.0)) for c in (4, 7) for i in (0, 1)]
    fig = plot_projections(model, "conv2", units, images[[0, 1, 0, 1]], images)
    try:
        assert len(fig.axes) == 2 * 2 * 2  # 2 maps x (projection, patch) x 2 images
        field = {r["name"]: r["receptive_field"] for r in layer_table(model)}["conv2"]
        assert fig.axes[0].images[0].get_array().shape[:2] == (field, field)
        assert fig.axes[0].get_ylabel().startswith("map 4")
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- first layers


def test_dead_filters_counts_faint_ones():
    kernel = np.ones((3, 3, 2, 4), "float32") * np.array([1.0, 1.0, 0.05, 0.5])
    assert dead_filters(kernel) == 0.25
    assert dead_filters(kernel, fraction=0.6) == 0.5


def test_aliased_energy_of_smooth_rough_and_random_filters():
    grid = np.arange(7) - 3.0
    smooth = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / 4.0)[..., None, None]
    rough = ((-1.0) ** (grid[:, None] + grid[None, :]))[..., None, None]  # 0.5 cycles/px
    kernel = np.concatenate([smooth, rough, np.zeros_like(smooth)], axis=-1)
    shares = aliased_energy(kernel, stride=2)
    assert shares[0] < 0.05 and shares[1] > 0.9 and shares[2] == 0.0
    assert aliased_energy(kernel, stride=1)[0] == 0.0  # stride 1 holds every frequency
    # White noise spreads its energy evenly: about 1 - 1/s**2 lies beyond 1/(2s).
    noise = np.random.default_rng(0).normal(size=(11, 11, 3, 400))
    for stride in (2, 4):
        assert aliased_energy(noise, stride).mean() == pytest.approx(1 - stride**-2, abs=0.03)
    with pytest.raises(ValueError, match="smaller than"):
        aliased_energy(noise, 4, size=8)


def test_plot_first_layers_shows_filters_on_one_scale():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(7, 7, 3, 6)).astype("float32")
    kernel[..., 5] *= 0.01  # one dead filter
    fig = plot_first_layers({"a": (kernel, 2), "b": (kernel[..., :1, :], 4)}, columns=3)
    try:
        assert len(fig.axes) == 4
        tiles = fig.axes[0].images[0].get_array()
        assert tiles.shape == (2 * 8 - 1, 3 * 8 - 1, 3)  # 2 rows x 3 filters, 1 px gaps
        last = tiles[8:15, 16:23]  # the weakest filter comes last, flat grey
        assert np.abs(np.asarray(last) - 0.5).max() < 0.01
        assert "dead 17%" in fig.axes[0].get_title()
        assert fig.axes[1].images[0].get_array().ndim == 2  # one channel: grey
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- bad input


def twelve_pixel_model() -> keras.Model:
    """12 x 12 x 3 -> c1 (4 maps, 10 x 10) -> pool (5 x 5) -> c2 (5 maps, same padding)."""
    return chain((12, 12, 3), layers.Conv2D(4, 3, activation="relu", name="c1"),
                 layers.MaxPooling2D(2), layers.Conv2D(5, 3, padding="same",
                                                       activation="relu", name="c2"))


@pytest.fixture(scope="module")
def twelve():
    model = twelve_pixel_model()
    images = random_images((2, 12, 12, 3))
    return model, images, model.predict(images, verbose=0)  # predicted once, as a student has


@pytest.mark.parametrize("shape", [(12, 12, 3), (2, 3, 12, 12), (2, 12, 12), (2, 12, 12, 1),
                                   (0, 12, 12, 3)])
def test_a_projection_of_badly_shaped_images_is_refused_and_the_model_still_works(twelve,
                                                                                   shape):
    model, images, before = twelve
    with pytest.raises(ValueError, match="non-empty batch|shaped like the model's input"):
        project(model, "c2", random_images(shape), 1)
    np.testing.assert_allclose(model.predict(images, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_a_projection_that_fails_while_predicting_gives_the_weights_back(twelve,
                                                                         monkeypatch):
    # On JAX `predict` detaches the weights while it runs; the projector shares the model's.
    model, images, before = twelve

    def broken(*args):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr("course_lib.visualize._backward", broken)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        project(model, "c2", images, 1)
    np.testing.assert_allclose(model.predict(images, verbose=0), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [4, 7, -1, 2.9, [1, 4], True])
def test_project_refuses_channels_the_layer_does_not_have(twelve, channels):
    model, images, _ = twelve
    with pytest.raises(ValueError, match=r"channel must be in 0\.\.3"):
        project(model, "c1", images, channels)


def test_project_refuses_bad_batch_sizes_switches_and_channel_counts(twelve):
    model, images, _ = twelve
    for size in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1"):
            project(model, "c2", images, 1, batch_size=size)
    with pytest.raises(ValueError, match="strongest_only must be True or False, not 'no'"):
        project(model, "c2", images, 1, strongest_only="no")
    with pytest.raises(ValueError, match=r"one map, or one per image \(2\)"):
        project(model, "c2", images, [0, 1, 2])


def test_top_activations_refuses_one_images_maps_and_counts_below_one():
    maps = random_images((5, 5, 2))
    with pytest.raises(ValueError, match=r"\(images, H, W, C\), not \(5, 5, 2\).*maps\[None\]"):
        top_activations(maps)
    for count in (0, -1, 2.5):
        with pytest.raises(ValueError, match="count must be a whole number of at least 1"):
            top_activations(maps[None], count=count)


def test_receptive_patch_refuses_units_images_and_layers_it_cannot_cut():
    image = np.arange(100, dtype="float32").reshape(10, 10, 1)
    model = chain((10, 10, 1), layers.Conv2D(1, 3, strides=2, name="conv"))  # 4 x 4 units
    for row in (99, 4):
        with pytest.raises(ValueError, match=r"row must be in 0\.\.3"):
            receptive_patch(image, model, "conv", row, 0)
    for col in (-1, 1.5):
        with pytest.raises(ValueError, match="col must be a whole number of at least 0"):
            receptive_patch(image, model, "conv", 0, col)
    for shape in ((1, 10, 10, 1), (1, 10, 10), (10, 10)):
        with pytest.raises(ValueError, match=r"shaped like the model's input, \(10, 10, 1\)"):
            receptive_patch(np.zeros(shape), model, "conv", 0, 0)
    with pytest.raises(ValueError, match="has no layer 'zz'"):
        receptive_patch(image, model, "zz", 0, 0)


def corner_model(softmax=True, outputs=1) -> keras.Model:
    """8 x 8 x 1 -> 2 classes, from the top-left 4 x 4 corner (see the occlusion test)."""
    x = inputs = keras.Input((8, 8, 1))
    x = layers.Dense(2)(layers.Flatten()(layers.Cropping2D(((0, 4), (0, 4)))(x)))
    x = layers.Softmax()(x) if softmax else x
    return keras.Model(inputs, [x] * outputs)


def test_occlusion_map_refuses_bad_squares_images_and_models():
    model, image = corner_model(), np.ones((8, 8, 1), "float32")
    for name, options in (("patch", {"patch": 0}), ("patch", {"patch": -2}),
                          ("stride", {"stride": 0}), ("stride", {"stride": 1.5})):
        with pytest.raises(ValueError, match=f"{name} must be a whole number of at least 1"):
            occlusion_map(model, image, 0, **options)
    with pytest.raises(ValueError, match=r"patch \(9 px\) must fit in the 8 x 8 image"):
        occlusion_map(model, image, 0, patch=9)
    for shape in ((1, 8, 8, 1), (1, 8, 8)):
        with pytest.raises(ValueError, match=r"shaped like the model's input, \(8, 8, 1\)"):
            occlusion_map(model, np.ones(shape), 0, patch=4)
    for label in (2, -1):
        with pytest.raises(ValueError, match=r"label must be"):
            occlusion_map(model, image, label, patch=4)
    with pytest.raises(ValueError, match="must have one output"):
        occlusion_map(corner_model(outputs=2), image, 0, patch=4)
    logits = corner_model(softmax=False)
    logits.layers[-1].set_weights([np.full((16, 2), 0.25, "float32"), np.zeros(2, "float32")])
    with pytest.raises(ValueError, match="not probabilities; the model must end in a softmax"):
        occlusion_map(logits, image, 0, patch=4)


def test_plot_occlusion_refuses_percentages_and_squares_that_do_not_match_the_map():
    picture = np.zeros((20, 20, 3), "uint8")
    heat = np.full((4, 4), 0.5, "float32")  # patch 8, stride 4 on 20 px: 4 positions
    for unoccluded in (50, float("nan"), -0.1, "0.5"):
        with pytest.raises(ValueError, match=r"unoccluded must be a probability in \[0, 1\]"):
            plot_occlusion(picture, heat, unoccluded, patch=8, stride=4)
    for patch, stride in ((8, 2), (4, 4), (30, 4)):
        with pytest.raises(ValueError, match=r"shaped \(.*\), not \(4, 4\): pass the patch"):
            plot_occlusion(picture, heat, 0.5, patch=patch, stride=stride)
    with pytest.raises(ValueError, match="stride must be a whole number of at least 1"):
        plot_occlusion(picture, heat, 0.5, patch=8, stride=0)
    assert not plt.get_fignums()  # refused before drawing anything


def test_plot_projections_refuses_the_dict_and_uneven_units(models):
    model = models["zfnet_67"]
    images = random_images((2, 67, 67, 3))
    found = {4: [Activation(0, 1, 1, 1.0)], 7: [Activation(1, 1, 1, 1.0)]}
    with pytest.raises(ValueError, match="not the dict that top_activations returns"):
        plot_projections(model, "conv2", found, images, images)
    uneven = [(4, Activation(0, 1, 1, 1.0)), (4, Activation(1, 1, 1, 1.0)),
              (7, Activation(0, 1, 1, 1.0))]
    with pytest.raises(ValueError, match="the same number per channel"):
        plot_projections(model, "conv2", uneven, images[[0, 1, 0]], images)
    assert not plt.get_fignums()


def test_dead_filters_of_an_all_zero_kernel_nan_weights_and_bad_fractions():
    assert dead_filters(np.zeros((3, 3, 2, 4))) == 1.0  # every filter dead
    kernel = np.ones((3, 3, 2, 4))
    kernel[0, 0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite weights"):
        dead_filters(kernel)
    for fraction in (2, -1, 0, float("nan"), "0.1"):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            dead_filters(np.ones((3, 3, 2, 4)), fraction=fraction)
    assert dead_filters(np.ones((3, 3, 2, 4)), fraction=1) == 0.0


def test_aliased_energy_refuses_a_stride_below_one():
    for stride in (0, -2, 1.5):
        with pytest.raises(ValueError, match="stride must be a whole number of at least 1"):
            aliased_energy(np.ones((3, 3, 1, 2)), stride)
