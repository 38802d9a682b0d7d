"""The papers' networks, by name: ``build("alexnet")`` or ``build("zfnet", width=0.25)``.

Each model lives in its own module as a functional builder (``alexnet.alexnet``, ...) whose
defaults are the paper's. To add a model, write its module and add one line to `BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from course_lib.models.alexnet import alexnet
from course_lib.models.zfnet import zfnet

BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "alexnet": alexnet,
    "zfnet": zfnet,
}


def available() -> list[str]:
    """The names `build` accepts, sorted."""
    return sorted(BUILDERS)


def build(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    **options,
) -> keras.Model:
    """Build the model called `name` (case-insensitive).

    `input_shape` and `num_classes` default to the paper's (None keeps the builder's own
    default); every other keyword goes to the builder, e.g. ``width=0.25``.
    """
    key = name.lower()
    if key not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available())}")
    if input_shape is not None:
        options["input_shape"] = tuple(input_shape)
    if num_classes is not None:
        options["num_classes"] = num_classes
    return BUILDERS[key](**options)


__all__ = ["BUILDERS", "alexnet", "available", "build", "zfnet"]
