"""Zeiler & Fergus's tools for looking inside a trained convnet (arXiv 1311.2901).

- `project` projects one feature map's activation back to pixel space: which pattern in
  the image made this unit fire? By Zeiler & Fergus's deconvnet (Section 2.1, Figures 1
  and 2), by the plain gradient, or by guided backpropagation, the three backward passes
  Springenberg et al. compare (arXiv 1412.6806, Section 3.4, Figure 1); `plot_methods`
  shows them side by side.
- `top_activations` finds, in a layer's feature maps, the images (and the positions in
  them) that excite each map most, and `receptive_patch` cuts out the part of an image
  that one unit sees; `plot_projections` shows both side by side, as Figure 2 does.
- `occlusion_map` slides a grey square over an image and records the probability of the
  true class (Section 4.2, Figure 7): is the model looking at the object or at its context?
  `plot_occlusion` draws that map over the image.
- `dead_filters`, `aliased_energy` and `plot_first_layers` measure and show what Section
  4.1 saw in AlexNet's first layer: "dead" filters, and energy at frequencies that the
  layer's stride cannot sample (aliasing).

The projections work on chains of the layers AlexNet and ZFNet are made of: Conv2D (with
or without a fused ReLU, grouped or not), ReLU, MaxPooling2D, ZeroPadding2D, and
normalisation or dropout layers. The paper's deconvnet has three steps (unpool, rectify,
filter) and says nothing of the contrast normalisation in its network; passing it through
unchanged is our choice (see `PASS_THROUGH`), for all three methods. Everything is
written with `keras.ops`, so it runs on every Keras backend.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import NamedTuple

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops
from matplotlib.colors import CenteredNorm

from course_lib.analysis import layer_table, pair, same_padding
from course_lib.config import flag, is_number, whole_number
from course_lib.plots import tile

__all__ = [
    "METHODS", "Activation", "aliased_energy", "dead_filters", "occlusion_map",
    "plot_first_layers", "plot_methods", "plot_occlusion", "plot_projections", "project",
    "receptive_patch", "through_relu", "top_activations",
]  # fmt: skip

# Layers the projections walk back through unchanged. Section 2.1 lists only unpooling,
# rectification and filtering, so this is our choice, not the paper's. Local response
# normalisation divides each activation by a positive factor computed from its neighbours
# across maps: skipping it on the way down keeps every value's sign and position and only
# changes their relative sizes, and each projection is rescaled for display anyway.
# Dropout and noise layers do nothing at inference. Batch normalisation also shifts and
# may flip signs, so for it passing through is a rougher approximation.
PASS_THROUGH = (
    "LocalResponseNormalization", "BatchNormalization", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "Identity",
)  # fmt: skip

# How the signal crosses a ReLU on the way down (Springenberg et al., Figure 1).
METHODS = ("deconvnet", "gradient", "guided")


# --------------------------------------------------------------------------- projections


def project(model: keras.Model, layer_name: str, images, channels, *,
            method: str = "deconvnet", strongest_only: bool = True,
            batch_size: int = 32) -> np.ndarray:
    """Project feature maps of layer `layer_name` back to pixel space.

    `images` are inputs as the model sees them (normalised, N x H x W x C); `channels` is
    one feature map for all of them, or one per image. The forward pass records each
    layer's input and output and the max-pooling *switches*; then every activation of the
    layer is set to zero except those of the chosen map (and, when `strongest_only`, all
    but its strongest one), and the signal walks back down, layer by layer:

    - max-pooling -> *unpooling*: each value returns to the position its max came from;
    - convolution -> *transposed filtering*: the same kernel, transposed (no bias);
    - ReLU -> depends on `method`, the only place where the three differ (Springenberg
      et al., "Striving for Simplicity: The All Convolutional Net", arXiv 1412.6806,
      Section 3.4 and Figure 1):
      "deconvnet" (Zeiler & Fergus) rectifies the signal, relu(signal);
      "gradient" (Simonyan et al. 2014) keeps it where the forward ReLU let values
      through, signal * (output > 0), which makes the result value * d value / d image;
      "guided" (guided backpropagation) does both, relu(signal) * (output > 0).

    Layers in `PASS_THROUGH` are passed through unchanged by all three methods, so behind
    a normalisation layer "gradient" is not exactly the gradient. Returns an array shaped
    like `images`: what in each image the map responded to. Each call compiles the
    projection once, so project many images (and maps) in one call.
    """
    # Every check comes before the projector is built: it shares the model's weights.
    images = np.asarray(images, "float32")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch (N, H, W, C), not {images.shape}: "
                         "for one image, pass image[None]")
    _check_image(model, images[0], "each image")
    strongest_only = flag("strongest_only", strongest_only)
    batch_size = whole_number("batch_size", batch_size)
    chain = _chain(model, layer_name)
    channels = np.asarray(channels)
    maps = chain[-1].output.shape[-1]
    if channels.ndim > 1 or channels.size not in (1, len(images)):
        raise ValueError(f"channels must be one map, or one per image ({len(images)}), not "
                         f"shape {channels.shape}")
    if (not np.issubdtype(channels.dtype, np.integer) or channels.min() < 0
            or channels.max() >= maps):
        raise ValueError(f"channel must be in 0..{maps - 1} (whole numbers: {layer_name!r} "
                         f"has {maps} maps), not {channels.tolist()}")
    channels = np.broadcast_to(channels.astype("int32"), (len(images),))
    projection = Projection(chain, method, strongest_only)
    image_input = keras.Input(images.shape[1:], name="images")
    channel_input = keras.Input((), dtype="int32", name="channels")
    projector = keras.Model([image_input, channel_input],
                            projection(image_input, channel_input))
    # Pad to whole batches: every batch then has one shape, compiled once.
    batch_size = min(batch_size, len(images))
    extra = -len(images) % batch_size
    images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), "float32")])
    channels = np.concatenate([channels, np.zeros(extra, "int32")])
    # On JAX, `predict` detaches the weights while it runs and puts them back at the end;
    # if it fails (or is interrupted), they stay detached, and `model`, which shares them,
    # could not predict again: so they are put back here.
    weights = [variable.value for variable in projector.weights]
    try:
        with _quietly():
            result = projector.predict([images, channels], batch_size=batch_size, verbose=0)
    except BaseException:
        for variable, value in zip(projector.weights, weights, strict=True):
            variable.assign(value)
        raise
    return np.asarray(result[: len(result) - extra], "float32")


def _check_image(model: keras.Model, image, name: str = "image") -> np.ndarray:
    """`image` as an array, or a ValueError unless it is one image shaped like the model's
    input (H x W x C; a size of None in the model fits any size)."""
    image = np.asarray(image)
    expected = tuple(model.inputs[0].shape[1:])
    if image.ndim != len(expected) or any(
            size not in (None, got) for size, got in zip(expected, image.shape, strict=True)):
        raise ValueError(f"{name} must be shaped like the model's input, {expected} (height, "
                         f"width, channels), not {image.shape}")
    return image


class Projection(keras.layers.Layer):
    """`project`'s backward pass for one chain of layers, as a Keras layer.

    Wrapping it in a layer lets `Model.predict` compile the whole projection into one
    program (an XLA computation on JAX, a graph on TensorFlow) instead of running hundreds
    of small operations one at a time.
    """

    def __init__(self, chain: list, method: str = "deconvnet", strongest_only: bool = True,
                 **kwargs):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, "
                             f"not {method!r}")
        super().__init__(dtype="float32", **kwargs)
        self.chain = chain
        self.method = method
        self.strongest_only = strongest_only

    def call(self, images, channels):
        x = images
        inputs, outputs, switches = [], [], []
        for layer in self.chain:  # forward, remembering inputs, outputs and switches
            inputs.append(x)
            if type(layer).__name__ == "MaxPooling2D":
                x, switch = _max_pool_with_switches(x, layer)
            else:
                x, switch = ops.cast(layer(x), "float32"), None
            outputs.append(x)
            switches.append(switch)

        # Keep the chosen map of each image (and maybe only its strongest value).
        signal = x * ops.one_hot(channels, x.shape[-1], dtype="float32")[:, None, None, :]
        if self.strongest_only:
            flat = ops.reshape(ops.sum(signal, axis=-1), (-1, x.shape[1] * x.shape[2]))
            strongest = ops.one_hot(ops.argmax(flat, axis=-1), flat.shape[-1],
                                    dtype="float32")
            signal = signal * ops.reshape(strongest, (-1, x.shape[1], x.shape[2], 1))

        for layer, x_in, x_out, switch in zip(self.chain[::-1], inputs[::-1],
                                              outputs[::-1], switches[::-1], strict=True):
            signal = _backward(layer, signal, x_in, x_out, switch, self.method)
        return signal

    def compute_output_shape(self, images_shape, channels_shape):
        return images_shape


def _chain(model: keras.Model, layer_name: str) -> list:
    """The layers from the input up to `layer_name`, checked to form a supported chain."""
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}")
    chain = [layer for layer in model.layers[: names.index(layer_name) + 1]
             if type(layer).__name__ != "InputLayer"]
    previous = model.inputs[0]
    for layer in chain:
        if layer.input is not previous:
            raise ValueError(f"{layer.name!r} does not follow the layer before it: a "
                             "projection needs a plain chain of layers")
        if _kind(layer) is None:
            raise ValueError(f"a projection cannot walk back through {layer.name!r} "
                             f"({type(layer).__name__})")
        previous = layer.output
    return chain


def _kind(layer) -> str | None:
    """What a projection does with `layer`: conv, relu, pool, pad, pass; None if unknown."""
    kind = type(layer).__name__
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if kind == "Conv2D" and activation in ("relu", "linear"):
        if max(pair(layer.dilation_rate)) > 1:
            return None
        return "conv"
    if kind == "ReLU":  # a capped, leaky or shifted ReLU has other rules: refused
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return "relu" if plain else None
    if kind == "Activation" and activation == "relu":
        return "relu"
    if kind == "MaxPooling2D":
        return "pool"
    if kind == "ZeroPadding2D":
        return "pad"
    if kind in PASS_THROUGH:
        return "pass"
    return None


def _backward(layer, signal, x_in, x_out, switch, method: str):
    """One step down: from `layer`'s output space to its input space. `x_in` and `x_out`
    are the layer's forward input and output, `switch` its max-pooling switches."""
    kind = _kind(layer)
    height, width = x_in.shape[1:3]
    if kind == "conv":
        if layer.activation.__name__ == "relu":  # a fused ReLU: undone first
            signal = through_relu(signal, x_out, method)
        return _transposed_conv(signal, layer, (height, width))
    if kind == "relu":
        return through_relu(signal, x_out, method)
    if kind == "pool":
        return _unpool(signal, switch, layer, (height, width))
    if kind == "pad":
        (top, _), (left, _) = layer.padding
        return _place(signal, -top, -left, height, width)
    return signal  # normalisation, dropout: passed through


