"""The course's figures: built without errors, holding what they claim to hold."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from course_lib import models, plots  # noqa: E402


def row(name, shape, field, jump, start):
    return {"name": name, "output_shape": shape, "receptive_field": field, "jump": jump,
            "start": start}


# AlexNet's conv1, pool1 and pool5 on 227 px, and a dense layer without a receptive field.
ALEXNET_ROWS = [row("conv1", (None, 55, 55, 96), 11, 4, 5.5),
                row("pool1", (None, 27, 27, 96), 19, 8, 9.5),
                row("pool5", (None, 6, 6, 256), 195, 32, 97.5),
                row("fc6", (None, 4096), None, None, None)]


def test_receptive_fields_draws_one_square_per_layer_around_the_centre():
    image = np.zeros((227, 227, 3), np.uint8)
    fig = plots.plot_receptive_fields(image, ALEXNET_ROWS, title="AlexNet")
    squares = [p for p in fig.axes[0].patches if isinstance(p, plt.Rectangle)]
    assert len(squares) == 3
    assert [s.get_width() for s in squares] == [11, 19, 195]
    # The central unit (27 of 55, 13 of 27) looks at pixels 108..118 and 104..122: centred.
    assert [s.get_xy() for s in squares[:2]] == [(107.5, 107.5), (103.5, 103.5)]
    plt.close(fig)


def test_receptive_fields_are_inside_a_padded_canvas_in_distinct_colours():
    # pool5's window of the unit nearest the centre starts at the image's edge (pixel 0).
    fig = plots.plot_receptive_fields(np.zeros((227, 227, 3), np.uint8), ALEXNET_ROWS)
    ax = fig.axes[0]
    (left, right), (bottom, top) = ax.get_xlim(), ax.get_ylim()
    squares = ax.patches
    assert squares[2].get_xy() == (-0.5, -0.5)  # on the border: the canvas must go further
    for square in squares:
        x, y = square.get_xy()
        assert left < x - 5 and x + square.get_width() + 5 < right
        assert top < y - 5 and y + square.get_height() + 5 < bottom
    colours = [to_rgba(s.get_edgecolor()) for s in squares]
    assert len(set(colours)) == len(colours)
    assert all(len(set(np.round(c[:3], 2))) > 1 for c in colours)  # no grey
    assert squares[0].get_linestyle() != squares[1].get_linestyle()
    plt.close(fig)


def test_history_ticks_whole_epochs_only():
    history = {"loss": [2.0, 1.5, 1.2], "accuracy": [0.3, 0.5, 0.6],
               "val_loss": [1.8, 1.4, 1.1], "val_accuracy": [0.35, 0.55, 0.62]}
    fig = plots.plot_history(history)
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks == [1, 2, 3]
    plt.close(fig)


def test_filters_by_tower_draws_one_framed_panel_per_tower():
    kernel = np.random.default_rng(0).normal(size=(11, 11, 3, 8)).astype("float32")
    fig = plots.plot_filters_by_tower(kernel, towers=2, columns=4, notes=["a", "b"])
    assert len(fig.axes) == 2 and len(fig.patches) == 2
    texts = [t.get_text() for t in fig.texts]
    assert texts == ["tower 1 (GPU 1), filters 0-3: a", "tower 2 (GPU 2), filters 4-7: b"]
    mosaic = fig.axes[0].images[0].get_array()
    side = 22  # 11 pixels, enlarged twice
    assert mosaic.shape == (side, 4 * (side + 1) - 1, 3)  # four filters, three 1-px gaps
    assert (mosaic[:, side] == 1).all()  # the first gap is white
    assert mosaic.min() >= 0 and mosaic.max() <= 1
    plt.close(fig)
    grey = plots.plot_filters_by_tower(kernel[:, :, :1], towers=2)
    assert grey.axes[0].images[0].get_array().ndim == 2
    plt.close(grey)


def test_towers_follow_the_groups_of_the_model():
    model = models.build("alexnet", input_shape=(67, 67, 3), num_classes=10, width=0.125,
                         dense=32)
    fig = plots.plot_towers(model)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    # The image, two halves of conv1-conv5, fc6 and fc7, and one fc8.
    assert len(boxes) == 1 + 2 * 7 + 1
    texts = [t.get_text() for t in ax.texts]
    assert "conv2: 16 filters 5x5\nmaps 7x7" in texts  # 256 x 0.125 = 32, over 2 towers
    red = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None
           and to_rgba(a.arrow_patch.get_edgecolor()) == to_rgba("tab:red")]
    # conv3, fc6 and fc7 read both halves above (4 arrows each), fc8 both halves (2).
    assert len(red) == 3 * 4 + 2
    plt.close(fig)


def test_image_grid_refuses_one_image_and_draws_a_batch_of_one():
    image = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(ValueError, match=r"images must be a batch, not one image \(20, 30, 3\)"):
        plots.image_grid(image)
    fig = plots.image_grid([image], columns=2)
    assert [ax.images[0].get_array().shape for ax in fig.axes if ax.images] == [(20, 30, 3)]
    plt.close(fig)


def test_bars_with_a_repeated_label_each_get_their_own_slot():
    for horizontal in (True, False):
        fig = plots.plot_bars(["conv", "conv", "dense"], [1, 5, 2], horizontal=horizontal)
        ax = fig.axes[0]
        bars = ax.patches
        ends = [b.get_y() if horizontal else b.get_x() for b in bars]
        assert len(set(np.round(ends, 6))) == 3  # three places, not two
        ticks = ax.get_yticklabels() if horizontal else ax.get_xticklabels()
        labels = [t.get_text() for t in ticks]
        assert sorted(labels) == ["conv", "conv", "dense"]
        if horizontal:  # the first value on top, with its label
            top = max(bars, key=lambda b: b.get_y())
            assert top.get_width() == 1 and labels[int(np.argmax(ax.get_yticks()))] == "conv"
        plt.close(fig)
    with pytest.raises(ValueError, match="2 labels for 3 values"):
        plots.plot_bars(["a", "b"], [1, 2, 3])


def test_towers_of_a_sequential_model():
    import keras

    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="conv1"),
                              keras.layers.MaxPooling2D(2, name="pool1"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="fc")])
    fig = plots.plot_towers(model)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "pool1, flat" in texts
    plt.close(fig)


def test_history_refuses_a_keras_history_a_string_and_unknown_metrics():
    import keras

    history = {"loss": [2.0, 1.5], "accuracy": [0.3, 0.5], "val_loss": [1.8, 1.4],
               "run": {"seconds": 3.0}}
    keras_history = keras.callbacks.History()
    keras_history.history = history
    with pytest.raises(ValueError, match="pass history.history"):
        plots.plot_history(keras_history)
    with pytest.raises(ValueError, match=r"a list of names, e.g. \['loss'\], not 'loss'"):
        plots.plot_history(history, metrics="loss")
    with pytest.raises(ValueError, match=r"no metric \['acuracy'\]: it has \['loss', 'accuracy'\]"):
        plots.plot_history(history, metrics=["loss", "acuracy"])
    fig = plots.plot_history(history, metrics=["accuracy"])
    assert len(fig.axes) == 1
    plt.close(fig)
