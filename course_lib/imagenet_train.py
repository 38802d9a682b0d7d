"""Train any of the course's networks on ImageNet (ILSVRC-2012), on every GPU of a machine.

    python -m course_lib.imagenet_train --model resnet50 --data-dir ~/tensorflow_datasets

The data come through tensorflow-datasets' `imagenet2012`, which cannot download ImageNet:
put the two archives from image-net.org, ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar, in DATA_DIR/downloads/manual/ and the first run prepares them
(once; it needs about 300 GB). Each paper's recipe (`RECIPES`: batch, learning rate,
weight decay, epochs) is the default; every part of it is an option. Training is
data-parallel across the visible devices (`train.fit(..., distribution="data_parallel")`)
with a checkpoint after every epoch: run the same command again and it continues.

The pipeline is the papers' (`pipeline`): for training, the shorter side resized to a
random size in `scale` (AlexNet and VGG a fixed 256; ResNet 256 to 480), a random square
crop of the network's input size and a random horizontal flip; for validation, the shorter
side resized to 256/224 of the input and the centre crop. Pixels are normalised with
ImageNet's per-channel mean and standard deviation. The papers lowered the learning rate
by hand when the validation error stopped improving; here it falls tenfold at evenly
spaced epochs, as many times as the paper says it did.
"""

from __future__ import annotations

import argparse
import math
import os

from course_lib import models, train
from course_lib.analysis import shapes_only
from course_lib.config import cache_dir, check_counts, setup
from course_lib.models.registry import default_input_shape, entry

# ILSVRC-2012's sizes, and its per-channel statistics in 0-255 units (the values every
# ImageNet training script uses: 0.485, 0.456, 0.406 and 0.229, 0.224, 0.225 of 255)
EXAMPLES = {"train": 1_281_167, "validation": 50_000}
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)

# Each paper's recipe (SGD with momentum 0.9 in all of them), by the builder's module.
RECIPES = {
    "alexnet": dict(batch=128, lr=0.01, weight_decay=5e-4, epochs=90, reductions=3,
                    scale=(256, 256), source="Krizhevsky et al. 2012, Section 5"),
    "vgg": dict(batch=256, lr=0.01, weight_decay=5e-4, epochs=74, reductions=3,
                scale=(256, 256), source="Simonyan & Zisserman 2015, Section 3.1"),
    # "60 x 10^4 iterations" of 256 images; the number of reductions is not given
    "resnet": dict(batch=256, lr=0.1, weight_decay=1e-4, epochs=120, reductions=2,
                   scale=(256, 480), source="He et al. 2016, Section 3.4"),
}
DEFAULT_RECIPE = "alexnet"  # for the families whose papers give no full recipe
BLOCK = 10_000  # images shuffled together in training (JPEG bytes, about 1.1 GB)


def recipe(model: str) -> tuple[str, dict]:
    """The family whose recipe `model` trains with, and that recipe."""
    family = entry(model)[0].__module__.rsplit(".", 1)[-1]
    return (family, RECIPES[family]) if family in RECIPES else (family,
                                                                RECIPES[DEFAULT_RECIPE])


def milestones(epochs: int, reductions: int) -> list[int]:
    """`reductions` evenly spaced epochs at which the rate falls tenfold."""
    return sorted({round(epochs * k / (reductions + 1)) for k in range(1, reductions + 1)}
                  - {0, epochs})


