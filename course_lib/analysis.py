"""Count what the papers count: parameters, multiply-adds, neurons and receptive fields.

Keras has no FLOP counter and no receptive-field tool, so this module walks a functional
(or Sequential) model call by call: a layer called twice gets two rows ("conv" and
"conv (call 2)", its weights counted in the first), and a model used as a layer is walked
too, its rows named "inner_model/layer". Conventions follow the papers:

- **MACs** are multiply-accumulates of convolutions (grouped, depthwise, separable and
  transposed included) and dense layers. Bias, normalisation, pooling and activations
  count nothing.
- **neurons** are the elements of a layer's output (e.g. 55 x 55 x 96 for AlexNet's conv1).
- **receptive_field** is the side, in input pixels, of the input window that one output unit
  sees; **jump** is how many input pixels apart two neighbouring output units are, and
  **start** is the input coordinate of the centre of the first output unit's window (pixel
  p spans [p, p + 1]). Each is one number when all spatial axes agree, else one per axis
  (height, width). They are None after a layer that mixes all positions (Flatten, Dense on
  a vector, global pooling) or one whose geometry the module has no rule for (Resizing,
  Lambda, Permute, ...).

How far to trust it: the papers' totals (AlexNet, ZFNet, VGG16, ResNet50, MobileNet) and a
brute-force receptive field (which input pixels change each output unit) for every layer
type with a rule are in the tests. It refuses, with an error that says what to do, what it
cannot count: a layer with weights but no rule, unknown map sizes, channels_first, unbuilt
and subclassed models.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from fractions import Fraction

import keras

# Layers that act on each position alone (Dense: on the last axis at every position): the
# geometry goes through unchanged.
_POINTWISE = {
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "BatchNormalization",
    "LayerNormalization", "UnitNormalization", "Normalization",
    "LocalResponseNormalization", "Rescaling", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
    "AlphaDropout", "ActivityRegularization", "Identity", "Dense",
}  # fmt: skip
# Of those, the ones whose `axis` may also span positions (then each unit sees them all).
_ALONG_AXIS = {"Softmax", "LayerNormalization", "UnitNormalization"}
# Layers that merge branches position by position: each unit sees all its branches see.
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"}
# Layers with weights that the papers count as free (normalisation, learnt slopes).
_NO_MACS = {"BatchNormalization", "LayerNormalization", "GroupNormalization",
            "Normalization", "PReLU"}
_CONVOLUTIONS = {"Conv1D", "Conv2D", "Conv3D"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_TRANSPOSED = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_UPSAMPLING_KERNEL = {"nearest": 1, "bilinear": 2}  # its width, in upsampling factors

_KERAS_CHANGED = "Keras changed its internal graph API: update course_lib.analysis._calls"


@contextlib.contextmanager
def shapes_only():
    """Build models inside this block with weights that have shapes but no values.

    Counting (``count_params``, `layer_table`, `count_macs`) needs only the shapes, while
    drawing VGG-16's 138 million random starting values takes seconds and 550 MB. A model
    built here cannot be run or trained: build it again outside to use it. On leaving the
    block Keras is told to forget the weights it has not drawn (it would otherwise draw
    them at its next occasion).
    """
    with keras.StatelessScope(initialize_variables=False):
        yield
    _forget_undrawn_weights()


def _forget_undrawn_weights() -> None:
    """Empty Keras's list of weights waiting for their values: the one private state this
    module writes (`tests/test_analysis.py` fails loudly if Keras renames it)."""
    from keras.src.backend.common import global_state

    if global_state.get_global_attribute("uninitialized_variables") is None:
        return  # nothing was built in the block
    global_state.set_global_attribute("uninitialized_variables", [])


def _per_axis(value, axes: int) -> tuple:
    """A Keras size (a number or one per axis) as one entry per spatial axis."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes


def pair(value) -> tuple[int, int]:
    """(value, value) for a single number; a tuple or list unchanged (Keras sizes)."""
    return _per_axis(value, 2)


