"""Pieces several families share: width scaling, a Caffe-style stem, the fc6-fc8 head, checks.

A family imports what it needs from here and never from another family, so that each
model's module shows its paper and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from keras import layers

from course_lib.config import flag, is_number, is_whole


def scaled(filters: int, width: float, multiple: int = 1) -> int:
    """`filters * width`, rounded to a multiple of `multiple` (the groups), at least one."""
    return max(multiple, round(filters * width / multiple) * multiple)


def stem_conv(x, filters: int, kernel: int, stride: int, padding: int, *, name: str):
    """conv1: a ReLU convolution with Caffe-style explicit zero padding on every side."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, activation="relu", name=name)(x)


def fully_connected(x, units: int, dropout: float, *, block: int):
    """fc{block} with ReLU, then dropout drop{block} on its output (AlexNet, Section 4.2)."""
    x = layers.Dense(units, activation="relu", name=f"fc{block}")(x)
    return layers.Dropout(dropout, name=f"drop{block}")(x)


def classifier(x, num_classes: int, *, units: int, dropout: float):
    """AlexNet's head: flatten -> fc6 -> drop6 -> fc7 -> drop7 -> fc8 -> predictions.

    "predictions" is a float32 softmax, so the model stays numerically safe under mixed
    precision (bfloat16 layers before it).
    """
    x = layers.Flatten(name="flatten")(x)
    x = fully_connected(x, units, dropout, block=6)
    x = fully_connected(x, units, dropout, block=7)
    x = layers.Dense(num_classes, name="fc8")(x)
    return layers.Activation("softmax", dtype="float32", name="predictions")(x)


def smallest_input(windows: Iterable[tuple[int, int, int | str]]) -> int:
    """The smallest image side that leaves one pixel after `windows`, by arithmetic.

    `windows` are the network's convolutions and pools in order, each (kernel, stride,
    padding) along one side, padding "valid", "same" or the zeros added (both ends
    together). A window turns n pixels into floor((n + padding - kernel) / stride) + 1, so
    m outputs need (m - 1) * stride + kernel - padding inputs ("same": (m - 1) * stride + 1);
    walking back from one pixel after the last window gives the answer.
    """
    side = 1
    for kernel, stride, padding in reversed(list(windows)):
        if padding == "same":
            side = (side - 1) * stride + 1
        else:
            side = (side - 1) * stride + kernel - (0 if padding == "valid" else padding)
        side = max(side, 1)
    return side


class InputTooSmall(ValueError):
    """An input smaller than a network's stem and pools can take; `smallest` is the side."""

    def __init__(self, message: str, smallest: int):
        super().__init__(message)
        self.smallest = smallest


def check_input(input_shape, smallest: int, *, model: str) -> tuple[int, int, int]:
    """`input_shape` as a tuple, once it is (height, width, channels) of whole numbers >= 1
    with both sides at least `smallest` (`model` names the network in the error).

    Any number of channels (1 for Fashion-MNIST) and non-square inputs are accepted: the
    networks slide their windows the same way along both sides.
    """
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(is_whole(side) and side >= 1 for side in shape):
        raise ValueError(
            f"input_shape must be (height, width, channels), whole numbers >= 1; "
            f"got {input_shape!r}"
        )
    if shape[0] in (1, 3) and shape[2] not in (1, 3):
        raise ValueError(
            f"input_shape {shape} looks channels-first: Keras' layers take (height, width, "
            f"channels), e.g. {(*shape[1:], shape[0])}")
    if min(shape[:2]) < smallest:
        raise InputTooSmall(
            f"{model} needs an input of at least {smallest} x {smallest} px; got "
            f"{shape[0]} x {shape[1]} (input_shape is (height, width, channels))",
            smallest,
        )
    return tuple(int(side) for side in shape)


def check_options(*, num_classes, width, dense=None, dropout=0.0, flags=None,
                  **counts) -> None:
    """Refuse impossible options by name, before Keras fails deep inside a layer.

    `num_classes`, `dense` (when given) and each of `counts` (e.g. ``towers=2``) must be
    whole numbers >= 1, `width` a finite number > 0, `dropout` a rate in [0, 1), and each
    of `flags` (e.g. ``{"lrn": lrn}``) True or False: ``lrn="False"`` would mean yes.
    """
    for name, value in (flags or {}).items():
        flag(name, value)
    counts = {"num_classes": num_classes, **({} if dense is None else {"dense": dense}), **counts}
    for name, value in counts.items():
        if not (is_whole(value) and value >= 1):
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
        if not isinstance(value, int):  # Keras's layers refuse NumPy's integers obscurely
            raise ValueError(f"{name} must be a Python int, not {type(value).__name__}: pass "
                             f"int({name}) (models.build converts it)")
    if not (is_number(width) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a finite number > 0; got {width!r}")
    check_rate("dropout", dropout)


def check_rate(name: str, value) -> None:
    """Refuse a dropout rate outside [0, 1), naming the option."""
    if not (is_number(value) and 0 <= value < 1):
        raise ValueError(f"{name} must be a rate in [0, 1); got {value!r}")


def check_choice(name: str, value, choices) -> None:
    """Refuse a `value` that is not a key of `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")

