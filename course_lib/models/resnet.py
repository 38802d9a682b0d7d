"""ResNet: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
https://arxiv.org/abs/1512.03385

A residual block adds its input to what its convolutions compute, y = F(x) + x, so that a
deeper network can always fall back on the identity. Two families, as in the paper:

- **ImageNet** (Table 1): a 7x7/2 stem and a 3x3/2 max-pool, then four stages of blocks
  (64, 128, 256, 512 filters) that halve the map and double the channels; *basic* blocks
  (two 3x3 convolutions) for 18 and 34 layers, *bottleneck* blocks (1x1 down, 3x3, 1x1 up
  to 4x the filters) for 50, 101 and 152. Where a shortcut changes shape it is a 1x1
  convolution with batch norm (a "projection", option B). Every convolution is followed
  by batch norm and has no bias. `STAGES` is Table 1 as data.
- **CIFAR-10** (Section 4.2): 6n + 2 layers, a 3x3 convolution, three stages of n basic
  blocks with 16, 32 and 64 filters on 32, 16 and 8-px maps, global average pooling and a
  10-way classifier. The shortcuts have no parameters ("option A"): where the map halves,
  the input is subsampled with stride 2 and its channels are doubled with zeros.

``shortcuts=False`` builds the paper's "plain" networks, the same layers without the
additions (``build("plain20")``, ``build("plain34")``). ``stem="small"`` replaces the
ImageNet stem (7x7/2 convolution and 3x3/2 max-pool) by a 3x3/1 convolution and no pool,
the usual way to train an ImageNet ResNet on 32-px CIFAR images (``build("resnet18",
input_shape=(32, 32, 3), num_classes=10, stem="small")``, as torchvision-based CIFAR
references do).

The original ResNet puts a bottleneck block's stride in its first 1x1 convolution;
``stride_in_3x3=True`` moves it to the 3x3 convolution, as later versions ("v1.5", e.g.
torchvision's) do. Layers are named as in keras.applications' ResNets.
"""

from __future__ import annotations

import keras
from keras import layers

from course_lib.config import is_whole
from course_lib.models.common import check_choice, check_input, check_options, scaled
from course_lib.models.pretrained import check_imagenet, load_imagenet
from course_lib.models.registry import register

# Table 1: blocks per stage, and the kind of block.
STAGES = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
    101: ((3, 4, 23, 3), "bottleneck"),
    152: ((3, 8, 36, 3), "bottleneck"),
}
FILTERS = (64, 128, 256, 512)  # per stage; a bottleneck block outputs 4x as many
CIFAR_FILTERS = (16, 32, 64)
BN = dict(epsilon=1e-5, momentum=0.9)  # Caffe's and PyTorch's epsilon, their 0.1 update
# Section 3.4: "We initialize the weights as in [13]": He et al.'s normal initialisation,
# variance 2 / (inputs per output), in every convolution
HE = "he_normal"
# Depths whose ImageNet weights keras.applications has: its model's name.
IMAGENET = {50: "ResNet50", 101: "ResNet101", 152: "ResNet152"}


