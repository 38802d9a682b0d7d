"""Trained weights from keras.applications, in the course's own networks.

keras.applications ships ImageNet weights for several of the course's networks (VGG-16,
VGG-19, ResNet-50...). Our builders make the same layers under the papers' names, so the
weights can be copied across: `copy_weights` does it layer by layer, checking every shape.

Weights and their input go together. The VGG and ResNet weights were trained, in Caffe, on
images given as BGR pixel values 0-255 with ImageNet's mean pixel subtracted and no
scaling; feed them RGB, or values scaled to 0-1, and they answer with confidence and
nonsense. `load_imagenet` therefore sets ``model.preprocess`` to `caffe_preprocess`.
"""

from __future__ import annotations

import os
import warnings

import keras
import numpy as np
from keras import ops

from course_lib.config import offline

# ImageNet's mean pixel, in BGR order, as the Caffe models subtract it (0-255 scale).
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
# keras.applications model -> the file Keras caches its ImageNet weights in (with the top).
WEIGHT_FILES = {
    "VGG16": "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    "VGG19": "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
    "ResNet50": "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "ResNet101": "resnet101_weights_tf_dim_ordering_tf_kernels.h5",
    "ResNet152": "resnet152_weights_tf_dim_ordering_tf_kernels.h5",
}


