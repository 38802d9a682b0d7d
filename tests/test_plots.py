"""The course's figures: built without errors, holding what they claim to hold."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from course_lib import plots  # noqa: E402


def row(name, shape, field, jump, start):
    return {"name": name, "output_shape": shape, "receptive_field": field, "jump": jump,
            "start": start}


def test_receptive_fields_draws_one_square_per_layer_around_the_centre():
    # AlexNet's conv1 and pool1 on 227 px, and a dense layer that has no receptive field.
    rows = [row("conv1", (None, 55, 55, 96), 11, 4, 5.5),
            row("pool1", (None, 27, 27, 96), 19, 8, 9.5),
            row("fc6", (None, 4096), None, None, None)]
    image = np.zeros((227, 227, 3), np.uint8)
    fig = plots.plot_receptive_fields(image, rows, title="AlexNet")
    squares = [p for p in fig.axes[0].patches if isinstance(p, plt.Rectangle)]
    assert len(squares) == 2
    assert [s.get_width() for s in squares] == [11, 19]
    # The central unit (27 of 55, 13 of 27) looks at pixels 108..118 and 104..122: centred.
    assert [s.get_xy() for s in squares] == [(107.5, 107.5), (103.5, 103.5)]
    plt.close(fig)
