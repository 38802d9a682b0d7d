"""All-CNN (Springenberg et al. 2015): the twelve networks of Tables 1 and 2, exactly."""

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table
from course_lib.models import allcnn, build

# Parameters of each network on 32 x 32 x 3 with 10 classes, by hand from Table 1:
#   3x3 conv 3->96: 2,688   3x3 96->96: 83,040   3x3 96->192: 166,080
#   3x3 192->192: 331,968   5x5 3->96: 7,296     5x5 96->192: 460,992
#   1x1 96->96: 9,312       1x1 192->192: 37,056 1x1 192->10: 1,930
# Model C = 2,688 + 83,040 + 166,080 + 331,968 + 331,968 + 37,056 + 1,930 = 954,730; the
# strided variant has the same layers; convpool and allcnn add a 3x3 96->96 and a 3x3
# 192->192 (83,040 + 331,968 = 415,008): 1,369,738.
PARAMS = {
    "A": (839_242, 1_254_250),  # (model = strided, convpool = allcnn)
    "B": (885_610, 1_300_618),
    "C": (954_730, 1_369_738),
}
VARIANT_NAMES = {"model": "model", "strided": "strided_cnn", "convpool": "convpool_cnn",
                 "allcnn": "allcnn"}  # fmt: skip


@pytest.mark.parametrize("base", PARAMS)
@pytest.mark.parametrize("variant", allcnn.VARIANTS)
def test_parameters(base, variant):
    model = build(f"{VARIANT_NAMES[variant]}_{base.lower()}")
    small, large = PARAMS[base]
    assert model.count_params() == (large if variant in ("convpool", "allcnn") else small)
    assert model.name == f"{VARIANT_NAMES[variant]}_{base.lower()}"
    assert model.output_shape == (None, 10)
    # every variant ends on 6 x 6 class maps, averaged
    assert model.get_layer("global_pool").input.shape[1:] == (6, 6, 10)


def sides(model):
    return {row["name"]: row["output_shape"][1:] for row in layer_table(model)}


def test_allcnn_c_layers_sizes_and_dropout():
    model = build("allcnn_c")
    names = [layer.name for layer in model.layers]
    assert names == ("image drop0 conv1 conv2 conv3 drop1 conv4 conv5 conv6 drop2 conv7 "
                     "conv8 conv9 global_pool predictions").split()
    size = sides(model)
    assert [size[f"conv{n}"] for n in range(1, 10)] == [
        (32, 32, 96), (32, 32, 96), (16, 16, 96), (16, 16, 192), (16, 16, 192),
        (8, 8, 192), (6, 6, 192), (6, 6, 192), (6, 6, 10)]  # fmt: skip
    assert [model.get_layer(f"conv{n}").strides for n in (3, 6)] == [(2, 2), (2, 2)]
    assert model.get_layer("conv7").padding == "valid"
    assert model.get_layer("drop0").rate == 0.2  # Section 3.2: 20% on the input
    assert model.get_layer("drop1").rate == model.get_layer("drop2").rate == 0.5
    assert model.get_layer("conv9").activation.__name__ == "relu"  # Table 1: "10 ReLU"
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"


def test_the_four_variants_of_model_c():
    kinds = {v: [(k, kernel, f, s) for k, kernel, f, s, _ in allcnn.plan("C", v)]
             for v in allcnn.VARIANTS}
    pool = ("pool", 3, 96, 2)
    assert kinds["model"][:3] == [("conv", 3, 96, 1), ("conv", 3, 96, 1), pool]
    assert kinds["strided"][:2] == [("conv", 3, 96, 1), ("conv", 3, 96, 2)]  # pool gone
    assert kinds["convpool"][:4] == [("conv", 3, 96, 1)] * 3 + [pool]  # extra conv, pool
    assert kinds["allcnn"][:3] == [("conv", 3, 96, 1), ("conv", 3, 96, 1), ("conv", 3, 96, 2)]
    model = build("model_c")
    assert [type(model.get_layer(n)).__name__ for n in ("pool1", "pool2")] == ["MaxPooling2D"] * 2
    assert sides(model)["pool1"] == (16, 16, 96) and sides(model)["pool2"] == (8, 8, 192)
    strided = build("strided_cnn_c")
    assert not any("pool" in layer.name and "global" not in layer.name
                   for layer in strided.layers)
    assert count_macs(strided) < count_macs(model) < count_macs(build("allcnn_c"))


def test_model_b_strides_its_1x1_convolutions():
    strided = build("strided_cnn_b")
    assert strided.get_layer("conv2").kernel_size == (1, 1)
    assert strided.get_layer("conv2").strides == (2, 2)


def test_global_pool_is_the_mean_of_the_class_maps():
    model = build("allcnn_c", width=0.25)
    maps = keras.Model(model.inputs, model.get_layer("conv9").output)
    pooled = keras.Model(model.inputs, model.get_layer("global_pool").output)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(pooled.predict(x, verbose=0),
                               maps.predict(x, verbose=0).mean(axis=(1, 2)), rtol=1e-5)


def test_options_and_refusals():
    model = build("allcnn_c", input_shape=(28, 28, 1), num_classes=100, width=0.5,
                  input_dropout=0.0, dropout=0.25)
    assert model.output_shape == (None, 100)
    assert model.get_layer("conv1").filters == 48 and model.get_layer("conv9").filters == 100
    assert model.get_layer("drop0").rate == 0.0 and model.get_layer("drop1").rate == 0.25
    with pytest.raises(ValueError, match="input_dropout must be a rate"):
        build("allcnn_c", input_dropout=1.0)
    with pytest.raises(ValueError, match="^dropout must be a rate"):
        build("allcnn_c", dropout=-0.5)
    with pytest.raises(ValueError, match="variant"):
        allcnn.AllCNN(variant="pooled")
    with pytest.raises(ValueError, match="base"):
        allcnn.AllCNN(base="D")
    with pytest.raises(ValueError, match="at least 9 x 9"):
        build("allcnn_c", input_shape=(8, 8, 3))
    assert set(allcnn.SMALLEST_INPUT.values()) == {9}
