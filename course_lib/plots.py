"""Static matplotlib figures for the notebooks: curves, image grids, filters, feature maps.

Every function draws one figure, returns it, and leaves showing it to the notebook
(`plt.show()` is implicit at the end of a cell). Nothing updates live: live plots pile up
when notebooks are executed headless.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def plot_history(history: dict, metrics=("loss", "accuracy"), title: str | None = None):
    """Training vs validation curves, one panel per metric, epochs on the x-axis."""
    metrics = [m for m in metrics if m in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    epochs = history.get("epoch") or list(range(1, len(history[metrics[0]]) + 1))
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.plot(epochs, history[metric], "o-", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s--", label="validation")
        ax.set_xlabel("epoch")
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
    """A grid of images with optional labels (integers mapped through `class_names`)."""
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
    """A plain bar chart, e.g. parameters or multiply-adds per layer."""
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(labels) + 1.2))
    if horizontal:
        ax.barh(list(labels)[::-1], list(values)[::-1])
        ax.set_xlabel(xlabel)
    else:
        ax.bar(list(labels), list(values))
        ax.set_ylabel(xlabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    fig.tight_layout()
    return fig


def plot_receptive_fields(image, rows, title: str | None = None, size: float = 5.5,
                          cmap: str = "viridis"):
    """Each layer's receptive field as a square on `image`, around the central unit.

    `rows` are `analysis.layer_table` rows (rows without a receptive field are skipped).
    Each square is the input window of the unit whose centre lies nearest the image's
    centre, placed from the row's ``start`` and ``jump``, so it shows where that unit looks,
    not just how big its window is. One square per row, labelled with its side in pixels.
    """
    image = np.asarray(image)
    rows = [row for row in rows if row.get("receptive_field") is not None]
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(np.squeeze(image), cmap="gray" if image.ndim == 2 or image.shape[-1] == 1
              else None)
    colours = plt.get_cmap(cmap)(np.linspace(0.0, 0.9, max(len(rows), 1)))
    for row, colour in zip(rows, colours, strict=True):
        # One value per axis (height, width) when the axes differ, else one for both.
        fields, jumps, starts = (np.broadcast_to(row[key], 2)
                                 for key in ("receptive_field", "jump", "start"))
        centres = []
        for axis, extent in enumerate((height, width)):
            units = row["output_shape"][1 + axis] if len(row["output_shape"]) == 4 else 1
            start, jump = starts[axis], jumps[axis]
            # Unit i looks around input coordinate start + i * jump (pixel p spans [p, p+1]).
            i = min(range(units), key=lambda u: abs(start + u * jump - extent / 2))
            centres.append(start + i * jump - 0.5)  # imshow puts pixel p's centre at p
        top, left = centres[0] - fields[0] / 2, centres[1] - fields[1] / 2
        label = "x".join(f"{f:g}" for f in dict.fromkeys(fields))
        ax.add_patch(plt.Rectangle((left, top), fields[1], fields[0], fill=False, lw=2,
                                   edgecolor=colour, label=f"{row['name']}: {label} px"))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
