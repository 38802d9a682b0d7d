"""Does the input pipeline keep up with the model? Images per second, four ways, one run.

    python benchmarks/pipeline.py --model alexnet --image-size 227 --batch 128 --steps 50
    python benchmarks/pipeline.py --model alexnet --width 0.125 --image-size 67 --steps 20
    python benchmarks/pipeline.py --model resnet-tiny --image-size 32 --pad 4 --steps 50

(a) model: the model alone, trained on one synthetic batch of its input (normalised float32
    crops) that is already on the device: the ceiling.
(b) device path: the whole training path, uint8 images stored at --stored-size px (32, as
    CIFAR-10 is kept) through ``data.batches(..., device=True)``, the `augment.Augment` layer
    (resize to --resize, random crop, flip, PCA colour, normalise) and `train.fit`.
(c) numpy path: the same model fed by the NumPy pipeline (``data.batches``: crop and flip
    on the host, from images resized once to --resize and kept in memory, plus the
    notebook's NumPy PCA colour noise).
(d) pipeline: (b) with the model replaced by a global average and a softmax layer, that is
    everything but the model; and the host side alone (batches gathered, nothing trained),
    for both pipelines.

Every rate is the best of --repeat epochs of `train.fit` after the first, which compiles;
with --rounds R every path is measured R times, in turn (on a shared CPU, use 3 or more). The ratio
(b)/(a) is what issue 11 holds to 90% on a GPU. Images are random: pixels do not change
the speed. On TensorFlow (a) feeds its batch through tf.data, which copies it to a GPU each
step; on JAX it stays on the device. The CPU milliseconds per image (all threads of this process,
best epoch) measure the work where a shared CPU makes the wall clock unsteady.
``--json`` prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from course_lib import augment, config, data, models, train  # noqa: E402


def resnet_tiny(input_shape, num_classes: int) -> keras.Model:
    """A small ResNet for 32-px images: a 3x3 stem and one basic block per stage (16, 32,
    64 filters), as ResNet-8 of He et al.'s CIFAR family."""
    x = inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for stage, filters in enumerate((16, 32, 64), start=1):
        stride = 1 if stage == 1 else 2
        shortcut = x
        y = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
        y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = keras.layers.BatchNormalization()(y)
        if stride != 1:
            shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False)(x)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        x = keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="resnet_tiny")


def linear_head(input_shape, num_classes: int) -> keras.Model:
    """Almost no model: a global average and a softmax layer."""
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="head")


def build(args) -> keras.Model:
    shape = (args.image_size, args.image_size, 3)
    if args.model == "resnet-tiny":
        return resnet_tiny(shape, args.classes)
    return models.build(args.model, input_shape=shape, num_classes=args.classes,
                        width=args.width, **({"towers": args.towers} if args.towers else {}))


class Repeat(keras.utils.PyDataset):
    """The same batch `steps` times (on JAX a device array: nothing is copied)."""

    def __init__(self, images, labels, steps: int):
        super().__init__()
        self.images, self.labels, self.steps = images, labels, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.images, self.labels


def synthetic_input(args):
    """One batch of normalised crops, on the device, and its labels."""
    images = keras.random.normal((args.batch, args.image_size, args.image_size, 3), seed=0)
    labels = np.arange(args.batch, dtype="int32") % args.classes
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(args.steps)
        return dataset.apply(tf.data.experimental.assert_cardinality(args.steps))
    return Repeat(images, labels, args.steps)


def synthetic_split(args) -> data.Split:
    """steps x batch random uint8 images at the stored size, with CIFAR-like statistics."""
    count = args.steps * args.batch
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, args.stored_size, args.stored_size, 3), np.uint8)
    return data.Split("synthetic", "train", images, np.arange(count, dtype="int32") %
                      args.classes, tuple(map(str, range(args.classes))),
                      np.array([125.3, 123.0, 113.9], "float32"),
                      np.array([63.0, 62.1, 66.7], "float32"), "random")


class ProcessTime(keras.callbacks.Callback):
    """The CPU time this process spends in each epoch (all its threads): on a shared
    machine a steadier measure of the work than the wall clock."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.process_time() - self.start)


def rate(model, batches, args) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image) of `train.fit`: the best epoch
    after the first, which compiles."""
    clock = ProcessTime()
    history = train.fit(model, batches, epochs=1 + args.repeat, lr=0.001,
                        schedule="constant", weight_decay=0.0, verbose=False,
                        callbacks=[clock])
    images = len(batches) * args.batch
    return max(history["images_per_second"][1:]), 1000 * min(clock.seconds[1:]) / images


