"""Layers the papers used that Keras does not ship, or that the course writes out to teach.

`LocalResponseNormalization` is AlexNet's "brightness normalization" (Krizhevsky et al.
2012, Section 3.3), also used, as "contrast normalization", by ZFNet (Zeiler & Fergus 2013).
`BatchNorm` is Batch Normalization (Ioffe & Szegedy 2015) written from scratch, equal to
`keras.layers.BatchNormalization` on the last axis; notebook 06 reads it.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from course_lib.config import flag, is_number, is_whole

# Half-precision types in which we do not trust a sum of squares: upcast to float32.
_HALF = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="course_lib")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalization, with alpha divided by n (the convention
    of the code AlexNet was trained with, and of Caffe), not the paper's printed formula.

    Each activation a is divided by the energy of its n neighbouring channels, at the same
    position, channel c included (channels last)::

        b_c = a_c / (k + alpha / n * sum(a_j ** 2 for j in c - n//2 .. c + n//2)) ** beta

    Channels outside 0 .. C-1 count as zeros. The defaults are the paper's: k=2, n=5,
    alpha=1e-4, beta=0.75.

    Which alpha: the formula printed in Section 3.3 of the paper has no 1/n,
    ``b = a / (k + alpha * sum(...)) ** beta``. The code divides: Krizhevsky's cuda-convnet,
    the public code behind the paper (its footnote 1), divides the ``scale`` of a cross-map
    response-normalization layer by its ``size`` when it reads the layer's settings
    (``layer.py``), and Caffe's LRN layer divides ``alpha`` by ``local_size`` (``lrn_layer``).
    We follow the code, so that an alpha read from those models' settings (bvlc_alexnet:
    ``local_size: 5, alpha: 0.0001``) means the same here; the paper's 1e-4 is, we believe,
    such a setting. Read literally, the printed formula weighs the sum n times as much: for
    it, pass ``alpha * n``.

    TensorFlow's ``tf.nn.local_response_normalization(x, depth_radius, bias, alpha, beta)``
    does not divide either, and sums over c - depth_radius .. c + depth_radius, so it agrees
    with this layer when::

        depth_radius = n // 2,  bias = k,  alpha_tf = alpha / n,  beta = beta

    The sum over channels is a matrix product with a 0/1 band matrix, the fastest form on
    CPUs with either backend. It is computed in float32 when the layer runs in float16 or
    bfloat16 (mixed precision), and the result is cast back to the layer's compute dtype.
    GPUs that run float32 matrix products in TF32 (the default of TensorFlow and JAX on
    Ampere and later) round the squares to about 5e-4, as they do inside the convolutions
    around this layer. Like the paper's, the layer has no weights.

    Args:
        k: the additive constant (TensorFlow's ``bias``); positive.
        n: how many neighbouring channels are summed; odd, as in Caffe.
        alpha: the scale of the sum, divided by n (cuda-convnet's and Caffe's alpha).
        beta: the exponent.
    """

    def __init__(
        self,
        k: float = 2.0,
        n: int = 5,
        alpha: float = 1e-4,
        beta: float = 0.75,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (is_number(k) and 0 < k < math.inf):
            raise ValueError(f"k must be a positive number, got {k!r}")
        if not (is_whole(n) and n >= 1 and n % 2 == 1):
            raise ValueError(f"n must be a positive odd number of channels, got {n!r}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not (is_number(value) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self.k = float(k)
        self.n = int(n)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        dtype = floating(inputs, self)
        x = ops.cast(inputs, "float32") if dtype in _HALF else inputs
        # The sum over neighbouring channels is one matrix product with a band matrix:
        # band[j, c] = 1 where |j - c| <= n // 2. Channels past either edge simply miss.
        channel = ops.arange(x.shape[-1])
        band = ops.abs(channel[:, None] - channel[None, :]) <= self.n // 2
        energy = ops.matmul(ops.square(x), ops.cast(band, x.dtype))
        scale = self.k + (self.alpha / self.n) * energy
        # scale ** -beta, written as exp(-beta * log(scale)): the same for scale > 0, and
        # about twice as fast to differentiate as ops.power on CPU (both backends).
        outputs = x * ops.exp(-self.beta * ops.log(scale))
        return ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"k": self.k, "n": self.n, "alpha": self.alpha, "beta": self.beta})
        return config


@keras.saving.register_keras_serializable(package="course_lib")
class BatchNorm(keras.layers.Layer):
    """Batch Normalization over the last axis (Ioffe & Szegedy 2015, Algorithm 1 and 3.1).

    In training, each channel is normalised with the mean and the (biased) variance of the
    batch, over every axis but the last (all positions of a feature map too, Section 3.2),
    then scaled by gamma and shifted by beta::

        y = gamma * (x - mean) / sqrt(variance + epsilon) + beta

    and the moving statistics follow the batch's, with Keras's convention for `momentum`::

        moving = momentum * moving + (1 - momentum) * batch

    In inference (``training=False``, or a frozen layer, ``trainable=False``) the moving
    statistics take the batch's place. PyTorch's ``momentum=0.1`` is the weight of the
    *batch* (0.9 of the old value), the same as ours at 0.9; its epsilon is 1e-5, ours 1e-3;
    and it updates its running variance with the unbiased batch variance (n / (n - 1) times
    larger) while normalising with the biased one. Keras uses the biased one for both, and
    so do we: the layer gives the same numbers as `keras.layers.BatchNormalization`.
    Half-precision inputs (mixed precision) are normalised in float32 and returned in their
    own dtype; the four weights are float32.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum is the old statistics' weight, in [0, 1) (Keras's "
                             f"convention: PyTorch's 0.1 is 0.9 here); got {momentum!r}")
        if not (is_number(epsilon) and 0 <= epsilon < math.inf):
            raise ValueError(f"epsilon must be a number >= 0; got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = flag("center", center), flag("scale", scale)

    def build(self, input_shape):
        shape = (input_shape[-1],)
        weight = dict(shape=shape, dtype="float32", autocast=False)
        if self.scale:
            self.gamma = self.add_weight(name="gamma", initializer="ones", **weight)
        if self.center:
            self.beta = self.add_weight(name="beta", initializer="zeros", **weight)
        self.moving_mean = self.add_weight(
            name="moving_mean", initializer="zeros", trainable=False, **weight)
        self.moving_variance = self.add_weight(
            name="moving_variance", initializer="ones", trainable=False, **weight)

    def call(self, inputs, training=None):
        floating(inputs, self)
        x = ops.cast(inputs, "float32")  # statistics of half-precision values in float32
        if training and self.trainable:
            axes = list(range(len(x.shape) - 1))  # every axis but the channels
            mean, variance = ops.mean(x, axis=axes), ops.var(x, axis=axes)  # biased
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean + (1 - m) * mean)
            self.moving_variance.assign(m * self.moving_variance + (1 - m) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        y = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            y = y * self.gamma
        if self.center:
            y = y + self.beta
        return ops.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}


def floating(inputs, layer) -> str:
    """The dtype of `inputs`, if it is a floating one: integer images (uint8 pixels) would
    be rounded at every step, silently. Cast them first, or normalise them."""
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if "float" not in dtype:
        raise ValueError(f"{layer.name} takes floating-point inputs, not {dtype}: cast the "
                         "images (keras.ops.cast(x, 'float32')) or normalise them first")
    return dtype