def through_relu(signal, output, method: str):
    """The signal's way back through a ReLU whose forward output was `output`: where the
    three methods of `project` differ (`method` one of `METHODS`)."""
    if method == "deconvnet":
        return ops.relu(signal)  # rectification: the signal stays non-negative
    opened = ops.cast(output > 0, "float32")  # where the forward pass let values through
    if method == "gradient":
        return signal * opened  # the ReLU's derivative
    return ops.relu(signal) * opened  # guided: both


def _place(x, top: int, left: int, height: int, width: int):
    """A height x width canvas with x[:, r, c] at (r + top, c + left); the rest is cropped
    away or zero. A negative `top` or `left` crops that many rows or columns first."""
    x = x[:, max(-top, 0):, max(-left, 0):]
    x = ops.pad(x, [(0, 0), (max(top, 0), 0), (max(left, 0), 0), (0, 0)])
    x = x[:, :height, :width]
    return ops.pad(x, [(0, 0), (0, height - x.shape[1]), (0, width - x.shape[2]), (0, 0)])


# --------------------------------------------------------------------------- the three steps


def _max_pool_with_switches(x, layer):
    """Max-pool `x` as `layer` (a MaxPooling2D) does, and record the *switches*.

    Each of the pool_h x pool_w positions of a window is one strided slice of the input;
    stacking them puts every window's candidates side by side, so the window's max is a
    `max` and its switch (which position held the max, 0 .. pool_h * pool_w - 1, the first
    one on a tie) an `argmax` over the last axis.
    """
    (pool_h, pool_w), (step_h, step_w) = pair(layer.pool_size), pair(layer.strides)
    height, width = x.shape[1:3]
    if layer.padding == "same":  # pad with -inf, as pooling does: padding never wins
        out_h, out_w = math.ceil(height / step_h), math.ceil(width / step_w)
        top = same_padding(height, out_h, pool_h, step_h)
        left = same_padding(width, out_w, pool_w, step_w)
        size_h, size_w = (out_h - 1) * step_h + pool_h, (out_w - 1) * step_w + pool_w
        x = ops.pad(x, [(0, 0), (top, size_h - height - top), (left, size_w - width - left),
                        (0, 0)], constant_values=-np.inf)
    else:
        out_h, out_w = (height - pool_h) // step_h + 1, (width - pool_w) // step_w + 1
    candidates = [
        x[:, i : i + (out_h - 1) * step_h + 1 : step_h, j : j + (out_w - 1) * step_w + 1 : step_w]
        for i in range(pool_h) for j in range(pool_w)
    ]  # fmt: skip
    stacked = ops.stack(candidates, axis=-1)  # (N, out_h, out_w, C, pool_h * pool_w)
    return ops.max(stacked, axis=-1), ops.argmax(stacked, axis=-1)


