"""The list of models `build` knows: filled by `@register(name)` in each model's module.

As in timm's ``@register_model``, nothing else keeps a list: the decorator next to a builder
is the only place a name is written down.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import keras
import numpy as np

# name -> (builder, options that name fixes); filled by `register`, read by `build`.
REGISTRY: dict[str, tuple[Callable[..., keras.Model], dict]] = {}


def register(name: str, **fixed):
    """Decorator: ``build(name)`` calls the decorated builder with the options `fixed`.

    Stack it to offer one builder under several names, each with its own options::

        @register("vgg16", config="D")
        @register("vgg11", config="A")
        def VGG(config="D", input_shape=(224, 224, 3), num_classes=1000): ...

    A name is registered once: a second builder, or the same one again, is an error. Only
    a new run of the same definition (a notebook cell run twice, a module reloaded)
    replaces it.
    """
    key = name.lower()

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if key in REGISTRY:
            taken = REGISTRY[key][0]
            if taken is builder or _origin(taken) != _origin(builder):
                raise ValueError(f"{key!r} is already registered, by {_origin(taken)}")
        REGISTRY[key] = (builder, fixed)
        return builder

    return decorator


def _origin(builder) -> str:
    return f"{builder.__module__}.{builder.__qualname__}"


def available() -> list[str]:
    """The names `build` accepts, sorted."""
    return sorted(REGISTRY)


def entry(name: str) -> tuple[Callable[..., keras.Model], dict]:
    """The builder registered as `name` (case-insensitive) and the options it fixes."""
    key = name.lower() if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available())}")
    return REGISTRY[key]


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The input `build(name)` takes unless told otherwise (its paper's), read from its
    builder's signature: nothing is built."""
    return tuple(inspect.signature(entry(name)[0]).parameters["input_shape"].default)


def build(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    **options,
) -> keras.Model:
    """Build the model registered as `name` (case-insensitive).

    `input_shape` and `num_classes` default to the paper's (None keeps the builder's own
    default); every other keyword goes to the builder, e.g. ``width=0.25``.
    """
    builder, fixed = entry(name)
    if clash := sorted(fixed.keys() & options.keys()):
        raise ValueError(f"{name.lower()!r} fixes {', '.join(clash)}; build its builder to "
                         "change them")
    if input_shape is not None:
        options["input_shape"] = input_shape
    if num_classes is not None:
        options["num_classes"] = num_classes
    # NumPy's numbers (labels.max() + 1 is one) as Python's, which Keras's layers take
    options = {key: value.item() if isinstance(value, np.generic) else value
               for key, value in options.items()}
    return builder(**fixed, **options)
