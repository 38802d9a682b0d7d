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
import re
import time

import keras
import numpy as np

from course_lib.analysis import layer_table
from course_lib.config import check_counts, gpu_name, is_whole
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


# --------------------------------------------------------------------------- the command

# Dense peak TFLOP/s of known GPUs (NVIDIA's data sheets; no sparsity), for the model FLOPs
# utilisation: "mixed" is bfloat16 on tensor cores, "float32" TF32 on them (what XLA uses
# for float32 matrix products on these GPUs by default).
PEAK_TFLOPS = {
    "H100 PCIe": {"mixed": 756.0, "float32": 378.0},
    "H100": {"mixed": 989.4, "float32": 494.7},  # SXM
    "H200": {"mixed": 989.4, "float32": 494.7},
    "A100": {"mixed": 312.0, "float32": 156.0},
    "A100 PCIe": {"mixed": 312.0, "float32": 156.0},
    "L4": {"mixed": 121.0, "float32": 60.0},
}


def peak_tflops(device: str, precision: str) -> float | None:
    """The dense peak of `device` (a GPU's name as the backend gives it, "NVIDIA H100 80GB
    HBM3") at `precision`, None when not in the table. The name must be a table entry once
    the maker, the memory and the SXM form are left out: an "L40S" is not an "L4", nor an
    "H100 NVL" an "H100"."""
    words = [word for word in re.split(r"[\s_-]+", device)
             if word and word.upper() not in ("NVIDIA", "TESLA")
             and not re.fullmatch(r"\d+GB|HBM\d\w*|SXM\d*", word, re.IGNORECASE)]
    peaks = PEAK_TFLOPS.get(" ".join(words))
    return peaks[precision] if peaks else None


def flops(result: dict, macs: int, precision: str) -> dict:
    """Training FLOP/s (3 passes x 2 FLOPs per multiply-add, per image) and, on a GPU of the
    table, the model FLOPs utilisation: that over the device's dense peak."""
    achieved = 6 * macs * result["training"] if result["training"] else None
    peak = peak_tflops(result["device"], precision) if result["device"] != "cpu" else None
    return {"macs": macs, "training_flops": achieved,
            "mfu": achieved / (peak * 1e12) if achieved and peak else None}


def pipeline(model: keras.Model, *, batch: int, steps: int, seed: int = 0) -> float:
    """Training images/s through the course's own path: uint8 images in `data.batches(...,
    device=True)` (pad-4 crops and flips compiled into the step) feeding `train.fit`; the
    second epoch's rate, so that compiling is not counted."""
    from course_lib import data, train

    shape = tuple(model.inputs[0].shape)[1:]
    classes = int(model.outputs[0].shape[-1])
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch * steps, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, batch * steps).astype("int32")
    channels = shape[-1]
    split = data.Split("synthetic", "train", images, labels,
                       tuple(str(c) for c in range(classes)),
                       np.full(channels, 127.5, "float32"), np.full(channels, 64.0, "float32"),
                       "random pixels")
    history = train.fit(model, data.batches(split, batch, training=True, device=True, pad=4),
                        epochs=2, lr=0.001, schedule="constant", verbose=False)
    return history["images_per_second"][-1]


def main(argv=None) -> int:
    import argparse
    import ast
    import json

    from course_lib import models
    from course_lib.analysis import count_macs

    parser = argparse.ArgumentParser(
        prog="python -m course_lib.bench",
        description="Images per second of one of the course's networks on this machine's "
                    "Keras backend and device, on random images.")
    parser.add_argument("--model", required=True, help="a name models.available() lists")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=None,
                        help="side of the square input (default: the paper's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--precision", choices=("mixed", "float32"), default=None,
                        help="default: mixed on GPUs with bfloat16, float32 elsewhere")
    parser.add_argument("--pipeline", action="store_true",
                        help="also time training through data.batches and train.fit")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the builder, e.g. stem=small or num_classes=10 "
                             "(a Python literal, else text); give it once per option")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    check_counts(parser, args, ("batch", "steps", "image_size"))
    options = {}
    for item in args.option:
        key, equals, text = item.partition("=")
        if not equals or not key.isidentifier() or key == "input_shape":
            parser.error(f"--option takes KEY=VALUE with a builder's option as KEY (the size "
                         f"is --image-size), not {item!r}")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    from course_lib.config import bf16_supported

    precision = args.precision or ("mixed" if bf16_supported(gpu_name()) else "float32")
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "mixed"
                                            else "float32")
    try:  # an unknown name or option, or an input too small for the network
        if args.image_size:
            channels = models.registry.default_input_shape(args.model)[-1]
            options["input_shape"] = (args.image_size, args.image_size, channels)
        model = models.build(args.model, **options)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    result = measure(model, batch=args.batch, steps=args.steps)
    result.update(flops(result, count_macs(model), precision), precision=precision,
                  image_size=int(model.inputs[0].shape[1]), options=args.option,
                  trainable_parameters=sum(math.prod(w.shape) for w in model.trainable_weights))
    if args.pipeline:
        result["pipeline"] = pipeline(models.build(args.model, **options), batch=args.batch,
                                      steps=args.steps)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model} at {result['image_size']} px, batch {args.batch}, {precision}, "
          f"{result['backend']} on {result['device']}: {result['macs'] / 1e9:.3f} G "
          "multiply-adds per image")
    for key in ("inference_batch1", "inference", "training", "pipeline"):
        if result.get(key):
            print(f"  {key:17s} {result[key]:12,.1f} images/s")
    if result["training_flops"]:
        print(f"  training          {result['training_flops'] / 1e9:12,.1f} GFLOP/s achieved"
              + (f", {result['mfu']:.1%} of the device's dense peak" if result["mfu"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
