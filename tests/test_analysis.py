import math

import keras
import numpy as np
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


# --------------------------------------------------------------------------- every call


def test_a_layer_called_twice_counts_each_call():
    conv = keras.layers.Conv2D(4, 3, name="conv")  # one set of weights, two inputs
    big, small = keras.Input((8, 8, 3)), keras.Input((6, 6, 3))
    model = keras.Model([big, small], [conv(big), conv(small)])
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    assert rows["conv"]["macs"] == 6 * 6 * 4 * 27
    assert rows["conv (call 2)"]["macs"] == 4 * 4 * 4 * 27  # that call's own shapes
    assert rows["conv (call 2)"]["output_shape"] == (None, 4, 4, 4)
    assert (rows["conv"]["params"], rows["conv (call 2)"]["params"]) == (4 * 27 + 4, 0)
    assert sum(row["params"] for row in rows.values()) == model.count_params()


def test_shapes_only_counts_without_drawing_and_forgets_the_weights():
    from keras.src.backend.common import global_state  # what shapes_only empties

    def build():
        inputs = keras.Input((8, 8, 3))
        return keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Conv2D(4, 3)(inputs)))

    with analysis.shapes_only():
        counted = build()
        waiting = list(global_state.get_global_attribute("uninitialized_variables"))
    assert len(waiting) == 4  # conv and dense kernels and biases: shapes, no values yet
    assert global_state.get_global_attribute("uninitialized_variables") == [], (
        "Keras renamed its list of undrawn weights: update analysis._forget_undrawn_weights")
    assert counted.count_params() == 3 * 3 * 3 * 4 + 4 + 4 * 5 + 5
    assert analysis.count_macs(counted) == 6 * 6 * 4 * 27 + 6 * 6 * 5 * 4
    later = build()  # afterwards, models are built as usual
    assert later.predict(np.zeros((1, 8, 8, 3), "float32"), verbose=0).shape == (1, 6, 6, 5)


def test_keras_graph_internals_are_where_calls_expects_them():
    # analysis._calls is the one place that reads Keras' private graph. If this test
    # fails, Keras changed it: update _calls, not the rest of the module.
    message = "Keras changed its internal graph API: update course_lib.analysis._calls"
    inputs = keras.Input((8, 8, 4))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
    hidden = conv(inputs)
    outputs = conv(hidden)
    model = keras.Model(inputs, outputs)
    calls = analysis._calls(model)
    found = [(layer.name, [id(x) for x in ins], [id(x) for x in outs])
             for layer, ins, outs in calls]
    expected = [(model.layers[0].name, [], [id(inputs)]), ("conv", [id(inputs)], [id(hidden)]),
                ("conv", [id(hidden)], [id(outputs)])]
    assert found == expected, message


# --------------------------------------------------------------------------- nested models


def test_a_model_inside_a_model_is_counted_layer_by_layer():
    base = keras.applications.MobileNet(include_top=False, weights=None, pooling="avg",
                                        input_shape=(224, 224, 3))
    model = keras.Sequential([keras.Input((224, 224, 3)), base,
                              keras.layers.Dense(10, name="fc")])
    # MobileNet's 568,740,352 less its 1x1 classifier (1024 x 1000), plus fc (1024 x 10).
    assert analysis.count_macs(model) == 568_740_352 - 1_024_000 + 10_240 == 567_726_592
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    assert sum(row["params"] for row in rows.values()) == model.count_params()
    alone = {row["name"]: row for row in analysis.layer_table(base)}
    inner = rows["mobilenet_1.00_224/conv_pw_13_relu"]
    assert inner["receptive_field"] == alone["conv_pw_13_relu"]["receptive_field"]
    assert rows["mobilenet_1.00_224/conv1"]["macs"] == alone["conv1"]["macs"]