def same_padding(size: int, out: int, window: int, stride: int) -> int:
    """Rows that "same" padding adds before the first one (TensorFlow's rule: the odd
    row, if any, goes after)."""
    return max((out - 1) * stride + window - size, 0) // 2


# --------------------------------------------------------------------------- the graph


def _calls(model: keras.Model) -> list[tuple]:
    """Every call in `model`'s graph as (layer, input tensors, output tensors), each call
    after the calls that produce its inputs.

    Keras 3 has no public way to list a graph's calls (`layer.input` is the first call
    only), so this is the one function that reads its private graph: `_functional` of a
    Sequential model, and `_nodes_by_depth`, each node's `operation`, `input_tensors` and
    `outputs`. tests/test_analysis.py checks them, so a Keras upgrade fails loudly here.
    """
    try:
        from keras.src.models.functional import Functional
    except ImportError as error:
        raise RuntimeError(_KERAS_CHANGED) from error
    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(
                f"model {model.name!r} is not built, so its layers have no sizes yet: give "
                "it an input, keras.Sequential([keras.Input((224, 224, 3)), ...]), or call "
                "it once on a batch of the right shape")
        model = model._functional
    elif not isinstance(model, Functional):
        raise ValueError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed keras.Model: "
            "its call() cannot be walked layer by layer. Write it with the functional API "
            "(keras.Input, then call the layers on it) to count it")
    try:
        position = {id(layer): i for i, layer in enumerate(model.operations)}
        calls = []
        for depth in sorted(model._nodes_by_depth, reverse=True):  # inputs first
            nodes = sorted(model._nodes_by_depth[depth], key=lambda node: (
                position[id(node.operation)], node.operation._inbound_nodes.index(node)))
            calls += [(n.operation, list(n.input_tensors), list(n.outputs)) for n in nodes]
    except AttributeError as error:
        raise RuntimeError(_KERAS_CHANGED) from error
    return calls


def _sized(model: keras.Model, shapes: list) -> keras.Model:
    """`model`, or a copy of it built for the caller's input `shapes` when it was built for
    any size (keras.applications without `input_shape`): the rows need every map's size."""
    if all(None not in tuple(x.shape)[1:] for x in model.inputs):
        return model
    inputs = [keras.Input(batch_shape=tuple(shape)) for shape in shapes]
    return keras.models.clone_model(model, input_tensors=inputs[0] if len(inputs) == 1
                                    else inputs)


# --------------------------------------------------------------------------- multiply-adds


def _count(shape) -> int:
    """Elements of one example of a tensor of this shape (the batch axis left out)."""
    return math.prod(shape[1:])


def layer_macs(layer, input_shape, output_shape) -> int:
    """Multiply-accumulates of one call of `layer` for one image, from that call's shapes.

    Raises for a layer that has weights but no rule here: counting it as free would be a
    silent error.
    """
    kind = type(layer).__name__
    if kind == "Dense":  # applied to the last axis, at every other position
        return _count(input_shape[:-1]) * input_shape[-1] * layer.units
    if kind in _CONVOLUTIONS:
        return _count(output_shape) * math.prod(layer.kernel_size) * input_shape[-1] \
            // layer.groups
    if kind in _DEPTHWISE:
        return _count(output_shape) * math.prod(layer.kernel_size)
    if kind in _SEPARABLE:  # depthwise k x k, then pointwise 1 x 1
        channels = input_shape[-1] * layer.depth_multiplier
        return _count(output_shape[:-1]) * channels * (math.prod(layer.kernel_size)
                                                       + layer.filters)
    if kind in _TRANSPOSED:  # every input value times every weight of its filters
        return _count(input_shape) * math.prod(layer.kernel_size) * layer.filters
    if kind in _NO_MACS or not layer.weights:
        return 0
    raise ValueError(
        f"layer {layer.name!r} ({kind}) has weights but no rule to count its multiply-adds: "
        "add a rule in course_lib.analysis (layer_macs)")


# --------------------------------------------------------------------------- geometry
# A tensor's geometry is one (receptive field, jump, start) per spatial axis, or None when
# each of its units sees the whole input. Fractions keep upsampled geometry exact.


