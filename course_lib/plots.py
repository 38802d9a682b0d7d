"""Static matplotlib figures for the notebooks: curves, image grids, filters, feature maps,
receptive fields and the two towers of AlexNet.

Every function draws one figure, returns it, and leaves showing it to the notebook
(`plt.show()` is implicit at the end of a cell). Nothing updates live: live plots pile up
when notebooks are executed headless.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MaxNLocator


def plot_history(history: dict, metrics=None, title: str | None = None):
    """Training vs validation curves, one panel per metric, whole epochs on the x-axis.

    Keras's training numbers are averages over each epoch, taken while the weights change
    and with dropout and augmentation on; the validation numbers come after the epoch, with
    neither. So validation can lie above training, most of all early on.

    `history` is a dict of per-epoch lists (`train.fit`'s result; for a Keras `History`,
    pass its `.history`); `metrics` a list of its keys, by default "loss" and "accuracy"
    (those it has).
    """
    if not isinstance(history, dict):
        raise ValueError("history must be a dict of per-epoch lists, not a "
                         f"{type(history).__name__}: for the History that Keras's fit "
                         "returns, pass history.history")
    if metrics is None:
        metrics = [m for m in ("loss", "accuracy") if m in history] or ["loss"]
    if isinstance(metrics, str):
        raise ValueError(f"metrics must be a list of names, e.g. [{metrics!r}], not {metrics!r}")
    missing = [m for m in metrics if m not in history]
    if missing or not metrics:
        known = [k for k, v in history.items() if isinstance(v, list) and "val_" not in k]
        raise ValueError(f"history has no metric {missing or metrics}: it has {known}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    epochs = history.get("epoch") or list(range(1, len(history[metrics[0]]) + 1))
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.plot(epochs, history[metric], "o-", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_displayable(image: np.ndarray) -> np.ndarray:
    """Scale any array to [0, 1] for imshow; a single channel stays 2-D (shown in grey)."""
    image = np.asarray(image, dtype="float32")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def image_grid(images, labels=None, class_names=None, columns: int = 8, size: float = 1.4,
               title: str | None = None, scale_each: bool = True):
    """A grid of images with optional labels (integers mapped through `class_names`).

    `images` is a batch: a list of images, or an array (N, H, W, C) or (N, H, W). One image
    (H, W, C) is refused: pass [image].
    """
    if getattr(images, "ndim", None) == 3 and images.shape[-1] in (1, 3, 4):
        raise ValueError(f"images must be a batch, not one image {images.shape}: pass [image] "
                         "(a batch of greyscale images, N x H x W, must be wider than 4 px)")
    count = len(images)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 1.15),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        image = images[i]
        if scale_each or np.asarray(image).dtype != np.uint8:
            image = _as_displayable(image)
        ax.imshow(np.squeeze(image), cmap="gray" if np.ndim(np.squeeze(image)) == 2 else None)
        if labels is not None:
            label = labels[i]
            if class_names is not None and not isinstance(label, str):
                label = class_names[int(label)]
            ax.set_title(str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_filters(kernel, columns: int = 16, size: float = 0.6, title: str | None = None):
    """First-layer filters (kh, kw, in_channels, filters) as small images, each scaled alone.

    Three input channels are shown in colour; otherwise the channels are averaged.
    """
    kernel = np.asarray(kernel, dtype="float32")
    filters = np.moveaxis(kernel, -1, 0)  # (filters, kh, kw, in)
    if filters.shape[-1] != 3:
        filters = filters.mean(-1, keepdims=True)
    return image_grid(filters, columns=columns, size=size, title=title)


def plot_feature_maps(maps, columns: int = 8, size: float = 1.2, title: str | None = None):
    """The channels of one image's feature maps (H, W, C) side by side."""
    maps = np.asarray(maps, dtype="float32")
    return image_grid(np.moveaxis(maps, -1, 0)[..., None], columns=columns, size=size,
                      title=title)


