"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015. https://arxiv.org/abs/1409.1556

Five blocks of 3x3 convolutions (stride 1, padding 1, ReLU), each followed by a 2x2
max-pool with stride 2, then AlexNet's head: fc6 and fc7 with 4096 units and dropout, fc8
and a softmax. The configurations A to E of Table 1 differ only in how many convolutions
each block has; `CONFIGS` is that table, and `VGG` builds any row of it:
``build("vgg16")`` (configuration D), ``build("vgg_c")``, ``build("vgg_a_lrn")``...

With ``weights="imagenet"``, `vgg16` and `vgg19` get keras.applications' ImageNet weights,
copied layer by layer into this builder's network (`course_lib.models.pretrained`), and
the model's ``preprocess`` is the input those weights expect.
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
)
from course_lib.models.pretrained import check_imagenet, load_imagenet
from course_lib.models.registry import register

# Table 1 as data: per block, the kernel size of each convolution (1 is configuration C's
# 1x1 "conv1"). Blocks 1-5 have 64, 128, 256, 512 and 512 filters.
CONFIGS = {
    "A": [(3,), (3,), (3, 3), (3, 3), (3, 3)],
    "A-LRN": [(3,), (3,), (3, 3), (3, 3), (3, 3)],  # A with LRN after the first conv
    "B": [(3, 3), (3, 3), (3, 3), (3, 3), (3, 3)],
    "C": [(3, 3), (3, 3), (3, 3, 1), (3, 3, 1), (3, 3, 1)],
    "D": [(3, 3), (3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3)],
    "E": [(3, 3), (3, 3), (3, 3, 3, 3), (3, 3, 3, 3), (3, 3, 3, 3)],
}
FILTERS = (64, 128, 256, 512, 512)
DENSE_UNITS = 4096  # fc6 and fc7
# Configurations whose ImageNet weights keras.applications has: its model's name.
IMAGENET = {"D": "VGG16", "E": "VGG19"}
# The smallest side: 32 px, one pixel after five 2x2 pools (the 3x3 convs keep the size).
SMALLEST_INPUT = smallest_input([(2, 2, "valid")] * 5)


def depth(config: str) -> int:
    """Weight layers of a configuration: its convolutions and three dense layers (A: 11)."""
    return sum(len(block) for block in CONFIGS[config]) + 3


@register("vgg19", config="E")
@register("vgg16", config="D")
@register("vgg13", config="B")
@register("vgg11", config="A")
@register("vgg_e", config="E")
@register("vgg_d", config="D")
@register("vgg_c", config="C")
@register("vgg_b", config="B")
@register("vgg_a_lrn", config="A-LRN")
@register("vgg_a", config="A")
def VGG(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    config: str = "D",
    width: float = 1.0,
    dense: int | None = None,
    dropout: float = 0.5,
    weights: str | None = None,
) -> keras.Model:
    """A VGG network: configuration `config` of Table 1 ("A", "A-LRN", "B", "C", "D", "E").

    Layers are named as in the Caffe models the authors released: conv{block}_{n},
    pool{block} (norm1 in A-LRN), then flatten, fc6, drop6, fc7, drop7, fc8 and
    "predictions", a float32 softmax.

    Args:
        input_shape: (height, width, channels); 224 x 224 x 3 in the paper, at least 32 px
            (32 px leaves 1 x 1 x 512 after pool5).
        num_classes: units of fc8.
        width: scales the filters of every convolution and, unless `dense` is given, the
            units of fc6 and fc7 (``width=0.25, dense=512`` trains on 32-px CIFAR-10).
        dense: units of fc6 and fc7; default ``4096 * width``.
        dropout: rate of drop6 and drop7 (0.5, Section 3.1).
        weights: None (random, Glorot as Keras does) or "imagenet": keras.applications'
            trained weights for D (vgg16) and E (vgg19), at the paper's size only. They
            are downloaded by Keras on first use (528 MB for VGG-16) and cached; without
            network, `pretrained.WeightsUnavailable` says so. The model then has
            ``model.preprocess``, the Caffe-style input those weights were trained on.
    """
    check_choice("config", config, CONFIGS)
    check_choice("weights", weights, {None: 0, "imagenet": 0})
    check_options(num_classes=num_classes, width=width, dense=dense, dropout=dropout)
    name = f"vgg_{config.lower().replace('-', '_')}"
    input_shape = check_input(input_shape, SMALLEST_INPUT, model=f"VGG ({name})")
    units = dense if dense is not None else scaled(DENSE_UNITS, width)
    if weights == "imagenet":
        if config not in IMAGENET:
            raise ValueError(f"keras.applications has ImageNet weights for VGG configurations"
                             f" {' and '.join(IMAGENET)} only (vgg16, vgg19); got {config!r}")
        check_imagenet(IMAGENET[config], input_shape=(input_shape, (224, 224, 3)),
                       num_classes=(num_classes, 1000), width=(width, 1.0),
                       dense=(units, DENSE_UNITS))  # offline: refused before 138 M weights

    x = inputs = keras.Input(input_shape, name="image")
    for block, (kernels, filters) in enumerate(zip(CONFIGS[config], FILTERS, strict=True), 1):
        for n, kernel in enumerate(kernels, 1):
            x = layers.Conv2D(scaled(filters, width), kernel, padding="same",
                              activation="relu", name=f"conv{block}_{n}")(x)
            if config == "A-LRN" and block == n == 1:
                x = LocalResponseNormalization(name="norm1")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    outputs = classifier(x, num_classes, units=units, dropout=dropout)  # fc6, fc7, fc8
    model = keras.Model(inputs, outputs, name=name)
    if weights == "imagenet":
        load_imagenet(model, IMAGENET[config])
    return model


# Section 3.1: "we initialised the first four convolutional layers and the last three
# fully-connected layers with the layers of net A"; in a deeper net they keep their names.
FROM_SHALLOW = ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8")


def initialise_from(shallow: keras.Model, deep: keras.Model, names=FROM_SHALLOW) -> None:
    """Section 3.1's start for a deep configuration: copy the layers `names` of a trained
    `shallow` net (configuration A) into the same-named layers of `deep`; the others keep
    their random initialisation. Shapes are checked layer by layer before anything is
    copied, and a missing or different layer is named."""
    for name in names:
        for model in (shallow, deep):
            if name not in {layer.name for layer in model.layers}:
                raise ValueError(f"{model.name} has no layer {name!r} to initialise from")
        source, target = shallow.get_layer(name), deep.get_layer(name)
        shapes = [[tuple(w.shape) for w in layer.weights] for layer in (source, target)]
        if shapes[0] != shapes[1]:
            raise ValueError(f"layer {name!r} differs: {shallow.name} {shapes[0]}, "
                             f"{deep.name} {shapes[1]} (same width and input size needed)")
    for name in names:
        deep.get_layer(name).set_weights(shallow.get_layer(name).get_weights())