def test_a_nested_model_takes_its_callers_geometry_and_sizes():
    inner = keras.Sequential([keras.Input((None, None, 4)),  # built for any size
                              keras.layers.Conv2D(4, 3, name="conv")], name="inner")
    inputs = keras.Input((17, 17, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, name="stem")(inputs)  # 8 x 8, jump 2
    model = keras.Model(inputs, inner(x))
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    conv = rows["inner/conv"]
    assert conv["output_shape"] == (None, 6, 6, 4) and conv["macs"] == 6 * 6 * 4 * 36
    assert (conv["receptive_field"], conv["jump"], conv["start"]) == (7, 2, 3.5)
    assert sum(row["params"] for row in rows.values()) == model.count_params()


# --------------------------------------------------------------------------- refusals


class Scale(keras.layers.Layer):
    """A custom layer with a kernel and no counting rule."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=input_shape[-1:], initializer="ones")

    def call(self, x):
        return x * self.kernel


@pytest.mark.parametrize("make, shape", [
    (lambda: keras.layers.Embedding(100, 8, name="embedding"), (10,)),
    (lambda: keras.layers.LSTM(8, name="lstm"), (10, 4)),
    (lambda: Scale(name="scale"), (8, 8, 3)),
])
def test_a_layer_with_weights_and_no_rule_is_refused(make, shape):
    layer = make()
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    kind = type(layer).__name__
    with pytest.raises(ValueError, match=rf"'{layer.name}' \({kind}\).*add a rule in "
                                         r"course_lib\.analysis"):
        analysis.count_macs(model)


def test_attention_with_two_inputs_is_refused():
    inputs = keras.Input((10, 8))
    model = keras.Model(inputs, keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs))
    with pytest.raises(ValueError, match=r"'mha' \(MultiHeadAttention\).*add a rule"):
        analysis.layer_table(model)


def test_normalisation_and_weightless_layers_cost_nothing():
    from course_lib.layers import LocalResponseNormalization

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(name="bn")(inputs)  # weights, no MACs: a rule
    x = LocalResponseNormalization(name="lrn")(x)  # no weights
    x = keras.layers.Lambda(lambda t: 2 * t, name="double")(x)  # no weights, no rule
    model = keras.Model(inputs, x)
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    assert [rows[name]["macs"] for name in ("bn", "lrn", "double")] == [0, 0, 0]
    assert rows["lrn"]["receptive_field"] == 1
    assert rows["double"]["receptive_field"] is None  # nothing known about its geometry


def test_models_that_cannot_be_walked_say_what_to_do():
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match=r"not built.*keras\.Input"):
        analysis.layer_table(unbuilt)

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed.*functional API"):
        analysis.layer_table(net)


def test_unknown_sizes_and_channels_first_are_refused():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv")(inputs))
    with pytest.raises(ValueError, match=r"unknown size.*keras\.Input"):
        analysis.count_macs(model)
    inputs = keras.Input((3, 8, 8))
    conv = keras.layers.Conv2D(4, 3, data_format="channels_first", name="conv")
    model = keras.Model(inputs, conv(inputs))
    with pytest.raises(ValueError, match=r"'conv' \(Conv2D\).*channels_first"):
        analysis.count_macs(model)


# --------------------------------------------------------------------------- geometry


def test_non_square_windows_give_one_value_per_axis():
    inputs = keras.Input((16, 12, 3))
    x = keras.layers.Conv2D(4, (1, 7), name="row")(inputs)
    x = keras.layers.Conv2D(4, (7, 1), name="column")(x)
    x = keras.layers.Conv2D(4, (3, 1), strides=(2, 1), name="strided")(x)
    rows = {row["name"]: row for row in analysis.layer_table(keras.Model(inputs, x))}
    assert rows["row"]["receptive_field"] == (1, 7) and rows["row"]["jump"] == 1
    assert rows["column"]["receptive_field"] == 7 and rows["column"]["start"] == 3.5
    assert rows["strided"]["receptive_field"] == (9, 7) and rows["strided"]["jump"] == (2, 1)
    assert "9x7" in analysis.format_table(list(rows.values()))


def test_upsampling_divides_the_jump():
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(1, 3, strides=2, name="down")(inputs)  # field 3, jump 2
    up = keras.layers.Conv2DTranspose(1, 3, strides=2, name="up")(x)
    nearest = keras.layers.UpSampling2D(2, name="nearest")(x)
    rows = {row["name"]: row for row in analysis.layer_table(keras.Model(inputs, [up, nearest]))}
    assert [rows["up"][key] for key in ("receptive_field", "jump", "start")] == [5, 1, 0.5]
    assert [rows["nearest"][key] for key in ("receptive_field", "jump", "start")] == [4, 1, 1]


def test_dense_on_a_feature_map_works_position_by_position():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Dense(5, name="fc")(x)
    rows = {row["name"]: row for row in analysis.layer_table(keras.Model(inputs, x))}
    assert rows["fc"]["macs"] == 6 * 6 * 4 * 5
    assert rows["fc"]["receptive_field"] == 3 and rows["fc"]["jump"] == 1


def test_branches_must_agree_on_their_jump():
    inputs = keras.Input((16, 16, 3))
    fine = keras.layers.Conv2D(4, 3, padding="same", name="fine")(inputs)
    fine = keras.layers.Cropping2D(((0, 8), (0, 8)), name="crop")(fine)  # 8 x 8, jump 1
    coarse = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="coarse")(inputs)
    merged = keras.layers.Concatenate(name="merge")([fine, coarse])  # 8 x 8, jump 2
    with pytest.raises(ValueError, match=r"'merge'.*jump"):
        analysis.layer_table(keras.Model(inputs, merged))


def test_layers_that_move_pixels_without_a_rule_have_no_field():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    resized = keras.layers.Resizing(12, 12, name="resize")(x)
    swapped = keras.layers.Permute((2, 1, 3), name="permute")(x)
    stacked = keras.layers.Concatenate(axis=1, name="stack")([x, x])
    model = keras.Model(inputs, [resized, swapped, stacked])
    rows = {row["name"]: row for row in analysis.layer_table(model)}
    assert [rows[name]["receptive_field"] for name in ("resize", "permute", "stack")] == [
        None, None, None]


# --------------------------------------------------------------------------- brute force
# The receptive field measured, not derived: with every weight 1 and no bias, an output
# unit is positive exactly when its window holds the one input pixel that is 1. One
# forward pass over every one-pixel image gives, for each unit, the pixels it sees.

L = keras.layers
ONES = {"kernel_initializer": "ones", "use_bias": False}
SEPARABLE = {"depthwise_initializer": "ones", "pointwise_initializer": "ones", "use_bias": False}


def chain(*layers):
    def build(x):
        for layer in layers:
            x = layer(x)
        return x
    return build


def union(x):  # windows [i, i+3) and [i+3, i+4): together [i, i+4)
    left = L.Conv2D(1, 3, **ONES)(L.Cropping2D(((0, 1), (0, 1)))(x))
    right = L.Cropping2D(((3, 0), (3, 0)))(x)
    return L.Concatenate()([left, right])


def shortcut(x):  # ResNet's projection: the 1x1 shortcut and the 3x3 path added
    path = L.Conv2D(1, 3, strides=2, padding="same", **ONES)(x)
    return L.Add()([path, L.Conv2D(1, 1, strides=2, **ONES)(x)])


def shared(x):
    conv = L.Conv2D(1, 3, strides=(2, 1), **ONES)
    return conv(conv(x))


def nested(x):
    inner = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(1, 3, **ONES),
                              L.MaxPooling2D(2)])
    return L.Conv2D(1, 1, **ONES)(inner(L.Conv2D(1, 3, strides=2, **ONES)(x)))


# name: (input size, builder, slack): slack None means every window is exact. After
# upsampling by s with a kernel k, neighbouring units see unevenly spaced windows, and the
# table's evenly spaced ones are wider than the widest true one by ((k - 1) mod s) / s of
# the input's jump: the slack.
CASES = {
    "conv valid": ((13, 11), chain(L.Conv2D(1, 3, **ONES)), None),
    "conv same, strided, even": ((13, 11), chain(L.Conv2D(1, (3, 4), strides=(2, 3),
                                                          padding="same", **ONES)), None),
    "conv dilated": ((17, 15), chain(L.Conv2D(1, 3, dilation_rate=(2, 3), padding="same",
                                              **ONES), L.Conv2D(1, 3, strides=2, **ONES)), None),
    "max pooling": ((15, 12), chain(L.Conv2D(1, 3, strides=2, **ONES),
                                    L.MaxPooling2D(3, strides=2, padding="same")), None),
    "average pooling": ((13, 11), chain(L.AveragePooling2D((2, 3), padding="same"),
                                        L.Conv2D(1, 3, **ONES)), None),
    "zero padding": ((13, 11), chain(L.ZeroPadding2D(((2, 1), (0, 3))),
                                     L.Conv2D(1, 3, strides=2, **ONES)), None),
    "cropping": ((13, 11), chain(L.Cropping2D(((1, 2), (3, 0))),
                                 L.Conv2D(1, 3, strides=2, **ONES)), None),
    "depthwise": ((13, 11), chain(L.DepthwiseConv2D(3, strides=2, padding="same",
                                                    depthwise_initializer="ones",
                                                    use_bias=False)), None),
    "separable": ((17, 13), chain(L.SeparableConv2D(1, (5, 3), dilation_rate=2,
                                                    **SEPARABLE)), None),
    "branches of different fields": ((12, 10), union, None),
    "residual shortcut": ((13, 12), shortcut, None),
    "a layer called twice": ((17, 9), shared, None),
    "a model inside a model": ((17, 14), nested, None),
    "dense per position": ((9, 8), chain(L.Conv2D(2, 3, **ONES), L.Dense(1, **ONES)), None),
    "transposed valid": ((13, 11), chain(L.Conv2D(1, 3, strides=2, **ONES),
                                         L.Conv2DTranspose(1, 3, strides=2, **ONES)), 0),
    "transposed same": ((9, 8), chain(L.Conv2DTranspose(1, 4, strides=2, padding="same",
                                                        **ONES), L.Conv2D(1, 3, **ONES)), 0.5),
    "transposed odd": ((9, 8), chain(L.Conv2DTranspose(1, (5, 3), strides=(3, 2),
                                                       output_padding=(1, 0), **ONES)), 1 / 3),
    "transposed dilated": ((9, 8), chain(L.Conv2DTranspose(1, 3, strides=1, dilation_rate=2,
                                                           padding="same", **ONES)), None),
    "transposed same, output padding": ((9, 8), chain(L.Conv2DTranspose(
        1, (4, 3), strides=(2, 3), padding="same", output_padding=(1, 1), **ONES)), 2 / 3),
    "upsampling nearest": ((13, 11), chain(L.Conv2D(1, 3, strides=2, **ONES),
                                           L.UpSampling2D((2, 3))), 4 / 3),
    "upsampling bilinear": ((9, 8), chain(L.UpSampling2D((2, 3), interpolation="bilinear"),
                                          L.Conv2D(1, 3, strides=2, **ONES)), 2 / 3),
    "1-D causal, dilated": ((31,), chain(L.Conv1D(1, 3, padding="causal", dilation_rate=2,
                                                  **ONES), L.MaxPooling1D(2),
                                         L.ZeroPadding1D((1, 0)),
                                         L.Conv1D(1, 3, strides=2, padding="same", **ONES)), None),
    "1-D upsampling": ((15,), chain(L.Conv1D(1, 3, strides=2, **ONES), L.UpSampling1D(3),
                                    L.Cropping1D((1, 2))), 4 / 3),
    "3-D": ((9, 7, 6), chain(L.Conv3D(1, (3, 2, 3), strides=(2, 1, 1), padding="same",
                                      **ONES), L.MaxPooling3D(2)), None),
}


def measured_windows(model, size):
    """Per output unit and axis, the first and one-past-last input pixel it sees."""
    count = math.prod(size)
    impulses = np.eye(count, dtype="float32").reshape(count, *size, 1)
    outputs = keras.ops.convert_to_numpy(model(impulses))
    seen = (outputs.max(axis=-1) > 1e-6).reshape(*size, *outputs.shape[1:-1])
    windows = []
    for axis in range(len(size)):
        others = tuple(a for a in range(len(size)) if a != axis)
        along = seen.any(axis=others) if others else seen  # (size[axis], *unit grid)
        first = along.argmax(axis=0)
        last = size[axis] - along[::-1].argmax(axis=0)
        windows.append((first, last, along.any(axis=0)))
    return windows


@pytest.mark.parametrize("case", CASES)
def test_receptive_fields_match_brute_force(case):
    size, build, slack = CASES[case]
    inputs = keras.Input((*size, 1))
    model = keras.Model(inputs, build(inputs))
    row = analysis.layer_table(model)[-1]
    assert row["output_shape"] == model.output_shape
    for axis, (first, last, sees) in enumerate(measured_windows(model, size)):
        field, jump, start = (np.broadcast_to(np.asarray(row[key], float), (len(size),))[axis]
                              for key in ("receptive_field", "jump", "start"))
        units = np.arange(first.shape[axis]).reshape([-1 if a == axis else 1
                                                      for a in range(len(size))])
        low, high = start + units * jump - field / 2, start + units * jump + field / 2
        low, high = np.broadcast_to(low, first.shape), np.broadcast_to(high, first.shape)
        # Every unit's true window lies inside the table's window (units that see only
        # padding, such as output_padding's, see no pixel) ...
        assert np.all((low <= first + 1e-9) & (last <= high + 1e-9) | ~sees), (case, axis)
        # ... and units whose table window lies inside the image see all of it: every one
        # of them, or after upsampling the widest, less the slack.
        inside = (low >= 0) & (high <= size[axis]) & sees
        assert inside.any(), f"{case}: no unit away from the edges, make the input larger"
        widths = last[inside] - first[inside]
        if slack is None:
            assert np.all(widths == field), (case, axis)
        else:
            assert field - slack - 1e-9 <= widths.max() <= field, (case, axis)


# --------------------------------------------------------------------------- the call sites


def test_receptive_patch_and_plot_follow_each_axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib import plots
    from course_lib.visualize import receptive_patch

    image = np.arange(48, dtype="float32").reshape(6, 8, 1)
    inputs = keras.Input((6, 8, 1))
    model = keras.Model(inputs, L.Conv2D(1, (1, 3), strides=(1, 2), name="conv")(inputs))
    patch = receptive_patch(image, model, "conv", 2, 1)  # row 2, columns 2-4
    np.testing.assert_array_equal(patch, image[2:3, 2:5])
    fig = plots.plot_receptive_fields(image, analysis.layer_table(model)[1:])
    (square,) = fig.axes[0].patches
    assert (square.get_width(), square.get_height()) == (3, 1)
    plt.close(fig)


@pytest.mark.parametrize("norm, field", [
    (keras.layers.GroupNormalization(groups=2), None),
    (keras.layers.LayerNormalization(axis=[1, 2, 3]), None),
    (keras.layers.UnitNormalization(axis=[1, 2]), None), (keras.layers.Softmax(axis=1), None),
    (keras.layers.LayerNormalization(), 3), (keras.layers.Softmax(), 3),
    (keras.layers.UnitNormalization(axis=-1), 3)])
def test_normalisations_along_positions_see_the_whole_input(norm, field):
    """A unit after a normalisation over the image's rows depends on every row: brute force
    agrees with the field the table gives (None: the whole input)."""
    inputs = keras.Input((16, 16, 4))
    outputs = norm(keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    model = keras.Model(inputs, outputs)
    assert analysis.receptive_field(model, norm.name) == field
    image = np.random.default_rng(0).normal(size=(1, 16, 16, 4)).astype("float32")
    nudged = image.copy()
    nudged[0, 0] += 1.0  # the top row only
    change = np.abs(model.predict(nudged, verbose=0) - model.predict(image, verbose=0))
    assert (change[0, 8].max() > 1e-6) == (field is None)  # a unit of the middle row


@pytest.mark.parametrize("side", [None, 8])
def test_a_shared_inner_model_counts_its_weights_once(side):
    """An inner model built for any size is copied for each call's size (`_sized`): the
    copies' weights are the same weights, counted once (they were counted per call)."""
    inner_input = keras.Input((side, side, 3))
    inner = keras.Model(inner_input, keras.layers.Conv2D(4, 3)(inner_input), name="inner")
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    model = keras.Model([a, b], keras.layers.Concatenate()([inner(a), inner(b)]))
    rows = analysis.layer_table(model)
    assert sum(row["params"] for row in rows) == model.count_params() == 112