def _unpool(signal, switches, layer, input_size: tuple[int, int]):
    """Undo a max-pool with its switches: each window's value goes back to where its max
    was, everything else is zero. Where overlapping windows (3x3 pools, stride 2) share a
    max, their values add up, as gradients do.

    The put-back is a transposed convolution: a window's value, spread over its
    pool_h * pool_w positions as a one-hot vector (1 at the switch), is painted onto the
    input by "unit" filters, filter k being 1 at window position k and 0 elsewhere. Every
    channel is unpooled on its own, so channels are moved into the batch axis first.
    """
    (pool_h, pool_w), strides = pair(layer.pool_size), pair(layer.strides)
    height, width = input_size
    out_h, out_w, channels = signal.shape[1:]
    positions = pool_h * pool_w
    values = ops.one_hot(switches, positions, dtype="float32") * signal[..., None]
    values = ops.reshape(ops.transpose(values, (0, 3, 1, 2, 4)), (-1, out_h, out_w, positions))
    unit = ops.reshape(ops.eye(positions, dtype="float32"), (pool_h, pool_w, 1, positions))
    canvas = ops.conv_transpose(values, unit, strides, padding="valid", output_padding=0)
    canvas = ops.reshape(canvas, (-1, channels, canvas.shape[1], canvas.shape[2]))
    canvas = ops.transpose(canvas, (0, 2, 3, 1))
    top = left = 0
    if layer.padding == "same":
        top = same_padding(height, out_h, pool_h, strides[0])
        left = same_padding(width, out_w, pool_w, strides[1])
    return _place(canvas, -top, -left, height, width)