class WeightsUnavailable(OSError):
    """Trained weights that could not be had: no network, or COURSE_OFFLINE set."""


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weight of `source` into `target`, layer by layer in order.

    The layers that have weights are paired in the order the models list them, so the
    names may differ (keras.applications' block1_conv1 and our conv1_1). Every pair must
    hold the same number of weights with the same shapes; the first that does not stops
    the copy, before anything is changed, with both layers named.

    One difference is bridged: a source convolution with a bias whose target has none and
    is followed by batch normalisation (keras.applications' ResNets against the paper's).
    Batch norm subtracts its mean from the convolution's output, so a bias b before it
    only moves that mean: the bias is folded into the batch norm's moving mean (mean - b),
    which gives the same outputs at inference.
    """
    sources = [layer for layer in source.layers if layer.weights]
    targets = [layer for layer in target.layers if layer.weights]
    folds = {}  # index of a batch norm pair -> index of the convolution pair it takes from
    for i, (a, b) in enumerate(zip(sources, targets)):  # noqa: B905 (counts checked below)
        shapes_a = [tuple(w.shape) for w in a.weights]
        shapes_b = [tuple(w.shape) for w in b.weights]
        if shapes_a != shapes_b and (norm := _fold_into(sources, targets, i)) is not None:
            folds[norm] = i
        elif shapes_a != shapes_b:
            raise ValueError(f"cannot copy {source.name}'s layer {a.name!r} (weights "
                             f"{shapes_a}) into {target.name}'s layer {b.name!r} (weights "
                             f"{shapes_b}): the networks differ there")
    if len(sources) != len(targets):
        longer, model = (sources, source) if len(sources) > len(targets) else (targets, target)
        extra = longer[min(len(sources), len(targets))]
        raise ValueError(f"{source.name} has {len(sources)} layers with weights and "
                         f"{target.name} has {len(targets)}: {model.name}'s layer "
                         f"{extra.name!r} has no partner")
    convolutions = set(folds.values())
    for i, (a, b) in enumerate(zip(sources, targets, strict=True)):
        values = a.get_weights()
        if i in convolutions:
            values = values[:1]  # the kernel; the bias goes into the batch norm
        elif i in folds:
            bias = sources[folds[i]].get_weights()[1]
            mean = [w.name for w in a.weights].index("moving_mean")
            values[mean] = values[mean] - bias
        b.set_weights(values)


def _fold_into(sources: list, targets: list, i: int) -> int | None:
    """For pair i, a biased convolution against the same one without bias: the index of
    the pair of batch norms that read each one's output, if there is such a pair."""
    a, b = sources[i], targets[i]
    if not (isinstance(a, keras.layers.Conv2D) and isinstance(b, keras.layers.Conv2D)):
        return None
    if not (a.use_bias and not b.use_bias and a.kernel.shape == b.kernel.shape):
        return None
    readers = [_reader(layers_, conv) for layers_, conv in ((sources, a), (targets, b))]
    if None in readers or readers[0] != readers[1]:
        return None
    j = readers[0]
    shapes = [[tuple(w.shape) for w in layers_[j].weights] for layers_ in (sources, targets)]
    return j if shapes[0] == shapes[1] else None


def _reader(layers_: list, conv) -> int | None:
    """The index in `layers_` of the batch norm that reads `conv`'s output, if one does."""
    for j, layer in enumerate(layers_):
        if isinstance(layer, keras.layers.BatchNormalization):
            try:
                if layer.input is conv.output:
                    return j
            except (AttributeError, ValueError):  # a layer called more than once
                continue
    return None


def load_imagenet(model: keras.Model, application: str) -> None:
    """Copy keras.applications' ImageNet weights of `application` (e.g. "VGG16") into
    `model`, and set ``model.preprocess`` to the input they expect (`caffe_preprocess`).

    Keras downloads the weights on first use and keeps them in its cache folder
    (``$KERAS_HOME/models`` or ``~/.keras/models``). With COURSE_OFFLINE set, only a
    cached file is used.
    """
    filename = WEIGHT_FILES[application]
    check_available(application)
    try:
        source = getattr(keras.applications, application)(weights="imagenet")
    except Exception as error:  # Keras raises a bare Exception for a failed download
        raise WeightsUnavailable(
            f"could not get {application}'s ImageNet weights ({filename}) from the "
            f"internet: {error}. Without network, put the file in {cache_folder()}"
        ) from error
    copy_weights(source, model)
    model.preprocess = caffe_preprocess


def check_imagenet(application: str, **wanted) -> None:
    """Refuse, before a network is built, options the ImageNet weights of `application`
    cannot fill (each of `wanted` is option=(value, what the weights need)) and weights
    that COURSE_OFFLINE puts out of reach (`check_available`)."""
    for option, (value, needed) in wanted.items():
        if value != needed:
            raise ValueError(f"weights='imagenet' needs {option}={needed!r}, as "
                             f"keras.applications' {application} was trained; got {value!r}")
    check_available(application)


def check_available(application: str) -> None:
    """Refuse at once, before a network is built, weights that COURSE_OFFLINE puts out of
    reach: those not already in Keras's cache."""
    filename = WEIGHT_FILES[application]
    if offline() and not cached(filename):
        raise WeightsUnavailable(
            f"COURSE_OFFLINE is set and {application}'s ImageNet weights ({filename}) are "
            f"not in Keras's cache ({cache_folder()}); run once with network, or copy the "
            "file there"
        )


def cache_folder() -> str:
    """Where Keras keeps downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


def cached(filename: str) -> bool:
    """Whether Keras has `filename` in its cache (or in /tmp/.keras, where it falls back
    when its home is not writable)."""
    folders = (cache_folder(), os.path.join("/tmp", ".keras", "models"))
    return any(os.path.isfile(os.path.join(folder, filename)) for folder in folders)


def caffe_preprocess(images):
    """Images as the Caffe-trained VGG and ResNet weights expect them: RGB pixel values
    0-255 in, BGR out with ImageNet's mean pixel subtracted, not scaled.

    The same numbers as ``keras.applications.vgg16.preprocess_input``, but the caller's
    array is never changed (Keras's, given a float NumPy array, subtracts in place).
    Works on arrays and on tensors of any backend, channels last. Images that look scaled
    to 0-1 get a warning: these weights need 0-255.
    """
    if isinstance(images, (list, tuple)):
        images = np.asarray(images)
    if not images.shape or images.shape[-1] != 3:
        raise ValueError(f"caffe_preprocess needs RGB images, channels last; got shape "
                         f"{tuple(images.shape)}")
    if isinstance(images, np.ndarray) and images.size and 0 <= images.min() <= images.max() <= 1:
        warnings.warn("caffe_preprocess expects pixel values 0-255 and every value here is "
                      "within 0-1: multiply by 255 first, or the weights see a black image",
                      stacklevel=2)
    x = ops.flip(ops.cast(images, "float32"), axis=-1)  # RGB -> BGR
    return x - ops.convert_to_tensor(np.array(IMAGENET_BGR_MEAN, "float32"))
