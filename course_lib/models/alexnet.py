"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012. https://papers.nips.cc/paper/4824

Five convolutions and three dense layers, as the network ran on two GTX 580s: each GPU held
half the filters, and the halves ("towers") only talked at conv3 and in the dense layers.
Here the split is a grouped convolution (``groups=2``) at conv2, conv4 and conv5.

The paper writes 224 x 224 inputs, but (224 - 11) / 4 + 1 is not a whole number; the
arithmetic, and the Caffe reference model bvlc_alexnet, use 227 x 227. On 227 px this
builder has bvlc_alexnet's 60,965,224 parameters and 724,406,816 multiply-adds.

`AlexNet` refuses, naming the option, an unknown stem, a width that is not a finite positive
number, num_classes, dense or towers below 1, a dropout outside [0, 1), and an input_shape
that is not (height, width, channels) or smaller than its stem's `SMALLEST_INPUT`.
"""

from __future__ import annotations

import keras
from keras import layers

from course_lib.layers import LocalResponseNormalization
from course_lib.models.common import (
    check_choice,
    check_input,
    check_options,
    classifier,
    scaled,
    smallest_input,
    stem_conv,
)
from course_lib.models.registry import register

# conv1's (filters, kernel, stride, padding), by stem.
STEMS = {
    "imagenet": (96, 11, 4, 0),  # Section 3.5: 227 -> 55
    "small": (96, 3, 1, 1),  # 32 -> 32, for CIFAR-10 and Fashion-MNIST
}
# Figure 2 as data: conv2-conv5 as (filters, kernel, towers). towers=2 where each GPU's
# filters only see that GPU's half of the previous layer; all are stride 1, "same" padding.
CONVS = {
    "conv2": (256, 5, 2),
    "conv3": (384, 3, 1),
    "conv4": (384, 3, 2),
    "conv5": (256, 3, 2),
}
DENSE_UNITS = 4096  # fc6 and fc7


def windows(stem: str) -> list[tuple]:
    """conv1 to pool5 as (kernel, stride, padding) along one side: what shrinks the maps."""
    _, kernel, stride, padding = STEMS[stem]
    pool = (3, 2, "valid")  # Section 3.4: overlapping pools
    conv2, *conv3_5 = [(k, 1, "same") for _, k, _ in CONVS.values()]
    return [(kernel, stride, 2 * padding), pool, conv2, pool, *conv3_5, pool]


# The smallest side each stem takes, one pixel after pool5: {"imagenet": 67, "small": 15}
# (the paper's stem: 67 -> 15 -> 7 -> 3 -> 1).
SMALLEST_INPUT = {stem: smallest_input(windows(stem)) for stem in STEMS}


@register("alexnet")
def AlexNet(
    input_shape: tuple[int, int, int] = (227, 227, 3),
    num_classes: int = 1000,
    *,
    width: float = 1.0,
    dense: int | None = None,
    stem: str = "imagenet",
    lrn: bool = True,
    caffenet: bool = False,
    towers: int = 2,
    dropout: float = 0.5,
) -> keras.Model:
    """AlexNet as in Figure 2 of the paper, with the two GPUs as grouped convolutions.

    conv1 -> norm1 -> pool1 -> conv2 -> norm2 -> pool2 -> conv3 -> conv4 -> conv5 -> pool5
    -> fc6 -> drop6 -> fc7 -> drop7 -> fc8 -> predictions. Every conv and fc6/fc7 has a
    ReLU; pools are overlapping, 3x3 with stride 2; "predictions" is a float32 softmax, so
    the model stays numerically safe under mixed precision.

    Args:
        input_shape: (height, width, channels). 227 px for the paper's arithmetic; each
            side at least `SMALLEST_INPUT[stem]` (67 px, or 15 px with the small stem).
            Any number of channels, and non-square inputs, work.
        num_classes: units of fc8.
        width: scales the filters of every conv (kept a multiple of `towers`) and, unless
            `dense` is given, the units of fc6 and fc7.
        dense: units of fc6 and fc7; default ``4096 * width``.
        stem: conv1's geometry, a key of `STEMS`: "imagenet" (11x11 stride 4, the paper)
            or "small" (3x3 stride 1, padding 1) for 32-64 px images.
        lrn: whether to keep the local response normalizations norm1 and norm2.
        caffenet: pool before normalizing, the order of Caffe's CaffeNet
            (bvlc_reference_caffenet); the paper normalizes, then pools.
        towers: groups of conv2, conv4 and conv5; 2 as on the paper's two GPUs, 1 for a
            single-GPU network that connects all channels.
        dropout: rate of drop6 and drop7 (0.5 in the paper).

    Recommended small variant for 32x32 images (CIFAR-10, Fashion-MNIST padded to 32)::

        AlexNet((32, 32, 3), 10, width=0.25, dense=512, stem="small")

    It keeps every layer, with maps 32 (conv1) -> 15 (pool1, conv2) -> 7 (pool2, conv3-5)
    -> 3 (pool5), 707,818 parameters and 11,642,112 multiply-adds per image. The paper's
    stem fits from 67 px on (maps 67 -> 15 -> 7 -> 3 -> 1). On a CPU, add ``towers=1``
    when speed matters more than the split: XLA's CPU kernels for grouped convolutions
    are slow, and training then runs about 1.5-4x faster (796,138 parameters).
    """
    check_choice("stem", stem, STEMS)
    check_options(num_classes=num_classes, width=width, dense=dense, dropout=dropout,
                  towers=towers, flags={"lrn": lrn, "caffenet": caffenet})
    input_shape = check_input(
        input_shape, SMALLEST_INPUT[stem], model=f"AlexNet with stem={stem!r}"
    )
    units = dense if dense is not None else scaled(DENSE_UNITS, width)

    x = inputs = keras.Input(input_shape, name="image")
    filters, kernel, stride, padding = STEMS[stem]
    x = stem_conv(x, scaled(filters, width, towers), kernel, stride, padding, name="conv1")
    x = normalize_and_pool(x, block=1, lrn=lrn, pool_first=caffenet)
    x = conv(x, "conv2", width, towers)
    x = normalize_and_pool(x, block=2, lrn=lrn, pool_first=caffenet)
    x = conv(x, "conv3", width, towers)
    x = conv(x, "conv4", width, towers)
    x = conv(x, "conv5", width, towers)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    outputs = classifier(x, num_classes, units=units, dropout=dropout)  # fc6, fc7, fc8
    return keras.Model(inputs, outputs, name="alexnet")


def conv(x, name: str, width: float, towers: int):
    """One of conv2-conv5 from `CONVS`: stride 1, "same" padding, ReLU, split in towers."""
    filters, kernel, groups = CONVS[name]
    return layers.Conv2D(
        scaled(filters, width, towers),
        kernel,
        padding="same",
        groups=towers if groups > 1 else 1,
        activation="relu",
        name=name,
    )(x)


def normalize_and_pool(x, *, block: int, lrn: bool = True, pool_first: bool = False):
    """norm{block} then pool{block} (the paper), or pool then norm (CaffeNet).

    The norm is Section 3.3's local response normalization, the pool Section 3.4's
    overlapping max-pool: 3x3 windows, stride 2.
    """
    norm = LocalResponseNormalization(name=f"norm{block}") if lrn else None
    pool = layers.MaxPooling2D(3, strides=2, name=f"pool{block}")
    for step in (pool, norm) if pool_first else (norm, pool):
        if step is not None:
            x = step(x)
    return x
