import keras
import pytest

from course_lib import analysis


@pytest.fixture(scope="module")
def vgg16():
    return keras.applications.VGG16(weights=None)


def test_vgg16_multiply_adds_and_parameters(vgg16):
    rows = analysis.layer_table(vgg16)
    assert analysis.count_macs(vgg16) == 15_470_264_320
    assert sum(row["params"] for row in rows) == vgg16.count_params() == 138_357_544
    fc1 = next(row for row in rows if row["name"] == "fc1")
    assert fc1["macs"] == 25_088 * 4_096 and fc1["neurons"] == 4_096


def test_vgg16_receptive_fields(vgg16):
    fields = {row["name"]: row["receptive_field"] for row in analysis.layer_table(vgg16)}
    # Three 3x3 convolutions see 7x7, the paper's argument for stacking small filters.
    assert [fields[f"block3_conv{i}"] - fields["block2_pool"] for i in (1, 2, 3)] == [8, 16, 24]
    assert fields["block1_conv2"] == 5 and fields["block5_pool"] == 212
    assert fields["fc1"] is None  # a dense layer sees the whole image
    assert analysis.receptive_field(vgg16, "block4_pool") == 100


def test_depthwise_and_dag_models():
    mobilenet = keras.applications.MobileNet(weights=None)
    assert analysis.count_macs(mobilenet) == 568_740_352  # the paper's "569 million"
    resnet = keras.applications.ResNet50(weights=None)
    assert analysis.count_macs(resnet) == 3_857_973_248  # the paper's "3.8 billion"
    rows = analysis.layer_table(resnet)
    assert sum(row["params"] for row in rows) == resnet.count_params()
    assert analysis.receptive_field(resnet, "conv5_block3_out") == 483


def test_grouped_convolution_costs_a_fraction():
    inputs = keras.Input((8, 8, 16))
    dense = keras.Model(inputs, keras.layers.Conv2D(32, 3, name="c")(inputs))
    grouped = keras.Model(inputs, keras.layers.Conv2D(32, 3, groups=4, name="c")(inputs))
    assert analysis.count_macs(dense) == 6 * 6 * 32 * 3 * 3 * 16
    assert analysis.count_macs(grouped) * 4 == analysis.count_macs(dense)


def test_branches_take_the_larger_field_and_padding_moves_the_centre():
    inputs = keras.Input((32, 32, 3))
    small = keras.layers.Conv2D(4, 3, padding="same", name="small")(inputs)
    large = keras.layers.Conv2D(4, 5, strides=2, padding="same", name="large")(inputs)
    small = keras.layers.MaxPooling2D(2, name="pool")(small)
    merged = keras.layers.Concatenate(name="merge")([small, large])
    model = keras.Model(inputs, merged)
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    assert rows["small"]["receptive_field"] == 3 and rows["small"]["start"] == 0.5
    # TensorFlow's "same" pads 1 pixel before and 2 after here, so the centre moves by 1.
    assert rows["large"]["receptive_field"] == 5 and rows["large"]["start"] == 1.5
    assert rows["pool"]["receptive_field"] == 4 and rows["pool"]["jump"] == 2
    assert rows["merge"]["receptive_field"] == 5


def test_sequential_models_and_the_printed_table():
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.MaxPooling2D(name="pool"), keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, name="fc"),
    ])
    rows = analysis.layer_table(model)
    assert [row["neurons"] for row in rows] == [26 * 26 * 8, 13 * 13 * 8, 1352, 10]
    assert [row["receptive_field"] for row in rows] == [3, 4, None, None]
    text = analysis.format_table(rows)
    assert "26x26x8" in text and f"{26 * 26 * 8 * 9:,}" in text
    assert text.splitlines()[-1].startswith("total")
    assert "parameters" in analysis.summarize(model)


def test_unknown_layer_name_is_a_clear_error(vgg16):
    with pytest.raises(ValueError, match="no layer 'conv9'"):
        analysis.receptive_field(vgg16, "conv9")