def conv_bn(x, filters: int, kernel: int, stride: int = 1, *, name: str, relu: bool = True):
    """A convolution without bias ("same" padding), batch norm, and a ReLU when `relu`."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_initializer=HE, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(**BN, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters: int, stride: int, *, name: str, shortcut: str | None):
    """Two 3x3 convolutions; `shortcut` is None (a plain block), "identity", "projection"
    (1x1 conv and batch norm) or "zeros" (option A: subsample, pad channels with zeros)."""
    skip = _shortcut(x, filters, stride, name=name, kind=shortcut)
    y = conv_bn(x, filters, 3, stride, name=f"{name}_1")
    y = conv_bn(y, filters, 3, name=f"{name}_2", relu=False)
    return _join(y, skip, name=name)


def bottleneck_block(x, filters: int, stride: int, *, name: str, shortcut: str | None,
                     stride_in_3x3: bool = False):
    """1x1 down to `filters`, 3x3, 1x1 up to 4 x `filters`; the stride in the first 1x1
    (the paper) or in the 3x3 (`stride_in_3x3`, "v1.5")."""
    skip = _shortcut(x, 4 * filters, stride, name=name, kind=shortcut)
    y = conv_bn(x, filters, 1, 1 if stride_in_3x3 else stride, name=f"{name}_1")
    y = conv_bn(y, filters, 3, stride if stride_in_3x3 else 1, name=f"{name}_2")
    y = conv_bn(y, 4 * filters, 1, name=f"{name}_3", relu=False)
    return _join(y, skip, name=name)


def _shortcut(x, filters: int, stride: int, *, name: str, kind: str | None):
    if kind is None:  # a plain block: no shortcut
        return None
    if kind == "projection":
        return conv_bn(x, filters, 1, stride, name=f"{name}_0", relu=False)
    if kind == "zeros":  # option A: keep every stride-th pixel, add zero channels
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(x)
        zeros = layers.Rescaling(0.0, name=f"{name}_0_zeros")(x)
        return layers.Concatenate(name=f"{name}_0_pad")([x, zeros])
    return x  # identity


def _join(y, skip, *, name: str):
    if skip is not None:
        y = layers.Add(name=f"{name}_add")([skip, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _kind(shortcuts: bool, changes_shape: bool, option: str) -> str | None:
    if not shortcuts:
        return None
    return option if changes_shape else "identity"


def _head(x, num_classes: int):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(num_classes, name="fc")(x)
    return layers.Activation("softmax", dtype="float32", name="predictions")(x)


@register("plain34", depth=34, shortcuts=False)
@register("plain18", depth=18, shortcuts=False)
@register("resnet152", depth=152)
@register("resnet101", depth=101)
@register("resnet50", depth=50)
@register("resnet34", depth=34)
@register("resnet18", depth=18)
def ResNet(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    num_classes: int = 1000,
    *,
    depth: int = 50,
    width: float = 1.0,
    shortcuts: bool = True,
    stride_in_3x3: bool = False,
    stem: str = "imagenet",
    weights: str | None = None,
) -> keras.Model:
    """An ImageNet ResNet of Table 1 (`depth` 18, 34, 50, 101 or 152).

    conv1 (7x7/2, batch norm, ReLU) -> pool1 (3x3/2) -> conv2_x ... conv5_x -> avg_pool ->
    fc -> predictions (a float32 softmax). Blocks are named conv{stage}_block{n}.

    Args:
        input_shape: (height, width, channels); 224 x 224 x 3 in the paper, at least 1 px.
        num_classes: units of fc.
        depth: a key of `STAGES`.
        width: scales every convolution's filters.
        shortcuts: False builds the paper's plain network of the same depth.
        stride_in_3x3: bottleneck blocks stride in their 3x3 convolution ("v1.5").
        stem: "imagenet" (the paper's) or "small" (3x3/1, no pool: for 32-px images).
        weights: None (random) or "imagenet": keras.applications' trained weights for
            ResNet-50, -101 and -152 at the paper's size (downloaded by Keras on first
            use), their convolution biases folded into the batch norms
            (`pretrained.copy_weights`); the model then has ``model.preprocess``.
    """
    if not is_whole(depth) or depth not in STAGES:
        raise ValueError(f"depth must be one of {', '.join(map(str, STAGES))}; got {depth!r}")
    check_options(num_classes=num_classes, width=width,
                  flags={"shortcuts": shortcuts, "stride_in_3x3": stride_in_3x3})
    check_choice("weights", weights, {None: 0, "imagenet": 0})
    check_choice("stem", stem, {"imagenet": 0, "small": 0})
    name = f"{'resnet' if shortcuts else 'plain'}{depth}"
    input_shape = check_input(input_shape, 1, model=name)
    if weights == "imagenet":
        if depth not in IMAGENET:
            raise ValueError(f"keras.applications has ImageNet weights for ResNet depths "
                             f"{', '.join(map(str, IMAGENET))} only; got depth={depth!r}")
        check_imagenet(IMAGENET[depth], input_shape=(input_shape, (224, 224, 3)),
                       num_classes=(num_classes, 1000), width=(width, 1.0),
                       shortcuts=(shortcuts, True), stride_in_3x3=(stride_in_3x3, False),
                       stem=(stem, "imagenet"))
    blocks, kind = STAGES[depth]
    x = inputs = keras.Input(input_shape, name="image")
    if stem == "small":
        x = conv_bn(x, scaled(64, width), 3, name="conv1")
    else:
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = layers.Conv2D(scaled(64, width), 7, strides=2, use_bias=False,
                          kernel_initializer=HE, name="conv1_conv")(x)
        x = layers.BatchNormalization(**BN, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    channels = x.shape[-1]
    for stage, (count, filters) in enumerate(zip(blocks, FILTERS, strict=True), 2):
        filters = scaled(filters, width)
        out = filters * (4 if kind == "bottleneck" else 1)
        for n in range(1, count + 1):
            stride = 2 if n == 1 and stage > 2 else 1
            shortcut = _kind(shortcuts, stride != 1 or channels != out, "projection")
            block_name = f"conv{stage}_block{n}"
            if kind == "basic":
                x = basic_block(x, filters, stride, name=block_name, shortcut=shortcut)
            else:
                x = bottleneck_block(x, filters, stride, name=block_name, shortcut=shortcut,
                                     stride_in_3x3=stride_in_3x3)
            channels = out
    model = keras.Model(inputs, _head(x, num_classes), name=name)
    if weights == "imagenet":
        load_imagenet(model, IMAGENET[depth])
    return model


@register("plain110", n=18, shortcuts=False)
@register("plain56", n=9, shortcuts=False)
@register("plain44", n=7, shortcuts=False)
@register("plain32", n=5, shortcuts=False)
@register("plain20", n=3, shortcuts=False)
@register("resnet110", n=18)
@register("resnet56", n=9)
@register("resnet44", n=7)
@register("resnet32", n=5)
@register("resnet20", n=3)
def CifarResNet(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    *,
    n: int = 3,
    width: float = 1.0,
    shortcuts: bool = True,
) -> keras.Model:
    """Section 4.2's CIFAR-10 network with 6n + 2 layers (n = 3: ResNet-20).

    conv1 (3x3, 16) -> three stages of n basic blocks (16, 32, 64 filters; the 2nd and 3rd
    start with stride 2) -> avg_pool -> fc -> predictions. Shortcuts are option A: no
    parameters. ``shortcuts=False`` is the plain network.
    """
    check_options(num_classes=num_classes, width=width, n=n, flags={"shortcuts": shortcuts})
    name = f"{'resnet' if shortcuts else 'plain'}{6 * n + 2}"
    input_shape = check_input(input_shape, 1, model=name)
    x = inputs = keras.Input(input_shape, name="image")
    base = scaled(CIFAR_FILTERS[0], width)  # each stage doubles it, as option A needs
    x = conv_bn(x, base, 3, name="conv1")
    for stage in range(2, 2 + len(CIFAR_FILTERS)):
        filters = base * 2 ** (stage - 2)
        for block in range(1, n + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            shortcut = _kind(shortcuts, stride != 1, "zeros")
            x = basic_block(x, filters, stride, name=f"conv{stage}_block{block}",
                            shortcut=shortcut)
    return keras.Model(inputs, _head(x, num_classes), name=name)