def pipeline(split: str, *, image_size: int, batch: int, training: bool, data_dir=None,
             scale=(256, 256), limit: int | None = None, seed: int = 0):
    """A tf.data pipeline of (normalised float32 crops, labels), of known length.

    In training, each epoch's order and augmentation follow from (seed, epoch) alone, as in
    the course's own `data.batches`, so a resumed run sees what an uninterrupted one would:
    ``pipeline.set_epoch(e)``, which `train.fit` calls, chooses the epoch. The files are
    read in one order fixed by `seed`; the stream is cut into blocks of `BLOCK` images,
    each block is put in a new random order every epoch (as a shuffle buffer of that size
    would mix them), and each image's scale, crop and flip are drawn statelessly from
    (seed, epoch, its place in the epoch). Blocks hold JPEG bytes, decoded after the
    shuffle: about 1.1 GB of memory, where a buffer of decoded images would take several.
    (The papers' Caffe read its database in the same order every epoch.)
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    read = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=False)
    data = tfds.load("imagenet2012", split=split, data_dir=data_dir, as_supervised=True,
                     shuffle_files=training, read_config=read,
                     decoders={"image": tfds.decode.SkipDecoding()})
    count = EXAMPLES[split] if limit is None else limit
    if limit is not None:
        data = data.take(limit)
    mean, std = tf.constant(MEAN), tf.constant(STD)

    def decode(jpeg):
        return tf.cast(tf.io.decode_image(jpeg, channels=3, expand_animations=False),
                       tf.float32)

    def shorter_side(image, side):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        factor = tf.cast(side, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
        size = tf.cast(tf.math.ceil(tf.cast([height, width], tf.float32) * factor), tf.int32)
        return tf.image.resize(image, tf.maximum(size, side))

    low = max(scale[0], image_size)  # the crop must fit in the resized image
    high = max(scale[1], low)

    def augment(key, jpeg, label):
        keys = tf.random.experimental.stateless_split(key, 3)
        side = tf.random.stateless_uniform([], keys[0], low, high + 1, dtype=tf.int32)
        image = tf.image.stateless_random_crop(shorter_side(decode(jpeg), side),
                                               (image_size, image_size, 3), keys[1])
        return (tf.image.stateless_random_flip_left_right(image, keys[2]) - mean) / std, label

    def centre(jpeg, label):
        image = shorter_side(decode(jpeg), round(image_size * 256 / 224))
        top = (tf.shape(image)[0] - image_size) // 2
        left = (tf.shape(image)[1] - image_size) // 2
        image = image[top:top + image_size, left:left + image_size]
        return (image - mean) / std, label

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def one_epoch(number):
        """Epoch `number`: its order and its draws, from (seed, epoch) alone."""
        fold_in = tf.random.experimental.stateless_fold_in
        key = fold_in(tf.constant([seed, 0], tf.int64), number)
        orders, draws = tf.unstack(tf.random.experimental.stateless_split(key, 2))

        def mixed(place, block):  # one block's examples in a random order
            keys = tf.random.stateless_uniform(tf.shape(block[1]), fold_in(orders, place))
            order = tf.argsort(keys)
            return tf.data.Dataset.from_tensor_slices(
                tuple(tf.gather(part, order) for part in block))

        shuffled = data.batch(BLOCK).enumerate().flat_map(mixed)
        return shuffled.enumerate().map(
            lambda place, example: augment(fold_in(draws, place), *example),
            num_parallel_calls=tf.data.AUTOTUNE)

    if training:  # the epoch is read as each epoch's iterator starts
        data = tf.data.Dataset.range(1).map(lambda _: epoch.read_value()).flat_map(one_epoch)
    else:
        data = data.map(centre, num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(batch, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
    steps = count // batch if training else math.ceil(count / batch)
    if steps < 1:
        raise ValueError(f"{count} {split} images make no batch of {batch}: lower --batch")
    data = data.apply(tf.data.experimental.assert_cardinality(steps))
    if training:
        data.set_epoch = epoch.assign
    return data


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.imagenet_train",
        description="Train one of the course's networks on ILSVRC-2012 with its paper's "
                    "recipe, on every visible GPU, resuming from its checkpoint.")
    parser.add_argument("--model", required=True, help="a name models.available() lists")
    parser.add_argument("--data-dir", default=None,
                        help="tensorflow-datasets' folder (default ~/tensorflow_datasets), "
                             "with the two archives in downloads/manual/")
    for name, kind in (("epochs", int), ("batch", int), ("lr", float),
                       ("weight-decay", float), ("image-size", int)):
        parser.add_argument(f"--{name}", type=kind, default=None,
                            help="default: the paper's" if name != "image-size" else
                            "default: the network's own input size")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N images only (a trial run)")
    parser.add_argument("--val-limit", type=int, default=None)
    parser.add_argument("--devices", choices=("all", "one"), default="all")
    parser.add_argument("--checkpoint", default=None,
                        help="default: checkpoints/imagenet-MODEL in the course cache")
    args = parser.parse_args(argv)
    check_counts(parser, args, ("epochs", "batch", "image_size", "limit", "val_limit"))
    try:  # an unknown name says so here
        size = args.image_size or default_input_shape(args.model)[0]
    except ValueError as error:
        parser.error(str(error))
    family, paper = recipe(args.model)
    epochs, batch = args.epochs or paper["epochs"], args.batch or paper["batch"]
    lr = paper["lr"] if args.lr is None else args.lr
    decay = paper["weight_decay"] if args.weight_decay is None else args.weight_decay
    if not 0 < lr < math.inf:  # NaN fails too
        parser.error(f"--lr must be a positive number, not {lr}")
    if not 0 <= decay < math.inf:
        parser.error(f"--weight-decay must be a number of at least 0, not {decay}")
    cfg = setup(verbose=False)
    try:  # the arguments, before the data; only the shapes: no weights are drawn
        with shapes_only():
            models.build(args.model, input_shape=(size, size, 3), num_classes=1000)
    except ValueError as error:  # an input too small for the network, say
        parser.error(str(error))
    devices = train.data_parallel() if args.devices == "all" else None
    count = train.device_count(devices)
    if batch % count:
        parser.error(f"--batch {batch} cannot be shared by the {count} devices: pass a "
                     f"multiple of {count}, or --devices one")
    # every batch is split evenly between the devices: the last validation batch too
    val_images = EXAMPLES["validation"] if args.val_limit is None else args.val_limit
    val_images -= val_images % batch % count
    if val_images < 1:
        parser.error(f"--val-limit {args.val_limit} leaves no validation images that the "
                     f"{count} devices can share: pass at least {count}")
    data = dict(image_size=size, batch=batch, data_dir=args.data_dir)
    checkpoint = args.checkpoint or os.path.join(cache_dir(), "checkpoints",
                                                 f"imagenet-{args.model}-{size}px")
    try:  # too few images for one batch; no ImageNet where tensorflow-datasets looks
        training = pipeline("train", training=True, scale=paper["scale"], limit=args.limit,
                            **data)
        validation = pipeline("validation", training=False, limit=val_images, **data)
    except (ValueError, AssertionError) as error:
        parser.error(f"{error}\n(the README's 'Training on ImageNet itself' says where the two "
                     "archives go)")
    model = models.build(args.model, input_shape=(size, size, 3), num_classes=1000)
    source = paper["source"] if family in RECIPES else f"no recipe for {family}: AlexNet's"
    print(f"{args.model} at {size} px on {cfg.backend} ({cfg.device}, {cfg.precision}): "
          f"{epochs} epochs, batch {batch}, lr {lr}, weight decay {decay} ({source})")
    history = train.fit(
        model, training, validation, epochs=epochs, lr=lr, momentum=0.9,
        weight_decay=decay, schedule="step",
        milestones=milestones(epochs, paper["reductions"]) or None, checkpoint=checkpoint,
        distribution=devices)
    top1 = 1 - history["val_accuracy"][-1]
    print(f"top-1 error on the validation images: {top1:.2%} (checkpoint {checkpoint})")
    return history


if __name__ == "__main__":
    main()
