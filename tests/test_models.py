"""AlexNet and ZFNet: the papers' integers, the small variants, the registry."""

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table
from course_lib.layers import LocalResponseNormalization
from course_lib.models import available, build

# bvlc_alexnet on 227 x 227: layer -> (neurons, multiply-adds, receptive field).
ALEXNET = {
    "conv1": (290_400, 105_415_200, 11),  # 55 x 55 x 96, 11 * 11 * 3 per output
    "pool1": (69_984, 0, 19),  # 27 x 27 x 96
    "conv2": (186_624, 223_948_800, 51),  # 27 x 27 x 256, 5 * 5 * 48 per output
    "pool2": (43_264, 0, 67),  # 13 x 13 x 256
    "conv3": (64_896, 149_520_384, 99),  # 13 x 13 x 384, 3 * 3 * 256 per output
    "conv4": (64_896, 112_140_288, 131),  # 13 x 13 x 384, 3 * 3 * 192 per output
    "conv5": (43_264, 74_760_192, 163),  # 13 x 13 x 256, 3 * 3 * 192 per output
    "pool5": (9_216, 0, 195),  # 6 x 6 x 256
    "fc6": (4_096, 37_748_736, None),
    "fc7": (4_096, 16_777_216, None),
    "fc8": (1_000, 4_096_000, None),
}
ALEXNET_LAYERS = (
    "conv1 norm1 pool1 conv2 norm2 pool2 conv3 conv4 conv5 pool5 flatten "
    "fc6 drop6 fc7 drop7 fc8 predictions"
).split()
# ZFNet on 224 x 224, Figure 3: layer -> (map side, channels, multiply-adds, receptive field).
ZFNET = {
    "conv1": (110, 96, 170_755_200, 7),  # 7 * 7 * 3 per output
    "pool1": (55, 96, 0, 11),
    "norm1": (55, 96, 0, 11),
    "conv2": (26, 256, 415_334_400, 27),  # 5 * 5 * 96 per output
    "pool2": (13, 256, 0, 43),
    "norm2": (13, 256, 0, 43),
    "conv3": (13, 384, 149_520_384, 75),  # 3 * 3 * 256 per output
    "conv4": (13, 384, 224_280_576, 107),  # 3 * 3 * 384 per output
    "conv5": (13, 256, 149_520_384, 139),  # 3 * 3 * 384 per output
    "pool5": (6, 256, 0, 171),
}


@pytest.fixture(scope="module")
def alexnet_table():
    model = build("alexnet")
    return model, {row["name"]: row for row in layer_table(model)}


@pytest.fixture(scope="module")
def zfnet_table():
    model = build("zfnet")
    return model, {row["name"]: row for row in layer_table(model)}


def test_alexnet_parameters_and_total_macs(alexnet_table):
    model, _ = alexnet_table
    assert model.input_shape == (None, 227, 227, 3)
    assert model.output_shape == (None, 1000)
    assert model.count_params() == 60_965_224
    assert count_macs(model) == 724_406_816


@pytest.mark.parametrize("name", ALEXNET)
def test_alexnet_layer_neurons_macs_receptive_field(alexnet_table, name):
    _, rows = alexnet_table
    row = rows[name]
    assert (row["neurons"], row["macs"], row["receptive_field"]) == ALEXNET[name]


def test_alexnet_layer_names_and_towers(alexnet_table):
    model, _ = alexnet_table
    assert [layer.name for layer in model.layers[1:]] == ALEXNET_LAYERS
    groups = [model.get_layer(f"conv{i}").groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]  # the towers talk at conv3 only
    assert isinstance(model.get_layer("norm1"), LocalResponseNormalization)
    assert model.get_layer("drop6").rate == model.get_layer("drop7").rate == 0.5
    assert keras.backend.standardize_dtype(model.get_layer("predictions").dtype) == "float32"


def test_caffenet_pools_before_normalizing():
    model = build("alexnet", caffenet=True)
    names = [layer.name for layer in model.layers[1:7]]
    assert names == ["conv1", "pool1", "norm1", "conv2", "pool2", "norm2"]
    assert model.get_layer("norm1").output.shape == (None, 27, 27, 96)
    assert model.count_params() == 60_965_224