def plot_bars(labels, values, xlabel: str = "", title: str | None = None, horizontal=True):
    """A plain bar chart, e.g. parameters or multiply-adds per layer: one bar per value, in
    order (the first on top when `horizontal`), even where labels repeat."""
    labels, values = [str(label) for label in labels], list(values)
    if len(labels) != len(values):
        raise ValueError(f"{len(labels)} labels for {len(values)} values: give one per bar")
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(labels) + 1.2))
    slots = np.arange(len(labels))  # bars by position: a repeated label is a second bar
    if horizontal:
        ax.barh(slots[::-1], values)
        ax.set_yticks(slots[::-1], labels)
        ax.set_xlabel(xlabel)
    else:
        ax.bar(slots, values)
        ax.set_xticks(slots, labels)
        ax.set_ylabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    fig.tight_layout()
    return fig


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Images (n, h, w, c) with values in [0, 1] side by side in rows of `columns`, with a
    one-pixel white gap between them; one channel comes back 2-D (grey)."""
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    mosaic = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels), "float32")
    for i, image in enumerate(images):
        top, left = (i // columns) * (height + 1), (i % columns) * (width + 1)
        mosaic[top:top + height, left:left + width] = image
    return mosaic[..., 0] if channels == 1 else mosaic


def _filter_mosaic(filters: np.ndarray, columns: int) -> np.ndarray:
    """Filters (n, kh, kw, c) side by side in one image, each scaled alone to [0, 1] and
    enlarged to about 24 pixels a side, with a one-pixel white gap between them (channels
    other than 3 are averaged to grey)."""
    if filters.shape[-1] != 3:
        filters = filters.mean(-1, keepdims=True)
    zoom = max(1, round(24 / max(filters.shape[1:3])))  # a gap thin next to a filter
    filters = filters.repeat(zoom, axis=1).repeat(zoom, axis=2)
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    high = filters.max(axis=(1, 2, 3), keepdims=True)
    spread = np.where(high > low, high - low, 1.0)
    return tile(np.where(high > low, (filters - low) / spread, 0.5), columns)


def plot_filters_by_tower(kernel, towers: int = 2, columns: int | None = None,
                          size: float = 0.45, notes=None, title: str | None = None):
    """First-layer filters (kh, kw, in_channels, filters) in one framed panel per tower.

    AlexNet's Figure 3: filters 0..n/towers-1 belong to tower 1 (GPU 1), the next n/towers
    to tower 2, and so on. Each filter is scaled alone; colour inputs are shown in colour,
    others in grey. `notes` (one string per tower) follow each panel's title, e.g. a
    measurement of its colour.
    """
    filters = np.moveaxis(np.asarray(kernel, dtype="float32"), -1, 0)  # (n, kh, kw, in)
    if len(filters) % towers:
        raise ValueError(f"{len(filters)} filters do not split into {towers} towers")
    per_tower = len(filters) // towers
    columns = columns or min(per_tower, 16)
    rows = math.ceil(per_tower / columns)
    # The layout in inches: a heading, then the filters, per panel; a gap between panels.
    heading, body, gap, top = 0.32, rows * size, 0.18, 0.4 if title else 0.05
    width = max(columns * size + 0.3, 4.5)  # room for the headings
    height = top + towers * (heading + body + gap)
    fig = plt.figure(figsize=(width, height))
    for tower in range(towers):
        y = height - top - tower * (heading + body + gap)  # the panel's top edge
        fig.patches.append(plt.Rectangle(
            (0.05 / width, (y - heading - body - 0.08) / height), 1 - 0.1 / width,
            (heading + body + 0.08) / height, transform=fig.transFigure, fill=True,
            facecolor="white" if tower % 2 == 0 else "0.93", edgecolor="0.5", lw=1.2,
            zorder=-1))
        first = tower * per_tower
        note = f": {notes[tower]}" if notes is not None else ""
        fig.text(0.5, (y - heading / 2) / height, f"tower {tower + 1} (GPU {tower + 1}), "
                 f"filters {first}-{first + per_tower - 1}{note}", ha="center",
                 va="center", fontsize=9)
        ax = fig.add_axes([(width - columns * size) / 2 / width, (y - heading - body) / height,
                           columns * size / width, body / height])
        mosaic = _filter_mosaic(filters[first:first + per_tower], columns)
        ax.imshow(mosaic, cmap="gray" if mosaic.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest", aspect="auto")
        ax.axis("off")
    if title:
        fig.text(0.5, 1 - 0.2 / height, title, ha="center", va="center", fontsize=11)
    return fig


def plot_receptive_fields(image, rows, title: str | None = None, size: float = 5.5,
                          cmap: str = "tab10", margin: float = 0.06):
    """Each layer's receptive field as a square on `image`, around the central unit.

    `rows` are `analysis.layer_table` rows (rows without a receptive field are skipped).
    Each square is the input window of the unit whose centre lies nearest the image's
    centre, placed from the row's ``start`` and ``jump``, so it shows where that unit looks,
    not just how big its window is. One square per row, labelled with its side in pixels.
    Neighbouring layers get different colours (a qualitative colour map) and alternate
    solid and dashed lines; the canvas reaches `margin` (a fraction of the image) beyond
    the image and every square, so a square that touches the border shows all four sides.
    """
    image = np.asarray(image)
    rows = [row for row in rows if row.get("receptive_field") is not None]
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(np.squeeze(image), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1
              else None)
    palette = plt.get_cmap(cmap)
    colours = (palette.colors if hasattr(palette, "colors") and len(palette.colors) < 32
               else palette(np.linspace(0.0, 0.9, max(len(rows), 1))))
    # Grey would vanish against the page and the photo: leave it out of the palette.
    colours = [c for c in colours if len(set(np.round(c[:3], 2))) > 1] or list(colours)
    low, high = np.array([-0.5, -0.5]), np.array([height - 0.5, width - 0.5])
    for i, row in enumerate(rows):
        # One value per axis (height, width) when the axes differ, else one for both.
        fields, jumps, starts = (np.broadcast_to(row[key], 2)
                                 for key in ("receptive_field", "jump", "start"))
        centres = []
        for axis, extent in enumerate((height, width)):
            units = row["output_shape"][1 + axis] if len(row["output_shape"]) == 4 else 1
            start, jump = starts[axis], jumps[axis]
            # Unit i looks around input coordinate start + i * jump (pixel p spans [p, p+1]).
            unit = min(range(units), key=lambda u: abs(start + u * jump - extent / 2))
            centres.append(start + unit * jump - 0.5)  # imshow puts pixel p's centre at p
        top, left = centres[0] - fields[0] / 2, centres[1] - fields[1] / 2
        low = np.minimum(low, [top, left])
        high = np.maximum(high, [top + fields[0], left + fields[1]])
        label = "x".join(f"{f:g}" for f in dict.fromkeys(fields))
        ax.add_patch(plt.Rectangle((left, top), fields[1], fields[0], fill=False, lw=2,
                                   linestyle="-" if i % 2 == 0 else "--",
                                   edgecolor=colours[i % len(colours)],
                                   label=f"{row['name']}: {label} px"))
    pad = margin * max(height, width)
    ax.set_xlim(low[1] - pad, high[1] + pad)
    ax.set_ylim(high[0] + pad, low[0] - pad)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False,
              handlelength=2.5)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _box(ax, x, y, width, height, text, colour):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02", facecolor=colour,
                                edgecolor="0.3", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _describe(layer, towers: int, split: bool) -> str:
    """A box's text: the layer's name, and what one tower (or the whole layer) holds."""
    share = towers if split else 1
    if hasattr(layer, "kernel_size"):
        kernel = "x".join(str(k) for k in layer.kernel_size)
        size = "x".join(str(d) for d in layer.output.shape[1:3])
        return f"{layer.name}: {layer.filters // share} filters {kernel}\nmaps {size}"
    return f"{layer.name}\n{layer.units // share} units"


def plot_towers(model, title: str | None = None, size: tuple = (6.4, 8.0)):
    """AlexNet's Figure 2 drawn from `model`: one column per tower, one row per layer with
    weights, top to bottom.

    The number of towers is the largest ``groups`` of the model's convolutions. Every
    convolution and hidden dense layer is drawn as one box per tower, holding its share of
    the filters or units; the last layer (the classifier) is one box. Arrows show what each
    box reads: a grouped layer (``groups`` equal to the towers) reads only its own tower
    (grey, straight down); any other layer reads every tower of the layer above (red: the
    GPUs exchange data there). The layers without weights in between (normalisation,
    pooling, flattening, dropout) are named beside the arrows.
    """
    from keras import layers as keras_layers  # plots stays importable without a model

    weighted = [layer for layer in model.layers
                if isinstance(layer, (keras_layers.Conv2D, keras_layers.Dense))]
    towers = max([getattr(layer, "groups", 1) for layer in weighted] + [1])
    between, gaps = [], []
    for layer in model.layers:  # a functional model lists its InputLayer, a Sequential not
        if type(layer).__name__ == "InputLayer":
            continue
        if layer in weighted:
            gaps.append(between)
            between = []
        else:
            between.append(layer.name)
    fig, ax = plt.subplots(figsize=size)
    step, box_w, box_h = 1.0, 0.86, 0.56
    columns = np.arange(towers, dtype=float)
    middle = columns.mean()
    shape = "x".join(str(d) for d in model.inputs[0].shape[1:])
    _box(ax, middle, 0, box_w * towers, box_h, f"image {shape}", "0.9")
    above = [middle]  # the x of each box in the row above
    for i, layer in enumerate(weighted, start=1):
        y = -i * step
        last = i == len(weighted)
        xs = [middle] if last else list(columns)
        own = getattr(layer, "groups", 1) == towers > 1
        for tower, x in enumerate(xs):
            sources = [above[tower]] if own and len(above) == len(xs) else above
            for source in sources:
                crossing = towers > 1 and not own and i > 1
                ax.annotate("", xy=(x, y + box_h / 2), xytext=(source, y + step - box_h / 2),
                            arrowprops={"arrowstyle": "->", "lw": 1.2 if crossing else 1,
                                        "color": "tab:red" if crossing else "0.45"})
        for x in xs:
            colour = "#cfe0f3" if hasattr(layer, "kernel_size") else "#f8dcc4"
            _box(ax, x, y, box_w * (towers if last else 1), box_h,
                 _describe(layer, towers, split=not last), colour)
        if gaps[i - 1]:
            ax.text(columns[-1] + box_w / 2 + 0.08, y + step / 2, ", ".join(gaps[i - 1]),
                    fontsize=7, color="0.35", va="center")
        above = xs
    if towers > 1:
        ax.plot([], [], color="0.45", label="reads its own tower only")
        ax.plot([], [], color="tab:red", label="reads every tower (GPUs exchange data)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    ax.set_xlim(-box_w / 2 - 0.1, columns[-1] + box_w / 2 + 1.0)
    ax.set_ylim(-len(weighted) * step - box_h, box_h)
    ax.axis("off")
    for tower, x in enumerate(columns if towers > 1 else []):
        ax.text(x, box_h / 2 + 0.12, f"tower {tower + 1} (GPU {tower + 1})", ha="center",
                fontsize=9, weight="bold")
    if title:
        ax.set_title(title, pad=18)
    fig.tight_layout()
    return fig
