"""Count what the papers count: parameters, multiply-adds, neurons and receptive fields.

Keras has no FLOP counter and no receptive-field tool, so this module walks a functional
model layer by layer. Conventions follow the papers:

- **MACs** are multiply-accumulates of convolutions (grouped and depthwise included) and
  dense layers. Bias, batch norm, pooling, activations and normalisation count nothing.
- **neurons** are the elements of a layer's output (e.g. 55 x 55 x 96 for AlexNet's conv1).
- **receptive_field** is the side, in input pixels, of the input window that one output unit
  sees; **jump** is how many input pixels apart two neighbouring output units are, and
  **start** is the input coordinate of the centre of the first output unit's window.
  After a layer that mixes all positions (Flatten, Dense, global pooling) they are None.
"""

from __future__ import annotations

import math

import keras

# Layers that keep the spatial geometry and mix no neighbouring positions.
_SPATIAL_POINTWISE = (
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "BatchNormalization",
    "LayerNormalization", "Dropout", "SpatialDropout2D", "GaussianNoise", "Rescaling",
    "Normalization", "Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum",
    "Concatenate", "InputLayer", "LocalResponseNormalization", "Identity",
)
_GLOBAL = ("Flatten", "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape")


def pair(value) -> tuple[int, int]:
    """(value, value) for a single number; a tuple or list unchanged (Keras sizes)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _inbound(layer) -> list:
    """The layers that feed `layer` in a functional model (first call site only)."""
    if not layer._inbound_nodes:
        return []
    return [t._keras_history[0] for t in layer._inbound_nodes[0].input_tensors]


def _count(shape) -> int:
    return math.prod(d for d in shape[1:] if d is not None)


def layer_macs(layer) -> int:
    """Multiply-accumulates one forward pass of `layer` costs for one image."""
    kind = type(layer).__name__
    out_shape = _shape(layer.output)
    if kind == "Dense":
        in_shape = _shape(layer.input)
        positions = math.prod(in_shape[1:-1]) if len(in_shape) > 2 else 1
        return positions * in_shape[-1] * layer.units
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        in_channels = _shape(layer.input)[-1]
        per_output = math.prod(layer.kernel_size) * in_channels // layer.groups
        return _count(out_shape) * per_output
    if kind == "DepthwiseConv2D":
        return _count(out_shape) * math.prod(layer.kernel_size)
    if kind == "SeparableConv2D":
        in_shape = _shape(layer.input)
        depthwise = math.prod(out_shape[1:3]) * in_shape[-1] * layer.depth_multiplier
        depthwise *= math.prod(layer.kernel_size)
        pointwise = _count(out_shape) * in_shape[-1] * layer.depth_multiplier
        return depthwise + pointwise
    if kind == "Conv2DTranspose":
        in_shape = _shape(layer.input)
        return _count(in_shape) * math.prod(layer.kernel_size) * layer.filters
    return 0


def _window(layer):
    """(kernel, stride, dilation) along height for layers that slide a window, else None."""
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        kernel, stride = pair(layer.kernel_size)[0], pair(layer.strides)[0]
        return kernel, stride, pair(getattr(layer, "dilation_rate", 1))[0]
    if hasattr(layer, "pool_size"):
        return pair(layer.pool_size)[0], pair(layer.strides)[0], 1
    return None


def same_padding(size: int, out: int, window: int, stride: int) -> int:
    """Rows that "same" padding adds before the first one (TensorFlow's rule: the odd
    row, if any, goes after)."""
    return max((out - 1) * stride + window - size, 0) // 2


def _padding_before(layer, kernel: int, stride: int) -> int:
    """Pixels of padding the layer adds before the first row (0 unless 'same')."""
    if getattr(layer, "padding", "valid") != "same":
        return 0
    return same_padding(_shape(layer.input)[1], _shape(layer.output)[1], kernel, stride)


def layer_table(model: keras.Model) -> list[dict]:
    """One dict per layer: name, type, output_shape, params, macs, neurons, receptive field.

    Receptive fields follow the rule r_out = r_in + (k - 1) * j_in and j_out = j_in * s,
    measured along the height axis (all the course's models are square).
    """
    geometry: dict[str, tuple | None] = {}
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        parents = _inbound(layer)
        if not parents:  # an input: one pixel sees itself
            rf = (1, 1, 0.5)
        else:  # (a Sequential model lists no input layer: its input is a pixel too)
            seen = [geometry.get(p.name, (1, 1, 0.5)) for p in parents]
            rf = None if any(g is None for g in seen) else max(seen)
        if rf is not None:
            window = _window(layer)
            if kind in _GLOBAL:
                rf = None
            elif kind == "ZeroPadding2D":
                top = pair(layer.padding)[0]
                top = top[0] if isinstance(top, (tuple, list)) else top
                size, jump, start = rf
                rf = (size, jump, start - top * jump)
            elif kind == "Cropping2D":
                top = pair(layer.cropping)[0]
                top = top[0] if isinstance(top, (tuple, list)) else top
                size, jump, start = rf
                rf = (size, jump, start + top * jump)
            elif window is not None:
                kernel, stride, dilation = window
                kernel = dilation * (kernel - 1) + 1
                pad = _padding_before(layer, kernel, stride)
                size, jump, start = rf
                rf = (
                    size + (kernel - 1) * jump,
                    jump * stride,
                    start + ((kernel - 1) / 2 - pad) * jump,
                )
            elif kind not in _SPATIAL_POINTWISE and len(_shape(layer.output)) != 4:
                rf = None
        geometry[layer.name] = rf
        output_shape = _shape(layer.output)
        rows.append(
            {
                "name": layer.name,
                "type": kind,
                "output_shape": output_shape,
                "params": layer.count_params(),
                "macs": layer_macs(layer),
                "neurons": _count(output_shape),
                "receptive_field": None if rf is None else rf[0],
                "jump": None if rf is None else rf[1],
                "start": None if rf is None else rf[2],
            }
        )
    return rows


def count_macs(model: keras.Model) -> int:
    """Total multiply-accumulates of one forward pass for one image."""
    return sum(row["macs"] for row in layer_table(model))


def receptive_field(model: keras.Model, layer_name: str) -> int:
    """Receptive field (input pixels per side) of one unit in the named layer."""
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
    cells = [[_cell(row[c]) for c in columns] for row in rows]
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


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple):
        return "x".join(str(d) for d in value[1:])
    return str(value)


def summarize(model: keras.Model) -> str:
    """One line: parameters and multiply-adds, in the papers' units."""
    return f"{model.name}: {_human(model.count_params())} parameters, " \
           f"{_human(count_macs(model))} multiply-adds per image"
