"""ZFNet: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2013.
https://arxiv.org/abs/1311.2901

AlexNet, retuned after looking at what its layers learned (Section 4.1): conv1 shrinks from
11x11 stride 4 to 7x7 stride 2 and conv2 gets stride 2, which removes aliasing and dead
filters. It ran on one GPU, so no convolution is grouped. Each of the first two blocks is
convolution, ReLU, max-pool, then contrast normalization across feature maps (here the
course's `LocalResponseNormalization`, AlexNet's scheme with its constants).

``large=True`` (registered as "zfnet_large") is the paper's larger model, Table 2 (b) and
Table 3: conv3-conv5 with 512, 1024 and 512 maps. It and five networks of Figure 3 together
make the six-network ensemble of Table 2 (14.8% top-5 test error).

Map sizes follow Figure 3: 224 -> 110 (conv1) -> 55 (pool1) -> 26 (conv2) -> 13 (pool2,
conv3-5) -> 6 (pool5). Getting them takes conv1's padding of 1 and Caffe's ceil-mode
pooling; Keras has no ceil mode, so every pool is preceded by one row and column of zeros
on the bottom and right (`pool_ceil`), harmless after a ReLU.

`ZFNet` refuses, naming the option, an unknown stem, a width that is not a finite positive
number, num_classes or dense below 1, a dropout outside [0, 1), and an input_shape that is
not (height, width, channels) or smaller than its stem's `SMALLEST_INPUT`.
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

# conv1's (filters, kernel, stride, padding), by stem. "small" keeps 32 px images 32 wide.
STEMS = {
    "imagenet": (96, 7, 2, 1),  # Figure 3: 224 -> 110
    "small": (96, 3, 1, 1),  # 32 -> 32, for CIFAR-10 and Fashion-MNIST
}
# Figure 3 as data: conv2-conv5 as (filters, kernel, stride, padding).
CONVS = {
    "conv2": (256, 5, 2, "valid"),  # 55 -> 26
    "conv3": (384, 3, 1, "same"),
    "conv4": (384, 3, 1, "same"),
    "conv5": (256, 3, 1, "same"),
}
# Table 2 (b), Table 3 ("Adjust layers 3,4,5: 512,1024,512 maps"): the larger model's filters.
LARGE_FILTERS = {"conv3": 512, "conv4": 1024, "conv5": 512}
DENSE_UNITS = 4096  # fc6 and fc7


def windows(stem: str) -> list[tuple]:
    """conv1 to pool5 as (kernel, stride, padding) along one side: what shrinks the maps."""
    _, kernel, stride, padding = STEMS[stem]
    pool = (3, 2, 1)  # `pool_ceil`: one zero row (column) added, then 3x3 stride 2
    conv2, *conv3_5 = [(k, s, p) for _, k, s, p in CONVS.values()]
    return [(kernel, stride, 2 * padding), pool, conv2, pool, *conv3_5, pool]


# The smallest side each stem takes, one pixel after pool5: {"imagenet": 47, "small": 22}
# (the paper's stem: 47 -> 22 -> 11 -> 4 -> 2 -> 1).
SMALLEST_INPUT = {stem: smallest_input(windows(stem)) for stem in STEMS}


@register("zfnet_large", large=True)
@register("zfnet")
def ZFNet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    width: float = 1.0,
    dense: int | None = None,
    stem: str = "imagenet",
    lrn: bool = True,
    dropout: float = 0.5,
    large: bool = False,
) -> keras.Model:
    """ZFNet as in Figure 3 of the paper, or its larger variant of Table 2 (b).

    conv1 -> pool1 -> norm1 -> conv2 -> pool2 -> norm2 -> conv3 -> conv4 -> conv5 -> pool5
    -> fc6 -> drop6 -> fc7 -> drop7 -> fc8 -> predictions, every conv and fc6/fc7 with a
    ReLU, every pool 3x3 with stride 2, "predictions" a float32 softmax. On 224 px it has
    62,357,608 parameters and 1,168,032,896 multiply-adds; with ``large=True``,
    107,627,624 parameters and 2,476,704,896 multiply-adds (conv4 and conv5 alone do
    1,594,884,096 of them, and fc6 reads 6 x 6 x 512 = 18,432 values instead of 9,216).

    Args:
        input_shape: (height, width, channels); 224 px in the paper. Each side at least
            `SMALLEST_INPUT[stem]` (47 px, or 22 px with the small stem); any number of
            channels, and non-square inputs, work.
        num_classes: units of fc8.
        width: scales the filters of every conv and, unless `dense` is given, the units of
            fc6 and fc7.
        dense: units of fc6 and fc7; default ``4096 * width``.
        stem: conv1's geometry, a key of `STEMS`: "imagenet" (7x7 stride 2, the paper)
            or "small" (3x3 stride 1) for 32 px images.
        lrn: whether to keep the normalizations norm1 and norm2.
        dropout: rate of drop6 and drop7 (0.5 in the paper).
        large: conv3, conv4 and conv5 with 512, 1024 and 512 filters (times `width`)
            instead of 384, 384 and 256: the paper's larger model, Table 2 (b).

    Recommended small variant for 32x32 images (CPU, minutes)::

        ZFNet((32, 32, 3), 10, width=0.25, dense=512, stem="small")

    Its maps are 32 (conv1) -> 16 (pool1) -> 6 (conv2) -> 3 (pool2, conv3-5) -> 1 (pool5);
    it has 533,994 parameters and 4,087,808 multiply-adds per image.
    """
    check_choice("stem", stem, STEMS)
    check_options(num_classes=num_classes, width=width, dense=dense, dropout=dropout,
                  flags={"lrn": lrn, "large": large})
    input_shape = check_input(
        input_shape, SMALLEST_INPUT[stem], model=f"ZFNet with stem={stem!r}"
    )
    units = dense if dense is not None else scaled(DENSE_UNITS, width)

    x = inputs = keras.Input(input_shape, name="image")
    filters, kernel, stride, padding = STEMS[stem]
    x = stem_conv(x, scaled(filters, width), kernel, stride, padding, name="conv1")
    x = pool_ceil(x, name="pool1")
    x = normalize(x, name="norm1", lrn=lrn)
    x = conv(x, "conv2", width)
    x = pool_ceil(x, name="pool2")
    x = normalize(x, name="norm2", lrn=lrn)
    x = conv(x, "conv3", width, large)
    x = conv(x, "conv4", width, large)
    x = conv(x, "conv5", width, large)
    x = pool_ceil(x, name="pool5")
    outputs = classifier(x, num_classes, units=units, dropout=dropout)  # fc6, fc7, fc8
    return keras.Model(inputs, outputs, name="zfnet_large" if large else "zfnet")


def conv(x, name: str, width: float, large: bool = False):
    """One of conv2-conv5 from `CONVS` (`LARGE_FILTERS` when `large`), with ReLU."""
    filters, kernel, stride, padding = CONVS[name]
    if large:
        filters = LARGE_FILTERS.get(name, filters)
    return layers.Conv2D(
        scaled(filters, width),
        kernel,
        strides=stride,
        padding=padding,
        activation="relu",
        name=name,
    )(x)


def pool_ceil(x, *, name: str):
    """3x3 stride-2 max-pool in Caffe's ceil mode: the last, partial window is kept.

    One zero row and column on the bottom and right make a "valid" pool see that window;
    the zeros never win the max because the inputs are ReLU outputs (>= 0).
    """
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name=name)(x)


def normalize(x, *, name: str, lrn: bool = True):
    """Contrast normalization across feature maps, or nothing when `lrn` is False."""
    return LocalResponseNormalization(name=name)(x) if lrn else x
