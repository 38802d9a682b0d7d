"""How fast a network runs here: images per second and memory, measured on this machine.

`measure(model)` times, on the active Keras backend and device, inference at batch 1 (one
image at a time, as a camera or a web request sends them), inference at a large batch and
training (SGD steps) at that batch, on random images of the model's input shape. Each
timing starts after a warm-up whose first call compiles, so compilation is never counted.
It also gives memory per image: on a GPU, from the device's own peak memory counter
(JAX: ``device.memory_stats()``, TensorFlow: ``tf.config.experimental.get_memory_info``);
on a CPU there is no such counter, and it says so. Every layer's output size, computed
from the model, is given everywhere: the activations one image leaves for the backward
pass.

A student's instrument, not a profiler: numbers from a few steps, on random data, with the
input already on the device. The course's own training path (data pipeline,
augmentation) is slower or equal, never faster.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from course_lib.analysis import layer_table
from course_lib.config import gpu_name, is_whole
from course_lib.train import use_jit

KEYS = ("model", "backend", "device", "batch", "steps", "inference_batch1", "inference",
        "training", "memory_per_image", "memory", "activations_per_image")


def _whole(name: str, value, least: int) -> int:
    if not is_whole(value) or value < least:
        raise ValueError(f"{name} must be a whole number of at least {least}, not {value!r}")
    return int(value)


def images_per_second(step, images: int, steps: int, warmup: int) -> float:
    """Run `step()` `warmup` times (the first compiles), then time `steps` calls of it;
    each call handles `images` images and must return only once its work is done."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return images * steps / (time.perf_counter() - start)


def _finished(outputs) -> None:
    """Wait for the device (JAX and GPUs run ahead of Python) by reading a number back."""
    float(np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(outputs)[0])).ravel()[0])


def activations_per_image(model: keras.Model) -> int:
    """Bytes of every layer's output for one image, at the dtype it is computed in: what a
    training step keeps for the backward pass (computed from the model, not measured)."""
    itemsize = np.dtype(keras.mixed_precision.global_policy().compute_dtype).itemsize
    return sum(row["neurons"] for row in layer_table(model)
               if row["type"] != "InputLayer") * itemsize


def _memory_counter():
    """A function giving (bytes in use, peak bytes) of the first GPU, and one resetting the
    peak (None where the backend cannot); (None, None) on a CPU."""
    if gpu_name() is None:
        return None, None
    if keras.backend.backend() == "jax":
        import jax

        device = next(d for d in jax.devices() if d.platform == "gpu")

        def read():
            stats = device.memory_stats() or {}
            return stats.get("bytes_in_use"), stats.get("peak_bytes_in_use")

        return read, None  # JAX's peak cannot be reset: it is the process's high-water mark
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        def read():
            info = tf.config.experimental.get_memory_info("GPU:0")
            return info["current"], info["peak"]

        return read, lambda: tf.config.experimental.reset_memory_stats("GPU:0")
    return None, None


def measure(model: keras.Model, *, batch: int = 64, steps: int = 10, warmup: int = 2,
            training: bool = True, seed: int = 0) -> dict:
    """Throughput of `model` on this machine, in images per second, and memory per image.

    Returns a dict with `KEYS`: "inference_batch1" and "inference" (at `batch`) from
    ``predict_on_batch``; "training" from ``train_on_batch`` (SGD with momentum, sparse
    cross-entropy; None when `training` is False); "memory_per_image": on a GPU, the peak
    device memory during the training steps minus what was in use before them, divided by
    `batch` (bytes; it includes gradients and optimizer state, so it overstates small
    batches), else None, with "memory" saying how it was measured or why not;
    "activations_per_image": bytes, computed (`activations_per_image`).

    `model` must be a built Keras model with one input of known size and a softmax output;
    for training it is compiled here (with XLA where `course_lib.train` uses it), which
    replaces an earlier compile, and its weights change: measure a fresh copy.
    """
    batch, steps = _whole("batch", batch, 1), _whole("steps", steps, 1)
    warmup = _whole("warmup", warmup, 1)  # at least the call that compiles
    if len(model.inputs) != 1 or None in tuple(model.inputs[0].shape)[1:]:
        raise ValueError(f"measure needs a model with one input of known size; {model.name} "
                         f"takes {[tuple(x.shape) for x in model.inputs]}")
    shape = tuple(model.inputs[0].shape)[1:]
    rng = np.random.default_rng(seed)
    images = keras.ops.convert_to_tensor(rng.normal(size=(batch, *shape)).astype("float32"))
    one = images[:1]
    result = {"model": model.name, "backend": keras.backend.backend(),
              "device": gpu_name() or "cpu", "batch": batch, "steps": steps,
              "activations_per_image": activations_per_image(model)}
    result["inference_batch1"] = images_per_second(
        lambda: _finished(model.predict_on_batch(one)), 1, steps, warmup)
    result["inference"] = images_per_second(
        lambda: _finished(model.predict_on_batch(images)), batch, steps, warmup)
    result.update(training=None, memory_per_image=None,
                  memory="not measured: no GPU (see activations_per_image, computed)")
    if not training:
        return result
    classes = int(model.outputs[0].shape[-1])
    labels = keras.ops.convert_to_tensor(rng.integers(0, classes, batch).astype("int32"))
    model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=use_jit())
    read, reset = _memory_counter()
    if reset:
        reset()
    before, peak_before = read() if read else (None, None)
    result["training"] = images_per_second(
        lambda: model.train_on_batch(images, labels), batch, steps, warmup)
    if read:
        _, peak = read()
        if before is None or peak is None or (reset is None and peak <= peak_before):
            result["memory"] = ("not measured: the device's peak was reached before these "
                                "steps (JAX cannot reset it), or it gives no counter")
        else:
            result["memory_per_image"] = (peak - before) / batch
            result["memory"] = "device peak during training - memory in use before, / batch"
    return result


def check(result: dict) -> dict:
    """`result` of `measure` after checking it: every key, throughputs positive and finite."""
    if set(result) != set(KEYS):
        raise ValueError(f"a measurement has the keys {KEYS}, not {sorted(result)}")
    for key in ("inference_batch1", "inference", "training", "memory_per_image"):
        value = result[key]
        if value is not None and not (0 < value < math.inf):
            raise ValueError(f"{key} must be positive and finite, not {value!r}")
    return result
