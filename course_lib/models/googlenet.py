"""GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
https://arxiv.org/abs/1409.4842

A stem that takes a 224-px image down to 28 x 28 quickly, then nine *inception modules*
(3a to 5b), each running 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool side by side
and stacking their maps, with 1x1 convolutions that reduce the channels before the
expensive 3x3 and 5x5 filters and after the pool. Global average pooling, 40% dropout
and one linear layer make the classifier. `STAGES` is the paper's Table 1 as data.

The network is the original one, as in Caffe's reference model bvlc_googlenet: every
convolution has a bias and a ReLU, there is no batch normalisation, and the stem has two
local response normalisations (Caffe's, with k = 1). Pools are 3x3 with stride 2 and
round their output size up, as Caffe's do ("same" padding gives the same sizes:
112 -> 56 -> 28 -> 14 -> 7).

``aux_logits=True`` adds the two auxiliary classifiers of Section 5 on top of 4a and 4d;
the model then has three outputs (aux1, aux2, main), to be trained with loss weights
`AUX_LOSS_WEIGHTS` (0.3, 0.3, 1.0); `main_head(model)` is the network used at inference.
"""

from __future__ import annotations

import keras
from keras import layers

from course_lib.layers import LocalResponseNormalization
from course_lib.models.common import (
    check_input,
    check_options,
    scaled,
    smallest_input,
    stem_conv,
)
from course_lib.models.registry import register

# Table 1 as data: per stage, its inception modules with their widths in the table's
# order, (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); a 3x3/2 max-pool comes
# between stages.
STAGES = {
    3: {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64)},
    4: {"4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
        "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
        "4e": (256, 160, 320, 32, 128, 128)},
    5: {"5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128)},
}  # fmt: skip
AUX_AFTER = ("4a", "4d")  # Section 5: the auxiliary classifiers sit on 4a and 4d
AUX_LOSS_WEIGHTS = (0.3, 0.3, 1.0)  # aux1, aux2, main: "weighted by 0.3"
# The smallest side: the stem's 7x7/2 conv (3 px of padding) and four "same" 3x3/2 pools
# leave one pixel from 1 px up; the auxiliary heads' 5x5/3 average pool needs 5 x 5 maps
# after 4a, that is 65 px (65 -> 33 -> 17 -> 9 -> 5).
SMALLEST_INPUT = smallest_input([(7, 2, 6)] + [(3, 2, "same")] * 4)
SMALLEST_WITH_AUX = smallest_input([(7, 2, 6)] + [(3, 2, "same")] * 3 + [(5, 3, "valid")])


def inception_module(x, widths, *, name: str, naive: bool = False):
    """One inception module on maps `x`: four branches side by side, concatenated.

    `widths` are Table 1's six numbers, (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5,
    pool proj). The branches: a 1x1 convolution; a 1x1 reduction then a 3x3 convolution;
    a 1x1 reduction then a 5x5 convolution; a 3x3 max-pool (stride 1) then a 1x1
    projection. ``naive=True`` is Figure 2(a): the 1x1, 3x3 and 5x5 convolutions on `x`
    itself and the pool's maps passed on unchanged, so the reductions and the pool
    projection (their entries in `widths` are ignored) are missing.
    """
    n1x1, reduce3, n3x3, reduce5, n5x5, pool_proj = widths

    def conv(y, filters, kernel, suffix):
        return layers.Conv2D(filters, kernel, padding="same", activation="relu",
                             name=f"{name}_{suffix}")(y)

    pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    if naive:
        branches = [conv(x, n1x1, 1, "1x1"), conv(x, n3x3, 3, "3x3"), conv(x, n5x5, 5, "5x5"),
                    pooled]
    else:
        branches = [conv(x, n1x1, 1, "1x1"),
                    conv(conv(x, reduce3, 1, "3x3_reduce"), n3x3, 3, "3x3"),
                    conv(conv(x, reduce5, 1, "5x5_reduce"), n5x5, 5, "5x5"),
                    conv(pooled, pool_proj, 1, "pool_proj")]
    return layers.Concatenate(name=f"{name}_output")(branches)


def auxiliary_head(x, num_classes: int, *, name: str, dropout: float = 0.7):
    """Section 5's side classifier: 5x5/3 average pool, 1x1 conv 128, fc 1024, 70%
    dropout, a linear layer and a float32 softmax."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = layers.Conv2D(128, 1, activation="relu", name=f"{name}_conv")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", name=f"{name}_fc")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Dense(num_classes, name=f"{name}_classifier")(x)
    return layers.Activation("softmax", dtype="float32", name=f"{name}_predictions")(x)


@register("googlenet")
def GoogLeNet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    width: float = 1.0,
    aux_logits: bool = False,
    dropout: float = 0.4,
    lrn: bool = True,
) -> keras.Model:
    """GoogLeNet as in Table 1 of the paper (bvlc_googlenet's layers).

    conv1 (7x7/2) -> pool1 -> norm1 -> conv2_reduce (1x1) -> conv2 (3x3) -> norm2 -> pool2
    -> 3a, 3b -> pool3 -> 4a ... 4e -> pool4 -> 5a, 5b -> global_pool -> dropout ->
    classifier -> predictions (a float32 softmax).

    Args:
        input_shape: (height, width, channels); 224 x 224 x 3 in the paper; at least
            `SMALLEST_INPUT` px (`SMALLEST_WITH_AUX` with the auxiliary heads).
        num_classes: units of the classifier (and of the auxiliary heads').
        width: scales every convolution's filters (the auxiliary heads keep theirs).
        aux_logits: add the two auxiliary classifiers; the model then returns
            [aux1, aux2, main] predictions (train with `AUX_LOSS_WEIGHTS`).
        dropout: before the classifier (0.4 in the paper).
        lrn: keep the stem's two local response normalisations.
    """
    check_options(num_classes=num_classes, width=width, dropout=dropout,
                  flags={"aux_logits": aux_logits, "lrn": lrn})
    smallest = SMALLEST_WITH_AUX if aux_logits else SMALLEST_INPUT
    input_shape = check_input(input_shape, smallest, model="GoogLeNet" +
                              (" with auxiliary classifiers" if aux_logits else ""))

    def norm(y, name):
        return LocalResponseNormalization(k=1.0, name=name)(y) if lrn else y

    x = inputs = keras.Input(input_shape, name="image")
    x = stem_conv(x, scaled(64, width), 7, 2, 3, name="conv1")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = norm(x, "norm1")
    x = layers.Conv2D(scaled(64, width), 1, activation="relu", name="conv2_reduce")(x)
    x = layers.Conv2D(scaled(192, width), 3, padding="same", activation="relu",
                      name="conv2")(x)
    x = norm(x, "norm2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for stage, modules in STAGES.items():
        if stage > 3:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage - 1}")(x)
        for module, widths in modules.items():
            x = inception_module(x, [scaled(w, width) for w in widths],
                                 name=f"inception_{module}")
            if aux_logits and module in AUX_AFTER:
                aux.append(auxiliary_head(x, num_classes, name=f"aux{len(aux) + 1}"))
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="classifier")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, [*aux, outputs] if aux_logits else outputs, name="googlenet")


def main_head(model: keras.Model) -> keras.Model:
    """The network used at inference: `model`'s main classifier only, sharing its weights
    (a model built with ``aux_logits=True`` drops its auxiliary heads)."""
    return keras.Model(model.inputs, model.get_layer("predictions").output, name=model.name)
