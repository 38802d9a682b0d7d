"""VGG (Simonyan & Zisserman 2015): Table 1's configurations, Table 2's parameter counts,
Section 3.1's start from configuration A."""

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table, shapes_only
from course_lib.layers import LocalResponseNormalization
from course_lib.models import build, vgg

# Exact parameters at 224 px with 1000 classes; Table 2 gives them in millions.
PARAMS = {
    "vgg_a": (132_863_336, 133),
    "vgg_a_lrn": (132_863_336, 133),
    "vgg_b": (133_047_848, 133),
    "vgg_c": (133_638_952, 134),
    "vgg_d": (138_357_544, 138),  # keras.applications.VGG16's count
    "vgg_e": (143_667_240, 144),  # keras.applications.VGG19's count
}
WEIGHT_LAYERS = {"vgg_a": 11, "vgg_a_lrn": 11, "vgg_b": 13, "vgg_c": 16, "vgg_d": 16,
                 "vgg_e": 19}  # fmt: skip


@pytest.mark.parametrize("name", PARAMS)
def test_parameters_match_table_2(name):
    with shapes_only():  # counted, never run
        model = build(name)
    exact, millions = PARAMS[name]
    assert model.count_params() == exact
    assert round(exact / 1e6) == millions
    weighted = [layer for layer in model.layers if layer.weights]
    config = model.name[4:].upper().replace("_", "-")  # vgg_a_lrn -> A-LRN
    assert len(weighted) == WEIGHT_LAYERS[name] == vgg.depth(config)
    assert model.get_layer("pool5").output.shape[1:] == (7, 7, 512)
    del model


def test_vgg16_layers_macs_and_fc6():
    with shapes_only():
        model = build("vgg16")
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["image", "conv1_1", "conv1_2", "pool1"]
    assert names[-7:] == ["flatten", "fc6", "drop6", "fc7", "drop7", "fc8", "predictions"]
    assert model.get_layer("fc6").count_params() == 102_764_544  # 7*7*512*4096 + 4096
    assert count_macs(model) == 15_470_264_320


def test_configuration_c_has_1x1_convolutions_and_a_lrn_one_norm():
    c = build("vgg_c", input_shape=(32, 32, 3), width=0.125)
    assert [c.get_layer(f"conv{b}_3").kernel_size for b in (3, 4, 5)] == [(1, 1)] * 3
    lrn = build("vgg_a_lrn", input_shape=(32, 32, 3), width=0.125)
    norms = [layer for layer in lrn.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in norms] == ["norm1"]
    assert lrn.layers[lrn.layers.index(norms[0]) - 1].name == "conv1_1"


def test_small_variant_for_32_px():
    model = build("vgg11", input_shape=(32, 32, 3), num_classes=10, width=0.25, dense=512)
    rows = {row["name"]: row["output_shape"][1:] for row in layer_table(model)}
    assert rows["conv1_1"] == (32, 32, 16) and rows["pool5"] == (1, 1, 128)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, 10)
    with pytest.raises(ValueError, match="at least 32 x 32"):
        build("vgg11", input_shape=(31, 32, 3))


def test_initialise_from_a_copies_section_3_1s_layers_only():
    options = dict(input_shape=(32, 32, 3), num_classes=10, width=0.125, dense=64)
    a, d = build("vgg_a", **options), build("vgg_d", **options)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in d.layers}
    vgg.initialise_from(a, d)
    for layer in d.layers:
        if layer.name in vgg.FROM_SHALLOW:
            for ours, theirs in zip(layer.get_weights(), a.get_layer(layer.name).get_weights(),
                                    strict=True):
                np.testing.assert_array_equal(ours, theirs)
        else:
            for ours, old in zip(layer.get_weights(), before[layer.name], strict=True):
                np.testing.assert_array_equal(ours, old)
    # the first four convolutions of A are conv1_1, conv2_1, conv3_1 and conv3_2
    convs = [layer.name for layer in a.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[:4] == list(vgg.FROM_SHALLOW[:4])


def test_initialise_from_refuses_other_shapes_before_copying():
    a = build("vgg_a", input_shape=(32, 32, 3), num_classes=10, width=0.125, dense=64)
    d = build("vgg_d", input_shape=(32, 32, 3), num_classes=10, width=0.25, dense=64)
    kept = d.get_layer("conv1_1").get_weights()[0].copy()
    with pytest.raises(ValueError, match="conv1_1"):
        vgg.initialise_from(a, d)
    np.testing.assert_array_equal(d.get_layer("conv1_1").get_weights()[0], kept)
    with pytest.raises(ValueError, match="no layer 'conv9_9'"):
        vgg.initialise_from(a, d, names=("conv9_9",))


@pytest.mark.parametrize(
    "options, word",
    [(dict(config="F"), "config"), (dict(weights="cifar"), "weights"),
     (dict(width=0), "width"), (dict(dense=0), "dense"), (dict(dropout=1), "dropout")],
)  # fmt: skip
def test_refuses_wrong_arguments(options, word):
    with pytest.raises(ValueError, match=word):
        vgg.VGG(input_shape=(32, 32, 3), **options)


@pytest.mark.parametrize(
    "name, options, word",
    [("vgg_a", {}, "D and E only"), ("vgg16", dict(input_shape=(32, 32, 3)), "input_shape"),
     ("vgg16", dict(num_classes=10), "num_classes"), ("vgg19", dict(width=0.5), "width"),
     ("vgg16", dict(dense=1024), "dense")],
)  # fmt: skip
def test_imagenet_weights_only_at_the_papers_size(name, options, word):
    with pytest.raises(ValueError, match=word):  # refused before anything is built
        build(name, weights="imagenet", **options)