def _transposed_conv(signal, layer, input_size: tuple[int, int]):
    """Run `layer` (a Conv2D) backwards: each output value adds a copy of its filter,
    scaled by the value, to the input positions that filter covered. This is the
    transposed convolution with the layer's own kernel (and the gradient of the conv with
    respect to its input). A grouped conv is undone group by group; the bias is ignored."""
    kernel = ops.cast(layer.kernel, "float32")  # (kh, kw, C_in / groups, C_out)
    strides = pair(layer.strides)
    groups = layer.groups
    height, width = input_size
    parts = []
    for signal_g, kernel_g in zip(ops.split(signal, groups, axis=-1),
                                  ops.split(kernel, groups, axis=-1), strict=True):
        parts.append(ops.conv_transpose(signal_g, kernel_g, strides, padding="valid",
                                        output_padding=0))
    full = ops.concatenate(parts, axis=-1) if groups > 1 else parts[0]
    top = left = 0
    if layer.padding == "same":  # the rows "same" padding added are cut off again
        kernel_h, kernel_w = pair(layer.kernel_size)
        top = same_padding(height, signal.shape[1], kernel_h, strides[0])
        left = same_padding(width, signal.shape[2], kernel_w, strides[1])
    return _place(full, -top, -left, height, width)


# --------------------------------------------------------------------------- finding units


class Activation(NamedTuple):
    """One strong activation: which image, where in the feature map, how strong."""

    image: int
    row: int
    col: int
    value: float