def test_alexnet_without_lrn_or_towers():
    assert not any(layer.name.startswith("norm") for layer in build("alexnet", lrn=False).layers)
    # One tower: conv2, conv4 and conv5 see all channels, 307,200 + 663,552 + 442,368 more.
    assert build("alexnet", towers=1).count_params() == 62_378_344


def test_zfnet_parameters_and_total_macs(zfnet_table):
    model, _ = zfnet_table
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.count_params() == 62_357_608
    assert count_macs(model) == 1_168_032_896


@pytest.mark.parametrize("name", ZFNET)
def test_zfnet_map_sizes_macs_receptive_field(zfnet_table, name):
    _, rows = zfnet_table
    side, channels, macs, field = ZFNET[name]
    row = rows[name]
    assert row["output_shape"] == (None, side, side, channels)
    assert (row["macs"], row["receptive_field"]) == (macs, field)


def test_zfnet_dense_layers(zfnet_table):
    _, rows = zfnet_table
    dense = ("fc6", "fc7", "fc8")
    assert [rows[name]["params"] for name in dense] == [37_752_832, 16_781_312, 4_097_000]
    assert [rows[name]["macs"] for name in dense] == [37_748_736, 16_777_216, 4_096_000]


def test_registry():
    assert {"alexnet", "zfnet"} <= set(available())
    assert available() == sorted(available())
    with pytest.raises(ValueError, match="alexnet"):
        build("lenet-9000")
    with pytest.raises(ValueError, match="stem"):
        build("alexnet", stem="tiny")


# The recommended small setting for 32 px images (both models).
SMALL_OPTIONS = dict(num_classes=10, width=0.25, dense=512, stem="small")
# (model, input shape, options) of small variants the course trains on a CPU. They share
# most weight shapes: on JAX each new shape costs a compilation of the initializer.
SMALL = [
    ("alexnet", (32, 32, 3), dict(stem="small")),
    ("alexnet", (32, 32, 1), dict(stem="small", caffenet=True)),  # Fashion-MNIST
    ("alexnet", (67, 67, 3), dict(stem="imagenet")),  # the paper's stem, smallest input
    ("alexnet", (64, 64, 3), dict(stem="small", lrn=False)),
    ("zfnet", (32, 32, 3), dict(stem="small")),
    ("zfnet", (64, 64, 3), dict(stem="imagenet")),
]


@pytest.mark.parametrize("name, input_shape, options", SMALL)
def test_small_variants_run(name, input_shape, options):
    model = build(name, input_shape=input_shape, **{**SMALL_OPTIONS, **options})
    x = np.random.default_rng(0).uniform(size=(2, *input_shape)).astype("float32")
    y = model.predict(x, verbose=0)  # one compiled graph: much faster than eager on JAX
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_recommended_small_alexnet_shape():
    model = build("alexnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    sides = {row["name"]: row["output_shape"][1:] for row in layer_table(model)}
    assert sides["conv1"] == (32, 32, 24)
    assert sides["pool1"] == (15, 15, 24)
    assert sides["conv5"] == (7, 7, 64)
    assert sides["pool5"] == (3, 3, 64)
    assert model.count_params() == 707_818
    assert [model.get_layer(n).groups for n in ("conv2", "conv4", "conv5")] == [2, 2, 2]


def test_recommended_small_zfnet_shape():
    model = build("zfnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    names = ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")
    sides = [model.get_layer(name).output.shape[1] for name in names]
    assert sides == [32, 16, 6, 3, 3, 1]
    assert model.count_params() == 533_994


def test_save_and_reload_gives_identical_outputs(tmp_path):
    model = build("alexnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.get_layer("norm2"), LocalResponseNormalization)
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


def test_mixed_precision_keeps_float32_predictions():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build("alexnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    finally:
        keras.config.set_dtype_policy(policy)
    assert keras.backend.standardize_dtype(model.get_layer("norm1").compute_dtype) == "bfloat16"
    x = np.random.default_rng(2).uniform(size=(2, 32, 32, 3)).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