def host_rate(batches, repeat: int) -> float:
    """Images per second of gathering (and, on the NumPy path, augmenting) the batches:
    the best of `repeat` epochs."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for index in range(len(batches)):
            images, _ = batches[index]
        keras.ops.convert_to_numpy(images[:1])  # JAX gathers asynchronously: wait for it
        best = max(best, len(batches) * batches.batch_size / (time.perf_counter() - start))
    return best


def numpy_pca(eigenvalues, eigenvectors, sigma=augment.PCA_SIGMA):
    """Notebook 01's NumPy PCA colour noise, for the NumPy pipeline."""
    def pca_colour(images, rng):
        alphas = rng.normal(0.0, sigma, size=(len(images), 3))
        shifts = (alphas * eigenvalues) @ eigenvectors.T
        return images + shifts[:, None, None, :].astype(images.dtype)
    return pca_colour


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="alexnet", help="a registered model or resnet-tiny")
    parser.add_argument("--image-size", type=int, default=227, help="the crop the model takes")
    parser.add_argument("--stored-size", type=int, default=32, help="side of stored images")
    parser.add_argument("--resize", type=int, default=None,
                        help="side to resize to before cropping (default: 256/227 of the crop "
                             "when it is larger than the stored size, else none)")
    parser.add_argument("--pad", type=int, default=0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--towers", type=int, default=None)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3,
                        help="epochs measured after the first; the best counts (a shared "
                             "machine's load only ever slows an epoch down)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times to measure every path, in turn (each recompiles)")
    parser.add_argument("--skip", default="",
                        help="letters of the measures to skip: 'abc' measures the pipelines "
                             "alone (d), which a CPU can do at 227 px")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for option in ("image_size", "stored_size", "batch", "steps", "classes", "repeat", "rounds"):
        if getattr(args, option) < 1:  # checked before the minutes of compiling
            parser.error(f"--{option.replace('_', '-')} must be at least 1, not "
                         f"{getattr(args, option)}")
    if args.resize is None and args.image_size > args.stored_size:
        args.resize = round(args.image_size * 256 / 227)
    chosen = config.setup(verbose=not args.json)
    split = synthetic_split(args)
    pca = augment.colour_pca(split.images, split.mean, split.std)
    crop = dict(crop=args.image_size, pad=args.pad)
    result = {"model": args.model, "width": args.width, "image_size": args.image_size,
              "stored_size": args.stored_size, "resize": args.resize, "pad": args.pad,
              "batch": args.batch, "steps": args.steps, "backend": chosen.backend,
              "device": chosen.device, "precision": chosen.precision,
              "keras": keras.__version__, "python": platform.python_version()}

    device = data.batches(split, args.batch, training=True, device=True, resize=args.resize,
                          pca=pca, **crop)
    head = linear_head((args.image_size, args.image_size, 3), args.classes)
    runs = {"d_device_pipeline": (head, device)}
    if "a" not in args.skip:
        runs["a_model"] = (build(args), synthetic_input(args))
    if "b" not in args.skip:
        runs["b_device_path"] = (build(args), device)
    result["device_bytes"] = device.device_bytes
    stored = split if not args.resize else data.Split(
        **{**split.__dict__, "images": data.resize(split.images, args.resize)})
    host = data.batches(stored, args.batch, training=True, augment=numpy_pca(*pca), **crop)
    result["host_bytes"] = stored.images.nbytes
    if "c" not in args.skip:
        runs["c_numpy_path"] = (build(args), host)
    for _ in range(args.rounds):  # in turn, so that a busy spell slows them all alike
        for key, (model, batches) in sorted(runs.items()):
            speed, cpu = rate(model, batches, args)
            result[key] = max(result.get(key, 0.0), speed)
            result[f"{key}_cpu_ms"] = min(result.get(f"{key}_cpu_ms", np.inf), cpu)
    result["d_device_host_side"] = host_rate(device, args.repeat)
    result["d_numpy_pipeline"] = host_rate(host, args.repeat)
    if "a_model" in result and "b_device_path" in result:
        result["ratio_b_a"] = result["b_device_path"] / result["a_model"]
    if args.json:
        print(json.dumps(result))
    else:
        report(result)
    return result


def report(result: dict) -> None:
    print(f"{result['model']} (width {result['width']}) at {result['image_size']} px from "
          f"{result['stored_size']} px (resize {result['resize']}, pad {result['pad']}), "
          f"batch {result['batch']}, {result['steps']} steps")
    rows = [("a_model", "(a) model alone, synthetic batch on the device"),
            ("b_device_path", "(b) whole training path, augmented on the device"),
            ("c_numpy_path", "(c) whole training path, NumPy pipeline"),
            ("d_device_pipeline", "(d) device path, model replaced by a linear head"),
            ("d_device_host_side", "(d) device path, host side alone (gather)"),
            ("d_numpy_pipeline", "(d) NumPy pipeline alone (crop, flip, PCA on the host)")]
    for key, label in rows:
        if key in result:
            cpu = result.get(f"{key}_cpu_ms")
            cpu = f"  {cpu:6.3f} CPU ms/image" if cpu is not None else ""
            print(f"  {label:<58} {result[key]:>10,.0f} images/s{cpu}")
    if "ratio_b_a" in result:
        print(f"  (b)/(a) = {result['ratio_b_a']:.2f}")
    print(f"  uint8 images on the device: {result['device_bytes'] / 1e6:.1f} MB; on the "
          f"host, resized for the NumPy path: {result['host_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