def _pixels(tensor):
    """An input's geometry: each pixel sees itself (None for a vector: no spatial axes)."""
    axes = len(tensor.shape) - 2
    return ((1, 1, Fraction(1, 2)),) * axes if axes > 0 else None


def _slide(geometry, kernels, strides, pads) -> tuple:
    """A window of k units moving s at a time, after `pad` units of padding:
    r' = r + (k - 1) j,  j' = j s,  start' = start + ((k - 1) / 2 - pad) j."""
    return tuple((r + (k - 1) * j, j * s, start + (Fraction(k - 1, 2) - pad) * j)
                 for (r, j, start), k, s, pad in zip(geometry, kernels, strides, pads,
                                                     strict=True))


def _spread(geometry, kernels, strides, crops) -> tuple:
    """The transpose of `_slide`: each input unit spreads over k outputs, s apart, and
    `crop` outputs are cut before the first. Output o sees the inputs i with
    i s in [o + crop - k + 1, o + crop], so
    r' = r + (k - 1) j / s,  j' = j / s,  start' = start - ((k - 1) / 2 - crop) j'.
    When s does not divide k - 1, neighbouring units see unevenly spaced windows (k = 3,
    s = 2: one input, then two); these windows are the smallest evenly spaced ones that
    hold them all, so r' may exceed the widest true window by ((k - 1) mod s) / s of j."""
    return tuple((r + Fraction(k - 1, s) * j, Fraction(j, s),
                  start - (Fraction(k - 1, 2) - crop) * Fraction(j, s))
                 for (r, j, start), k, s, crop in zip(geometry, kernels, strides, crops,
                                                      strict=True))


def _window_geometry(layer, geometry, input_shape, output_shape):
    """Convolutions and pooling: the window, its stride and the padding before it."""
    axes = len(geometry)
    kernels = _per_axis(getattr(layer, "kernel_size", None) or layer.pool_size, axes)
    dilations = _per_axis(getattr(layer, "dilation_rate", 1), axes)
    kernels = [d * (k - 1) + 1 for k, d in zip(kernels, dilations, strict=True)]
    strides = _per_axis(layer.strides, axes)
    sizes = zip(input_shape[1:-1], output_shape[1:-1], kernels, strides, strict=True)
    if type(layer).__name__ in _TRANSPOSED:  # "same" crops what a conv would have padded
        crops = [same_padding(out, size, k, s) if layer.padding == "same" else 0
                 for size, out, k, s in sizes]
        return _spread(geometry, kernels, strides, crops)
    if layer.padding == "causal":  # all the padding before
        pads = [k - 1 for k in kernels]
    else:
        pads = [same_padding(*size) if layer.padding == "same" else 0 for size in sizes]
    return _slide(geometry, kernels, strides, pads)


def _upsample_geometry(layer, geometry):
    """UpSampling by u: nearest-neighbour is a transposed convolution with a kernel u wide
    (k = u, s = u); bilinear has a triangle kernel 2u wide, centred (k = 2u, crop u / 2)."""
    width = _UPSAMPLING_KERNEL.get(getattr(layer, "interpolation", None) or "nearest")
    if width is None:
        return None
    factors = _per_axis(layer.size, len(geometry))
    return _spread(geometry, [width * u for u in factors], factors,
                   [Fraction((width - 1) * u, 2) for u in factors])


def _shift_geometry(layer, geometry, sign: int):
    """ZeroPadding (sign -1) and Cropping (sign +1) move the first unit's window."""
    amounts = getattr(layer, "padding", None) or layer.cropping
    before = [amounts[0]] if isinstance(amounts[0], int) else [a[0] for a in amounts]
    return tuple((r, j, start + sign * b * j)
                 for (r, j, start), b in zip(geometry, before, strict=True))