def top_activations(feature_maps, channels=None, *,
                    count: int = 9) -> dict[int, list[Activation]]:
    """For each feature map, the `count` images that excite it most.

    `feature_maps` is one layer's output for a set of images (N x h x w x C), for example
    from ``keras.Model(model.inputs, model.get_layer("conv5").output).predict(images)``.
    An image's score is its strongest activation anywhere in the map (Figure 2 shows the
    top 9 per map). Returns ``{channel: [Activation, ...]}``, strongest first; `channels`
    defaults to every map.
    """
    maps = np.asarray(feature_maps, "float32")
    if maps.ndim != 4:
        raise ValueError(f"feature_maps must be (images, H, W, C), not {maps.shape}: for one "
                         "image's maps, pass maps[None]")
    count = whole_number("count", count)
    channels = range(maps.shape[-1]) if channels is None else channels
    width = maps.shape[2]
    result = {}
    for channel in channels:
        flat = maps[..., channel].reshape(len(maps), -1)
        where = flat.argmax(axis=1)
        best = flat[np.arange(len(flat)), where]
        order = np.argsort(-best, kind="stable")[:count]
        result[int(channel)] = [
            Activation(int(n), int(where[n] // width), int(where[n] % width), float(best[n]))
            for n in order
        ]
    return result


def receptive_patch(image, model: keras.Model, layer_name: str, row: int,
                    col: int) -> np.ndarray:
    """The part of `image` (H x W x C) that unit (row, col) of `layer_name` sees.

    The window's size and place come from `analysis.layer_table` (receptive field, jump,
    start). It is cut to the image: near an edge the patch is smaller (the unit saw
    padding there), and a unit whose field covers the whole image gets the whole image.
    """
    rows = {r["name"]: r for r in layer_table(model)}
    if layer_name not in rows:
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}")
    info = rows[layer_name]
    if info["receptive_field"] is None:
        raise ValueError(f"{layer_name!r} has no spatial receptive field")
    image = _check_image(model, image)
    for name, unit, units in (("row", row, info["output_shape"][1]),
                              ("col", col, info["output_shape"][2])):
        if whole_number(name, unit, minimum=0) >= (units or math.inf):  # None: any size
            raise ValueError(f"{name} must be in 0..{units - 1} ({layer_name!r} is "
                             f"{units} units across), not {unit}")
    # One value per axis (height, width); after upsampling they may be fractions of a pixel.
    size, jump, start = (pair(info[key]) for key in ("receptive_field", "jump", "start"))
    centres = [start[axis] + unit * jump[axis] for axis, unit in enumerate((row, col))]
    top, left = (math.floor(c - s / 2) for c, s in zip(centres, size, strict=True))
    bottom, right = (math.ceil(c + s / 2) for c, s in zip(centres, size, strict=True))
    return image[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]


# --------------------------------------------------------------------------- occlusion


def occlusion_map(model: keras.Model, image, label: int, *, patch: int = 8, stride: int = 2,
                  fill=0.0, batch_size: int = 128) -> np.ndarray:
    """The probability of class `label` as a square of `fill` covers each part of `image`.

    `image` is one input as the model sees it (normalised, H x W x C). `fill` is a number
    or one value per channel; with the course's normalisation the default, 0.0, is the
    training set's mean pixel, a neutral grey. The square (`patch` pixels a side)
    moves `stride` pixels at a time; entry [i, j] of the result is the model's probability
    of `label` with the square's top-left corner at (i * stride, j * stride). The model must
    output probabilities (a softmax), as every model in the course does.
    """
    image = _check_image(model, image).astype("float32")
    patch, stride = whole_number("patch", patch), whole_number("stride", stride)
    batch_size = whole_number("batch_size", batch_size)
    height, width = image.shape[:2]
    if patch > min(height, width):
        raise ValueError(f"patch ({patch} px) must fit in the {height} x {width} image")
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2:
        raise ValueError(f"model {model.name!r} must have one output, the class probabilities "
                         f"(N, classes), not {[tuple(o.shape) for o in model.outputs]}")
    classes = model.outputs[0].shape[-1]
    if whole_number("label", label, minimum=0) >= classes:
        raise ValueError(f"label must be in 0..{classes - 1}, not {label}")
    tops = range(0, height - patch + 1, stride)
    lefts = range(0, width - patch + 1, stride)
    corners = [(top, left) for top in tops for left in lefts]
    probabilities = []
    for start in range(0, len(corners), batch_size):  # occluded copies, a batch at a time
        # Every batch is full (the last one topped up with unoccluded copies), so the
        # model is compiled for one batch shape only (and reused from an earlier
        # `predict` with the same batch size).
        batch = np.repeat(image[None], batch_size, axis=0)
        for k, (top, left) in enumerate(corners[start : start + batch_size]):
            batch[k, top : top + patch, left : left + patch] = fill
        with _quietly():
            scores = model.predict(batch, batch_size=batch_size, verbose=0)
        scores = np.asarray(scores, "float32")
        if start == 0 and abs(scores[0].sum() - 1) > 1e-3:
            raise ValueError(f"the model's outputs sum to {scores[0].sum():.4g}, not 1: they "
                             "are not probabilities; the model must end in a softmax")
        probabilities.append(scores[:, label])
    probabilities = np.concatenate(probabilities)[: len(corners)]
    return probabilities.reshape(len(tops), len(lefts))


@contextlib.contextmanager
def _quietly():
    """Silence TensorFlow's warning that `predict` was traced again: each call in this
    module builds a small new model on purpose, and tracing it once is expected."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- figures


def _scaled(array) -> np.ndarray:
    """`array` stretched to [0, 1] on its own (one channel squeezed to 2-D, shown in grey)."""
    array = np.squeeze(np.asarray(array, "float32"))
    low, high = array.min(), array.max()
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _show(ax, image, **options) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, **options)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_projections(model: keras.Model, layer_name: str, units, projections, images, *,
                     size: float = 1.1):
    """Figure 2 for one layer: per feature map, a row of deconvnet projections above a row
    of the image patches the same units see.

    `units` are (channel, `Activation`) pairs grouped by channel, the same number per
    channel; `projections` the `project` output for them, one per unit; `images` the
    pictures the activations index (H x W x C, any scale). Each thumbnail is cut to the
    unit's receptive field (`receptive_patch`), stretched to full contrast on its own, and
    drawn with one square per pixel (no smoothing), `size` inches a side.
    """
    if isinstance(units, dict):
        raise ValueError("units must be (channel, Activation) pairs, not the dict that "
                         "top_activations returns: pass [(c, a) for c in found for a in "
                         "found[c]]")
    channels = list(dict.fromkeys(channel for channel, _ in units))
    columns = len(units) // max(len(channels), 1)
    if not units or [c for c, _ in units] != [c for c in channels for _ in range(columns)]:
        raise ValueError("units must be grouped by channel, the same number per channel, "
                         f"not channels {[c for c, _ in units]}")
    fig, axes = plt.subplots(2 * len(channels), columns, squeeze=False,
                             figsize=(columns * size, 2 * len(channels) * size * 1.02))
    for k, ((channel, act), projection) in enumerate(zip(units, projections, strict=True)):
        row, col = divmod(k, columns)
        cuts = [receptive_patch(picture, model, layer_name, act.row, act.col)
                for picture in (projection, images[act.image])]
        for offset, cut in enumerate(cuts):
            _show(axes[2 * row + offset, col], _scaled(cut), interpolation="nearest")
        axes[2 * row, 0].set_ylabel(f"map {channel}\nprojection", fontsize=8)
        axes[2 * row + 1, 0].set_ylabel("patch", fontsize=8)
    field = {r["name"]: r["receptive_field"] for r in layer_table(model)}[layer_name]
    fig.suptitle(f"{layer_name}: strongest held-out activations of {len(channels)} maps "
                 f"(receptive field {field} px, cut to the image)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_methods(images, projections: dict, *, titles=None, size: float = 1.8):
    """One row per image: the image, then its projection by each method.

    `projections` maps a method's name to `project`'s output for `images` (an array shaped
    like them); `titles`, one per image, label the rows. Every picture is stretched to full
    contrast on its own, so the columns compare patterns, not strengths.
    """
    columns = ["image", *projections]
    fig, axes = plt.subplots(len(images), len(columns), squeeze=False,
                             figsize=(len(columns) * size, len(images) * size))
    for row, image in enumerate(images):
        pictures = [image, *(projection[row] for projection in projections.values())]
        for ax, picture in zip(axes[row], pictures, strict=True):
            _show(ax, _scaled(picture), interpolation="nearest")
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
    for ax, name in zip(axes[0], columns, strict=True):
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def plot_occlusion(picture, heat, unoccluded: float, *, patch: int, stride: int,
                   class_name: str = "the class"):
    """`occlusion_map`'s `heat` drawn over `picture`, centred on the unoccluded probability.

    Left, the picture with the grey square at its first position, for scale. Right, the
    picture again, under the map: each cell sits where the square's centre was, and its
    colour says how p(`class_name`) changed when the square was there. Blue: it dropped
    (the model needed what the square hid); white: no change; red: it rose. The colour
    scale is symmetric around `unoccluded`, so equal changes either way look equally
    strong. The band of half a square along each edge is never a centre, so it stays bare.
    """
    picture = _scaled(picture)
    heat = np.asarray(heat, "float32")
    if not is_number(unoccluded) or not 0 <= unoccluded <= 1:
        raise ValueError(f"unoccluded must be a probability in [0, 1], not {unoccluded!r}")
    patch, stride = whole_number("patch", patch), whole_number("stride", stride)
    expected = tuple((size - patch) // stride + 1 for size in picture.shape[:2])
    if heat.shape != expected:
        raise ValueError(f"heat must be occlusion_map's result for this picture "
                         f"{picture.shape[:2]}, patch {patch} and stride {stride}, shaped "
                         f"{expected}, not {heat.shape}: pass the patch and stride it used")
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.6),
                                      gridspec_kw={"width_ratios": [1, 1.25]})
    _show(left, picture)
    left.add_patch(plt.Rectangle((-0.5, -0.5), patch, patch, fill=False, color="orange", lw=2))
    left.set_title(f"input and the {patch} px square", fontsize=9)
    _show(right, picture, alpha=0.7)
    first = (patch - 1) / 2 - stride / 2  # the first centre, less half a cell
    rows, cols = heat.shape
    extent = (first, first + cols * stride, first + rows * stride, first)
    change = float(np.abs(heat - unoccluded).max()) or 1e-6
    shown = right.imshow(heat, cmap="RdBu_r", alpha=0.75, extent=extent,
                         norm=CenteredNorm(vcenter=unoccluded, halfrange=change))
    right.set_xlim(-0.5, picture.shape[1] - 0.5)
    right.set_ylim(picture.shape[0] - 0.5, -0.5)
    right.set_title(f"p({class_name}) with the square centred here", fontsize=9)
    bar = fig.colorbar(shown, ax=right, fraction=0.046)
    bar.ax.set_ylim(max(unoccluded - change, 0.0), min(unoccluded + change, 1.0))
    bar.ax.axhline(unoccluded, color="black", lw=1)
    bar.set_label(f"white = {unoccluded:.3f}, unoccluded", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- first layers


def dead_filters(kernel, fraction: float = 0.1) -> float:
    """The share of a layer's filters whose norm is below `fraction` of the largest one's.

    Our stand-in for the "dead" filters of Figure 6, which the paper judged by eye: a
    filter that learned next to nothing is faint next to the others. `kernel` is
    (kh, kw, in_channels, filters), as Keras stores it; `fraction` is in (0, 1]. An all-zero
    kernel has every filter dead: 1.0.
    """
    kernel = np.asarray(kernel, "float64")
    if not is_number(fraction) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction!r}")
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be (kh, kw, in_channels, filters), not {kernel.shape}")
    if not np.isfinite(kernel).all():
        raise ValueError("kernel holds NaN or infinite weights: the training diverged; "
                         "there is nothing to measure")
    norms = np.sqrt((kernel**2).sum(axis=(0, 1, 2)))
    if norms.max() == 0:
        return 1.0  # nothing is above zero: every filter is dead
    return float(np.mean(norms < fraction * norms.max()))


def _power(kernel, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra (size, size, filters) of each filter, summed over input channels, on a
    size x size frequency grid (zero-padded FFT); and the grid's frequencies in cycles/px."""
    kernel = np.asarray(kernel, "float64")
    if max(kernel.shape[:2]) > size:
        raise ValueError(f"size {size} is smaller than the {kernel.shape[:2]} filters")
    power = np.abs(np.fft.fft2(kernel, s=(size, size), axes=(0, 1))) ** 2
    return power.sum(axis=2), np.fft.fftfreq(size)


def aliased_energy(kernel, stride: int, *, size: int = 64) -> np.ndarray:
    """Per filter, the share of its energy at frequencies its layer's output cannot hold.

    A convolution with stride s keeps its response at every s-th pixel only, and a grid
    of step s holds frequencies up to 1 / (2 s) cycles per pixel (its Nyquist frequency).
    What a filter passes above that, along either axis, comes out folded onto lower
    frequencies: aliasing, which Section 4.1 saw with AlexNet's stride 4. A filter of
    white noise has about 1 - 1 / s**2 of its energy there (94% at stride 4, 75% at 2);
    smooth filters have little. Returns one share in [0, 1] per filter (0 for an
    all-zero filter), computed on a `size` x `size` frequency grid.
    """
    stride = whole_number("stride", stride)
    power, frequencies = _power(kernel, size)
    nyquist = 1 / (2 * stride)
    above = np.abs(frequencies) > nyquist + 1e-12
    outside = above[:, None] | above[None, :]
    total = power.sum(axis=(0, 1))
    share = power[outside].sum(axis=0) / np.where(total > 0, total, 1)
    return np.where(total > 0, share, 0.0)


def _filter_tiles(kernel, columns: int) -> np.ndarray:
    """The filters as one image, strongest first, all on one scale: grey is zero, so a faint
    (dead) filter looks faint. Colour for three input channels, else their mean in grey."""
    kernel = np.asarray(kernel, "float32")
    filters = np.moveaxis(kernel, -1, 0)  # (filters, kh, kw, in)
    if filters.shape[-1] != 3:
        filters = filters.mean(-1, keepdims=True)
    filters = filters[np.argsort(-np.sqrt((filters**2).sum(axis=(1, 2, 3))), kind="stable")]
    return tile(0.5 + 0.5 * filters / (np.abs(filters).max() or 1.0), columns)


def plot_first_layers(stems: dict, *, columns: int = 8, size: int = 64):
    """First-layer filters and their spectra, one column per network.

    `stems` maps a title to (kernel, stride). Top: the filters, sorted strongest first
    and drawn on one shared scale, so dead filters show as flat grey. Bottom: their mean
    power spectrum (each filter normalised to unit energy; log scale; zero frequency in
    the centre) with a dashed square at the stride's Nyquist frequency: energy outside
    the square is aliased (`aliased_energy`).
    """
    tiles = {title: _filter_tiles(kernel, columns) for title, (kernel, _) in stems.items()}
    aspect = max(tile.shape[0] / tile.shape[1] for tile in tiles.values())
    width = 4.2
    fig, axes = plt.subplots(2, len(stems), squeeze=False, height_ratios=[aspect, 1],
                             figsize=(width * len(stems), width * (aspect + 1) + 1.0))
    for (title, (kernel, stride)), (top, bottom) in zip(stems.items(), axes.T, strict=True):
        _show(top, tiles[title], interpolation="nearest")
        top.set_title(f"{title}\n{np.shape(kernel)[-1]} filters, strongest first; dead "
                      f"{dead_filters(kernel):.0%}", fontsize=9)
        power, frequencies = _power(kernel, size)
        mean = np.fft.fftshift((power / np.maximum(power.sum(axis=(0, 1)), 1e-30)).mean(-1))
        shifted, half = np.fft.fftshift(frequencies), 0.5 / size  # pixel centres, half a pixel
        low, high = shifted[0] - half, shifted[-1] + half
        bottom.imshow(np.log10(mean + 1e-12), cmap="magma", origin="lower",
                      extent=(low, high, low, high))
        nyquist = 1 / (2 * stride)
        bottom.add_patch(plt.Rectangle((-nyquist, -nyquist), 2 * nyquist, 2 * nyquist,
                                       fill=False, color="white", ls="--", lw=1.5))
        share = float(np.mean(aliased_energy(kernel, stride, size=size)))
        bottom.set_title(f"mean power spectrum (log scale)\n{share:.0%} of the energy beyond "
                         f"1/{2 * stride} cycle per pixel (dashed)", fontsize=9)
        bottom.set_xlabel("horizontal frequency (cycles per pixel)", fontsize=8)
        bottom.set_ylabel("vertical frequency", fontsize=8)
    fig.tight_layout()
    return fig
