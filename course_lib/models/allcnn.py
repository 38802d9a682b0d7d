"""All-CNN: Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity: The All
Convolutional Net", ICLR 2015 workshop track. https://arxiv.org/abs/1412.6806

The paper asks whether a CIFAR-10 network needs max-pooling and fully connected layers.
Its three base models A, B and C (Table 1) have convolutions, two 3x3 max-pools with
stride 2 and no dense layer: a last 1x1 convolution gives one map per class, and the maps'
global average (over 6 x 6 positions on 32-px images) goes into the softmax. Table 2
derives three networks from each base model by changing only what the pools do:

- ``strided``: the pools are removed and the convolution before each pool gets stride 2;
- ``convpool``: an extra 3x3 convolution (as wide as the one before it) comes before each
  pool, to have as many parameters as the next one;
- ``allcnn``: each pool is replaced by a 3x3 convolution with stride 2.

`AllCNN` builds all twelve from the tables below: ``build("allcnn_c")``,
``build("model_a")``, ``build("strided_cnn_b")``, ``build("convpool_cnn_c")``...

Padding is the paper's arithmetic for 6 x 6 maps at the end: every convolution keeps the
map size ("same") except the first 3x3 convolution after the last pool, which has none
("valid"), and pools and stride-2 convolutions halve it, rounding up: 32 -> 16 -> 8 -> 6.
Dropout is Section 3.2's: 20% on the input image, 50% after each pool or the layer that
replaced it. Like the paper's Table 1, the class convolution has a ReLU before the average.
"""

from __future__ import annotations

import keras
from keras import layers

from course_lib.models.common import (
    check_choice,
    check_input,
    check_options,
    check_rate,
    scaled,
    smallest_input,
)
from course_lib.models.registry import register

# Table 1 as data: the layers before the class scores, as (kernel, filters) or "pool"
# (3x3 max-pooling, stride 2). Then every base model ends with `TOP`.
BASES = {
    "A": [(5, 96), "pool", (5, 192), "pool"],
    "B": [(5, 96), (1, 96), "pool", (5, 192), (1, 192), "pool"],
    "C": [(3, 96), (3, 96), "pool", (3, 192), (3, 192), "pool"],
}
TOP = [(3, 192, "valid"), (1, 192, "same")]  # then a 1x1 convolution with num_classes maps
# Table 2: what replaces each pool.
VARIANTS = ("model", "strided", "convpool", "allcnn")
NAMES = {"model": "model", "strided": "strided_cnn", "convpool": "convpool_cnn",
         "allcnn": "allcnn"}  # fmt: skip


def plan(base: str, variant: str) -> list[tuple]:
    """The network up to the class convolution as (kind, kernel, filters, stride, padding),
    kind "conv" or "pool": Table 1's `base` with its pools changed as `variant` says."""
    steps = []
    for entry in BASES[base]:
        if entry != "pool":
            kernel, filters = entry
            steps.append(("conv", kernel, filters, 1, "same"))
            continue
        filters = steps[-1][2]  # as wide as the convolution before the pool
        if variant == "model":
            steps.append(("pool", 3, filters, 2, "same"))
        elif variant == "strided":
            steps[-1] = ("conv", *steps[-1][1:3], 2, "same")
        elif variant == "convpool":
            steps += [("conv", 3, filters, 1, "same"), ("pool", 3, filters, 2, "same")]
        else:  # allcnn
            steps.append(("conv", 3, filters, 2, "same"))
    return steps + [("conv", kernel, filters, 1, padding) for kernel, filters, padding in TOP]


# The smallest side each network takes: 9 px for all twelve (9 -> 5 -> 3 -> 1).
SMALLEST_INPUT = {
    (base, variant): smallest_input([(k, s, p) for _, k, _, s, p in plan(base, variant)])
    for base in BASES for variant in VARIANTS
}  # fmt: skip


@register("allcnn_c", base="C", variant="allcnn")
@register("convpool_cnn_c", base="C", variant="convpool")
@register("strided_cnn_c", base="C", variant="strided")
@register("model_c", base="C", variant="model")
@register("allcnn_b", base="B", variant="allcnn")
@register("convpool_cnn_b", base="B", variant="convpool")
@register("strided_cnn_b", base="B", variant="strided")
@register("model_b", base="B", variant="model")
@register("allcnn_a", base="A", variant="allcnn")
@register("convpool_cnn_a", base="A", variant="convpool")
@register("strided_cnn_a", base="A", variant="strided")
@register("model_a", base="A", variant="model")
def AllCNN(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    base: str = "C",
    variant: str = "allcnn",
    width: float = 1.0,
    input_dropout: float = 0.2,
    dropout: float = 0.5,
) -> keras.Model:
    """One of the paper's twelve CIFAR networks: base model A, B or C (Table 1) with its
    pools kept (``variant="model"``) or changed as Table 2 does (strided, convpool, allcnn).

    Layers are numbered in order: conv1, conv2, ... (every convolution, with a ReLU),
    pool1 and pool2, drop0 on the input and drop1, drop2 after each pool or its
    replacement, then the class convolution, "global_pool" (the average over the last
    maps) and "predictions", a float32 softmax.

    Args:
        input_shape: (height, width, channels); 32 x 32 x 3 in the paper, at least 9 px.
        num_classes: maps of the last 1x1 convolution (10 or 100 in the paper).
        base: "A", "B" or "C" (Table 1).
        variant: "model" (the base model), "strided", "convpool" or "allcnn" (Table 2).
        width: scales every convolution's filters except the class convolution's.
        input_dropout: dropout rate on the input image (0.2 in the paper).
        dropout: dropout rate after each pool or the layer that replaced it (0.5).
    """
    check_choice("base", base, BASES)
    check_choice("variant", variant, VARIANTS)
    check_options(num_classes=num_classes, width=width, dropout=dropout)
    check_rate("input_dropout", input_dropout)
    name = f"{NAMES[variant]}_{base.lower()}"
    input_shape = check_input(input_shape, SMALLEST_INPUT[base, variant], model=name)

    x = inputs = keras.Input(input_shape, name="image")
    x = layers.Dropout(input_dropout, name="drop0")(x)
    convs = pools = drops = 0
    for kind, kernel, filters, stride, padding in plan(base, variant):
        if kind == "pool":
            pools += 1
            x = layers.MaxPooling2D(kernel, stride, padding=padding, name=f"pool{pools}")(x)
        else:
            convs += 1
            x = layers.Conv2D(scaled(filters, width), kernel, strides=stride, padding=padding,
                              activation="relu", name=f"conv{convs}")(x)
        if stride == 2:  # a pool, or the convolution in its place
            drops += 1
            x = layers.Dropout(dropout, name=f"drop{drops}")(x)
    x = layers.Conv2D(num_classes, 1, activation="relu", name=f"conv{convs + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