def _merge_geometry(layer, geometries, rank: int):
    """Merged branches: a unit sees the union of its branches' windows. The branches must
    be equally spaced (the same jump), or their units are not aligned."""
    if type(layer).__name__ == "Concatenate" and layer.axis not in (-1, rank - 1):
        return None  # concatenating along a spatial axis: no rule
    merged = []
    for axis in zip(*geometries, strict=True):
        jumps = {j for _, j, _ in axis}
        if len(jumps) > 1:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) merges branches with "
                f"different jumps (units {' and '.join(f'{float(j):g}' for j in sorted(jumps))}"
                " input pixels apart): their windows do not line up")
        low = min(start - r / 2 for r, _, start in axis)
        high = max(start + r / 2 for r, _, start in axis)
        merged.append((high - low, jumps.pop(), (low + high) / 2))
    return tuple(merged)


def _geometry(layer, inputs, outputs, seen):
    """The geometry of one call's outputs, from its inputs' geometries `seen`."""
    kind = type(layer).__name__
    if any(g is None for g in seen):
        return None  # a unit that sees the whole input (or who knows what) still does
    if kind in _MERGE:
        return _merge_geometry(layer, seen, len(outputs[0].shape))
    if len(seen) > 1 or len(inputs[0].shape) != len(outputs[0].shape):
        return None
    geometry, input_shape, output_shape = seen[0], inputs[0].shape, outputs[0].shape
    if kind in _POINTWISE and not _spans_positions(layer, len(output_shape)):
        return geometry
    if hasattr(layer, "strides") and (hasattr(layer, "kernel_size")
                                      or hasattr(layer, "pool_size")):
        return _window_geometry(layer, geometry, input_shape, output_shape)
    if kind.startswith("UpSampling"):
        return _upsample_geometry(layer, geometry)
    if kind.startswith("ZeroPadding"):
        return _shift_geometry(layer, geometry, -1)
    if kind.startswith("Cropping"):
        return _shift_geometry(layer, geometry, +1)
    return None  # no rule: Flatten, global pooling, Reshape, Resizing, Lambda, ...


def _spans_positions(layer, rank: int) -> bool:
    """Whether a layer of `_ALONG_AXIS` computes along a spatial axis (axis=[1, 2]): its
    outputs then depend on every position (GroupNormalization's always do)."""
    if type(layer).__name__ not in _ALONG_AXIS:
        return False
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return any(0 < axis % rank < rank - 1 for axis in axes)


# --------------------------------------------------------------------------- the table


def _check(layer, name: str, tensors) -> None:
    """Refuse what the table cannot count: unknown sizes and channels_first layouts."""
    kind = type(layer).__name__
    if getattr(layer, "data_format", None) == "channels_first":
        raise ValueError(
            f"layer {name!r} ({kind}) is channels_first: course_lib.analysis counts "
            "channels_last models (Keras' default); build the model channels_last")
    for tensor in tensors:
        if None in tuple(tensor.shape)[1:]:
            raise ValueError(
                f"layer {name!r} ({kind}) has a tensor of unknown size {tuple(tensor.shape)}: "
                "build the model for one input size, e.g. keras.Input((224, 224, 3))")


def _value(numbers):
    """A row's entry: one number when every axis agrees, else a tuple, ints when whole."""
    numbers = [int(n) if Fraction(n).denominator == 1 else float(n) for n in numbers]
    return numbers[0] if len(set(numbers)) == 1 else tuple(numbers)


def _row(name: str, layer, inputs, outputs, geometry, counted: set, alias: dict) -> dict:
    """One call's row. Weights are counted at the first call that uses them (by the ids in
    `counted`; `alias` maps the id of a copy that `_sized` made to its original's)."""
    new = [w for w in layer.weights if alias.get(id(w), id(w)) not in counted]
    counted.update(alias.get(id(w), id(w)) for w in new)
    shapes = [tuple(x.shape) for x in outputs]
    row = {
        "name": name,
        "type": type(layer).__name__,
        "output_shape": shapes[0] if len(shapes) == 1 else shapes,
        "params": sum(math.prod(w.shape) for w in new),
        "macs": layer_macs(layer, tuple(inputs[0].shape) if inputs else None, shapes[0]),
        "neurons": sum(_count(shape) for shape in shapes),
    }
    for i, key in enumerate(("receptive_field", "jump", "start")):
        row[key] = None if geometry is None else _value(axis[i] for axis in geometry)
    return row


def _walk(model, geometries, prefix: str, rows: list, counted: set, alias: dict) -> list:
    """Append the rows of every call in `model` (names prefixed with `prefix`), its inputs
    having `geometries` (None: they are the image); return its outputs' geometries."""
    calls = _calls(model)  # first: it explains why a model cannot be walked
    if geometries is None:
        geometries = [_pixels(x) for x in model.inputs]
    listed = {id(layer) for layer in model.layers}  # a Sequential lists no input layer
    known = {id(x): g for x, g in zip(model.inputs, geometries, strict=True)}
    times = Counter()
    for layer, inputs, outputs in calls:
        times[layer.name] += 1
        call = f" (call {times[layer.name]})" if times[layer.name] > 1 else ""
        name = prefix + layer.name + call
        seen = [known[id(x)] for x in inputs]
        if isinstance(layer, keras.Model):  # a model used as a layer: walk it too
            inner = _sized(layer, [x.shape for x in inputs])
            alias.update((id(copy), alias.get(id(weight), id(weight))) for copy, weight
                         in zip(inner.weights, layer.weights, strict=True))
            result = _walk(inner, seen, name + "/", rows, counted, alias)
        else:
            _check(layer, name, inputs + outputs)
            geometry = known[id(outputs[0])] if not inputs else _geometry(
                layer, inputs, outputs, seen)
            result = [geometry] * len(outputs)
            if id(layer) in listed:
                rows.append(_row(name, layer, inputs, outputs, geometry, counted, alias))
        known.update(zip(map(id, outputs), result, strict=True))
    return [known[id(x)] for x in model.outputs]


def layer_table(model: keras.Model) -> list[dict]:
    """One dict per layer call: name, type, output_shape, params, macs, neurons,
    receptive_field, jump and start (see the module's docstring).

    Along each axis, a window of k pixels (dilated: d (k - 1) + 1) moving s at a time after
    p pixels of padding gives r' = r + (k - 1) j, j' = j s and start' = start + ((k - 1) / 2
    - p) j (`_slide`); transposed convolutions and upsampling divide the jump instead
    (`_spread`); padding and cropping move start; merged branches take the union of their
    windows.
    """
    rows: list[dict] = []
    _walk(model, None, "", rows, set(), {})
    return rows


def count_macs(model: keras.Model) -> int:
    """Total multiply-accumulates of one forward pass for one image."""
    return sum(row["macs"] for row in layer_table(model))


def receptive_field(model: keras.Model, layer_name: str):
    """Receptive field (input pixels per side) of one unit in the named layer: one number,
    or one per axis (height, width) when they differ."""
    for row in layer_table(model):
        if row["name"] == layer_name:
            return row["receptive_field"]
    raise ValueError(f"model {model.name!r} has no layer {layer_name!r}")


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def format_table(rows: list[dict], columns=None) -> str:
    """A plain-text table of `layer_table` rows, with totals, for printing in a notebook."""
    columns = columns or ["name", "output_shape", "params", "macs", "neurons", "receptive_field"]
    cells = [[_cell(row[c], c) for c in columns] for row in rows]
    totals = {"params": sum(r["params"] for r in rows), "macs": sum(r["macs"] for r in rows)}
    cells.append([f"{totals[c]:,}" if c in totals else ("total" if i == 0 else "")
                  for i, c in enumerate(columns)])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(columns, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in
                               enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def _cell(value, column: str) -> str:
    if value is None:
        return "-"
    if column == "output_shape" and isinstance(value, tuple):
        return "x".join(str(d) for d in value[1:])  # the batch axis left out
    if isinstance(value, (tuple, list)):
        return ("x" if isinstance(value, tuple) else ", ").join(_cell(v, column)
                                                                 for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def summarize(model: keras.Model) -> str:
    """One line: parameters and multiply-adds, in the papers' units."""
    return f"{model.name}: {_human(model.count_params())} parameters, " \
           f"{_human(count_macs(model))} multiply-adds per image"
