"""A thin layer over `model.fit` that every notebook shares.

`fit(model, train, val, epochs=..., lr=...)` compiles the model with the papers' recipe
(SGD with momentum and the papers' L2 weight decay, a step or cosine learning-rate
schedule), trains it, prints one line per epoch (never thousands of progress-bar lines),
measures throughput, and returns the history as a plain dict for plotting, with a "run"
entry that says where and when it was trained. Given `data.batches(..., device=True)`, it
trains the model behind the batches' augmentation layer (`course_lib.augment`), so crops,
flips and colour noise are computed in the compiled training step and the model itself
stays the paper's.

Give it a `checkpoint` folder and after every epoch it replaces one file there,
checkpoint.npz: the model's variables (its random generators' states included), the
optimizer's state, the history and the run's settings. Run the same call again after an
interruption (a dropped Colab session, a closed laptop) and it continues from the last
finished epoch to exactly the weights an uninterrupted run would reach (same backend and
device, data from `course_lib.data.batches`; a GPU only as exact as its kernels are
deterministic); a finished run is returned, not repeated.

A network with auxiliary classifiers (GoogLeNet's) trains the same way, on the weighted
sum of its outputs' losses: ``fit(model, ..., loss_weights=(0.3, 0.3, 1.0))``.

What it checks: before the first step, the settings, the data (its batches, image size and
labels against the model's outputs) and that the model ends with a softmax; it refuses
device and host batches mixed, device batches that would validate other crops than they
train on, a model that does not take the crops, a checkpoint made with other settings or
another model (only a constant-rate run may be given more epochs), reports a damaged
checkpoint without touching it, and stops with advice as soon as the loss is NaN or
infinite, keeping the last checkpoint with finite weights.

On several devices: ``fit(..., distribution="data_parallel")`` trains on every visible GPU
(or TPU core, or simulated device) at once, each on its share of every batch, with
`keras.distribution.DataParallel` on JAX and `tf.distribute.MirroredStrategy` on
TensorFlow; `batch` stays the global batch. `model` is trained all the same: a copy laid out
for the devices trains, and its weights come back into `model` at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import tempfile
import time

import keras
import numpy as np

from course_lib.augment import Augment, in_front
from course_lib.config import global_seed_generator, gpu_name, is_number, is_whole
from course_lib.data import Batches, DeviceBatches

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")
CHECKPOINT = "checkpoint.npz"  # the one file a checkpoint folder holds
FORMAT = 2  # version 1 wrote progress.json and state.npz


# --------------------------------------------------------------------------- the recipe


def milestones_for(schedule: str, epochs: int, milestones=None) -> list[int] | None:
    """The epochs at which the step schedule divides the rate by 10; None for the others.

    By default at 50% and 75% of the run. Given ones must fall inside the run.
    """
    if schedule != "step":
        if milestones is not None:
            raise ValueError(f"milestones only apply to schedule='step', not {schedule!r}")
        return None
    if milestones is None:  # a run too short to have a step gets none
        return sorted({m for m in (epochs // 2, (3 * epochs) // 4) if m > 0})
    if not isinstance(milestones, (list, tuple, range)):
        raise ValueError(f"milestones must be a list of epochs, such as [30, 60], not "
                         f"{milestones!r}")
    if not all(is_whole(m) and 0 < m < epochs for m in milestones):
        raise ValueError(f"milestones must be epochs from 1 to {epochs - 1} (the run has "
                         f"{epochs}), not {list(milestones)}")
    return sorted({int(m) for m in milestones})


def learning_rate(lr: float, schedule: str, epochs: int, steps_per_epoch: int,
                  milestones=None):
    """The learning rate as a function of the step, as the papers set it.

    - ``constant``: `lr` throughout.
    - ``step``: divided by 10 at each epoch in `milestones` (default: at 50% and 75%).
    - ``cosine``: a half cosine from `lr` down to 0 over the whole run.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    milestones = milestones_for(schedule, epochs, milestones)
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch)
    if not milestones:
        return lr
    # The schedule keeps values[0] while step <= boundary; step m * steps is epoch m's first.
    boundaries = [m * steps_per_epoch - 1 for m in milestones]
    values = [lr * 0.1**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@keras.saving.register_keras_serializable(package="course_lib")
class SGD(keras.optimizers.SGD):
    """SGD with momentum as the papers ran it (Caffe, cuda-convnet, later PyTorch): weight
    decay is an L2 penalty, `l2` x w added to each weight's gradient *before* momentum.

    Keras's own `weight_decay` is decoupled: each step takes lr x decay x w off the weight,
    outside momentum. Under momentum 0.9 the papers' rule piles the decay up in the
    velocity, about 1 / (1 - 0.9) = 10 times as much, so the same number decays ten times
    less in Keras. This class takes the papers' numbers as they are. Biases and batch
    norm's gamma and beta are not decayed (`decayed`).
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.9, l2: float = 0.0, **kwargs):
        super().__init__(learning_rate, momentum=momentum, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2 and decayed(variable):
            gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                     keras.ops.multiply(self.l2, variable))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "l2": self.l2}


def decayed(variable) -> bool:
    """Whether weight decay applies: to kernels, not to biases or batch norm's scales."""
    return not any(word in variable.name for word in ("bias", "gamma", "beta"))


def make_optimizer(name: str = "sgd", lr=0.01, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> keras.optimizers.Optimizer:
    """SGD with momentum and the papers' L2 weight decay (`SGD`), or AdamW, whose weight
    decay is decoupled by definition; neither decays biases or batch norm's parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
    if name == "sgd":
        return SGD(lr, momentum=momentum, l2=weight_decay)
    optimizer = keras.optimizers.AdamW(lr, weight_decay=weight_decay or 0.0)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def use_jit() -> bool:
    """XLA on GPUs and always on JAX (which compiles anyway); TensorFlow on a CPU runs plain
    graphs, which start much faster for the short runs CPUs get."""
    return keras.backend.backend() == "jax" or gpu_name() is not None


# --------------------------------------------------------------------------- fit


def fit(model: keras.Model, train, val=None, *, epochs: int, lr: float = 0.01,
        optimizer: str = "sgd", momentum: float = 0.9, weight_decay: float = 5e-4,
        schedule: str = "step", milestones=None, checkpoint: str | None = None,
        callbacks=(), distribution=None, loss_weights=None, verbose: bool = True) -> dict:
    """Compile and train `model`; return the history (one list per metric, per epoch).

    `train` and `val` are `course_lib.data.Batches`, or a `keras.utils.PyDataset` or
    `tf.data.Dataset` of known length yielding (images, labels). Training data with a
    `set_epoch(epoch)` method is told each epoch as it starts, so that its order can
    depend on the epoch alone and a resumed run sees what an uninterrupted one would.
    With `DeviceBatches` (``data.batches(..., device=True)``, for both) `model` trains
    behind the training batches' augmentation layer, and is compiled too, so that
    ``model.evaluate`` works after. The history holds loss, accuracy, val_loss,
    val_accuracy, lr, seconds (per epoch), images (trained in the epoch: fewer when a
    callback stopped it early), images_per_second (training only; the first epoch includes
    compilation) and "run": backend, device, whether XLA compiled the step, date, total
    seconds, and whether the result comes from an earlier run's checkpoint.

    `distribution`: None (one device), "data_parallel" (every device `data_parallel()`
    finds), or one of your own: a `keras.distribution.DataParallel` or `ModelParallel` on
    JAX, a `tf.distribute.Strategy` on TensorFlow. Checkpoints hold plain arrays, so a run
    may resume on another number of devices.

    A model with several softmax outputs (GoogLeNet with its auxiliary classifiers) needs
    `loss_weights`, one per output: the loss is the weighted sum of the outputs' losses,
    all with the same labels (`WeightedHeads`). The last output is the network's own:
    accuracy is measured on it, and the history also holds each output's loss under its
    name (``predictions_loss``). Such a model is not compiled for ``model.evaluate``: its
    main output alone (``googlenet.main_head``) is what to evaluate.

    With `checkpoint`, a rerun continues or returns the saved run. Its settings (model,
    optimizer, lr, momentum, weight_decay, schedule, milestones, epochs, batch size, training
    examples and, for `Batches`, the data set, shuffle seed and augmentation, on the host
    or the device; validation batches) must be the saved ones: anything else would
    silently change the run. The one exception: with schedule="constant", `epochs` may
    grow, to train a finished run further. A run that a callback stopped (EarlyStopping)
    counts as finished. What callbacks keep in themselves (EarlyStopping's count of epochs
    without progress, `TimeBudget`'s clock) is not in the checkpoint: with such callbacks a
    resumed run can stop at another epoch than an uninterrupted one.
    """
    check_settings(epochs, lr, optimizer, momentum, weight_decay, schedule)
    if isinstance(callbacks, keras.callbacks.Callback):  # one, not in a list
        callbacks = [callbacks]
    heads = check_heads(model, loss_weights)
    distribution = distribution_of(distribution)
    trainer = training_model(model, train, val)
    steps, first_labels, classes = check_data(trainer, train, val)
    if heads:  # one output, the heads stacked: (batch, heads, classes)
        trainer = keras.Model(trainer.inputs, keras.ops.stack(trainer.outputs, axis=1),
                              name=trainer.name)
    check_divisible(distribution, train, val)
    batch_size, images = epoch_size(train, steps, first_labels)
    settings = {
        "model": re.sub(r"_\d+$", "", model.name),  # Keras numbers repeated names: net_1
        "optimizer": optimizer, "lr": float(lr),
        "momentum": float(momentum) if optimizer == "sgd" else None,
        "weight_decay": float(weight_decay), "schedule": schedule,
        "milestones": milestones_for(schedule, epochs, milestones), "epochs": int(epochs),
        "batch_size": batch_size, "steps_per_epoch": steps,
        "examples": len(train.data) if isinstance(train, Batches) else images,
        "data": data_settings(train),
        "validation_batches": None if val is None else len(val),  # the curves must line up
        "validation_data": data_settings(val),
        "architecture": architecture(model),  # the same name and shapes, another network?
        "precision": keras.mixed_precision.global_policy().name,
    }
    if heads:
        settings["loss_weights"] = dict(heads)
    if optimizer == "sgd":  # the papers' L2, not the decoupled decay of earlier versions
        settings["weight_decay_rule"] = "l2 before momentum"
    folder = checkpoint_folder(checkpoint) if checkpoint is not None else None
    if trainer is not model and not heads:  # so that model.evaluate works after training
        compile_model(model, settings, classes)
    if isinstance(train, DeviceBatches):  # a new fit draws what the last one drew (a
        train.layer.reset_draws()  # checkpoint, if any, then puts back where it was)
    # On several devices a copy laid out for them trains; `trainer` gets its weights back.
    replica = replicate(trainer, distribution) if distribution else trainer
    with distribution.scope() if distribution else contextlib.nullcontext():
        compile_model(replica, settings, classes)
        progress = resume(replica, folder, settings) if folder else None
        history = progress["history"] if progress else {}
        start = progress["epoch"] if progress else 0
        if progress and (start >= epochs or progress["stopped"]):
            copy_variables(replica, trainer)
            if verbose:
                print(earlier_run(progress, folder))
            return {**history, "run": {**progress["run"], "earlier": True}}
        if start and verbose:
            print(f"resuming from epoch {start} of {epochs} (checkpoint {folder})")
        where = {"backend": keras.backend.backend(), "device": gpu_name() or "cpu",
                 "devices": device_count(distribution), "xla": bool(replica.jit_compile)}
        order = []
        if hasattr(train, "set_epoch"):  # before Keras first reads a batch, then every epoch
            train.set_epoch(start)
            order = [SetEpoch(train)]
        logger = EpochLogger(epochs, steps, images, history, verbose)
        # The saver comes after the caller's callbacks: it records a stop they asked for.
        saver = [Checkpoint(folder, history, settings, where)] if folder else []
        try:
            replica.fit(steady(train), validation_data=steady(val), epochs=epochs,
                        initial_epoch=start,
                        verbose=0, shuffle=False, callbacks=[*order, logger, StopOnNonFinite(),
                                                             *(callbacks or ()), *saver])
        finally:  # also when interrupted: `model` holds what was trained
            copy_variables(replica, trainer)
    return {**history, "run": {**run_record(where, history), "earlier": False}}


def steady(batches):
    """On TensorFlow, a `keras.utils.PyDataset` (the course's `Batches`) as the tf.data
    pipeline Keras would make of it, but with tf.data's autotuning off; other data as it is.

    Keras feeds a PyDataset through tf.data with ``prefetch(AUTOTUNE)``, whose tuning
    competes for the CPU: on 2 cores, 1 epoch in 4 or so ran at half speed (All-CNN-C, 125
    against 250 images/s, from one epoch to the next of the same run). The order stays the
    batches' own: fit sets each epoch's order (`SetEpoch`) before its first batch is read.
    """
    if keras.backend.backend() != "tensorflow" or not isinstance(batches,
                                                                  keras.utils.PyDataset):
        return batches
    import tensorflow as tf

    def spec(part):
        part = np.asarray(part)
        return tf.TensorSpec((None, *part.shape[1:]), tf.as_dtype(part.dtype))

    def each_batch():
        for index in range(len(batches)):
            yield tuple(np.asarray(part) for part in batches[index])

    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = tf.data.Dataset.from_generator(
        each_batch, output_signature=tuple(spec(part) for part in batches[0]))
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options).apply(
        tf.data.experimental.assert_cardinality(len(batches)))


# --------------------------------------------------------------------------- several devices

# Keras's distributions (JAX only); Keras exports no base class for them
KERAS_DISTRIBUTIONS = (keras.distribution.DataParallel, keras.distribution.ModelParallel)
_MIRRORED = {}  # TensorFlow's MirroredStrategy, by devices: made once, then reused


def data_parallel():
    """Every device this backend sees, for data-parallel training: the GPUs (or, without
    any, the CPU devices, which are one unless simulated), as a
    `keras.distribution.DataParallel` on JAX or a `tf.distribute.MirroredStrategy` on
    TensorFlow."""
    backend = keras.backend.backend()
    if backend == "jax":
        return keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        names = tuple(device.name for device in devices)
        # One strategy per process: two would number their collective operations alike,
        # and a second network of another size then fails in the gradients' all-reduce.
        if names not in _MIRRORED:
            _MIRRORED[names] = tf.distribute.MirroredStrategy(list(names))
        return _MIRRORED[names]
    raise ValueError(f"data-parallel training runs on JAX and TensorFlow, not {backend}")


def distribution_of(distribution):
    """`distribution` as fit takes it: None, or a distribution for the active backend."""
    if distribution is None:
        return None
    if distribution == "data_parallel":
        return data_parallel()
    backend = keras.backend.backend()
    if backend == "jax" and isinstance(distribution, KERAS_DISTRIBUTIONS):
        return distribution
    if backend == "tensorflow" and type(distribution).__module__.startswith("tensorflow"):
        import tensorflow as tf

        if isinstance(distribution, tf.distribute.Strategy):
            return distribution
    kind = {"jax": "a keras.distribution.DataParallel or ModelParallel",
            "tensorflow": "a tf.distribute.Strategy"}.get(backend, "nothing else")
    raise ValueError(f"distribution must be None, 'data_parallel' or, on {backend}, {kind}; "
                     f"not {distribution!r}")


def device_count(distribution) -> int:
    if distribution is None:
        return 1
    if isinstance(distribution, KERAS_DISTRIBUTIONS):
        return int(np.prod(distribution.device_mesh.shape))
    return int(distribution.num_replicas_in_sync)


def check_divisible(distribution, train, val) -> None:
    """Every batch is split evenly between the devices: refuse batches that cannot be."""
    count = device_count(distribution)
    for role, batches in (("training", train), ("validation", val)):
        sizes = batch_sizes(batches) if batches is not None else set()
        uneven = sorted(size for size in sizes if size % count)
        if uneven:
            raise ValueError(
                f"the {role} batches hold {uneven[0]} images, which {count} devices cannot "
                f"share evenly: make the batch size and the number of examples multiples of "
                f"{count} (or pass drop_remainder=True to data.batches)")


def batch_sizes(batches) -> set[int]:
    """The sizes of `batches`' batches: at most two, the full one and the last."""
    if isinstance(batches, Batches):
        full, left = batches.batch_size, len(batches.data) % batches.batch_size
        return {full} if not left or batches.drop_remainder else {full, left}
    if isinstance(batches, keras.utils.PyDataset):
        return {len(batches[0][1]), len(batches[len(batches) - 1][1])}
    return set()  # a tf.data pipeline: JAX says so itself at the batch it cannot split


def replicate(model: keras.Model, distribution) -> keras.Model:
    """A copy of `model` whose variables are laid out for `distribution`, holding its values."""
    with distribution.scope():
        try:
            copy = keras.models.clone_model(model, recursive=True)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"training {model.name!r} on several devices copies it with "
                f"keras.models.clone_model, which could not copy it ({error}): build it as a "
                "functional or Sequential model whose layers have get_config") from error
        copy_variables(model, copy)
    return copy


def copy_variables(source: keras.Model, target: keras.Model) -> None:
    """Every variable's value (weights, batch-norm statistics, generator states), in order."""
    if source is target:
        return
    for mine, theirs in zip(source.variables, target.variables, strict=True):
        theirs.assign(keras.ops.convert_to_numpy(mine))


def training_model(model: keras.Model, train, val) -> keras.Model:
    """The model that trains: `model` itself, or for `DeviceBatches` the model behind their
    augmentation layer (`augment.in_front`), which shares its weights.

    Training and validation data must both be device batches or neither, and device ones
    must agree on what evaluation does (image size, crop, resize, normalisation).
    """
    device = isinstance(train, DeviceBatches)
    if device and any(isinstance(layer, Augment) for layer in model.layers):
        raise ValueError(f"{model.name!r} already has an augmentation layer in front "
                         "(augment.in_front): with data.batches(..., device=True) pass the "
                         "network itself, and fit puts the batches' layer in front of it")
    if val is not None and isinstance(val, DeviceBatches) != device:
        raise ValueError("the training and validation batches must both be "
                         "data.batches(..., device=True) or neither: the model trains behind "
                         "the training batches' augmentation layer, and validates behind it")
    if not device:
        return model
    if val is not None and (val.data.image_shape != train.data.image_shape
                            or val.layer.evaluation() != train.layer.evaluation()):
        raise ValueError(
            f"the validation batches ({val.data.image_shape}, {val.layer.evaluation()}) must "
            f"be stored and evaluated as the training batches are ({train.data.image_shape}, "
            f"{train.layer.evaluation()}): pass them the same crop and resize")
    return in_front(train.layer, model, train.data.image_shape)


def data_settings(train) -> dict | None:
    """What makes `Batches` feed one run and not another: the data set, its examples (their
    labels' fingerprint catches another `limit` or `seed` of `load`), the shuffle seed and
    the augmentation (for `DeviceBatches` also the resize, the PCA colour noise, and that
    it runs on the device). None for other data, whose settings fit cannot see."""
    if not isinstance(train, Batches):
        return None
    settings = {
        "name": train.data.name, "image_shape": list(train.data.image_shape),
        "labels": hashlib.sha1(np.ascontiguousarray(train.data.labels)).hexdigest()[:16],
        "seed": train.seed, "crop": train.crop, "pad": train.pad, "flip": bool(train.flip),
        "augment": describe(train.augment) if train.augment else None}
    if isinstance(train, DeviceBatches):
        settings.update(device=True, resize=train.resize, pca=train.layer.pca is not None,
                        pca_sigma=train.layer.pca_sigma)
    return settings


def describe(function) -> str:
    """A NumPy augmentation function as a checkpoint records it: its name and a fingerprint
    of its code (an edited body is another augmentation), the same in every process."""
    if hasattr(function, "func"):  # functools.partial
        options = (function.args, sorted(function.keywords.items()))
        return f"{describe(function.func)} with {_stable(repr(options))}"
    code = getattr(function, "__code__", None)
    if code is None:
        return _stable(repr(function))
    body = hashlib.sha1(code.co_code + _stable(repr(code.co_consts)).encode()).hexdigest()
    return f"{function.__qualname__} (code {body[:12]})"


def _stable(text: str) -> str:
    """`text` without the memory addresses ("at 0x7f2e...") that change in every process."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def architecture(model: keras.Model) -> str:
    """A fingerprint of the network: each layer's kind and options (not its name, which
    Keras numbers anew each time a cell builds it), in order, nested models included."""
    def layers(container):
        for layer in container.layers:
            if isinstance(layer, keras.Model):
                yield from layers(layer)
                continue
            try:
                config = {k: v for k, v in layer.get_config().items() if k != "name"}
            except NotImplementedError:  # a layer of one's own without get_config
                config = {}
            yield type(layer).__name__, config

    text = _stable(json.dumps(list(layers(model)), sort_keys=True, default=repr))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def compile_model(model: keras.Model, settings: dict, classes: int) -> None:
    """Compile with the optimizer and schedule `settings` name; top-5 beyond 10 classes.
    With `settings["loss_weights"]`, `model`'s output is several heads stacked."""
    rate = learning_rate(settings["lr"], settings["schedule"], settings["epochs"],
                         settings["steps_per_epoch"], settings["milestones"])
    heads = settings.get("loss_weights")
    if heads:
        loss, metrics = WeightedHeads(list(heads.values())), head_metrics(list(heads), classes)
    else:
        top5 = [keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5")] * (classes > 10)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy", *top5]
    model.compile(
        optimizer=make_optimizer(settings["optimizer"], rate, settings["momentum"],
                                 settings["weight_decay"]),
        loss=loss, metrics=metrics, jit_compile=use_jit(),
    )


# --------------------------------------------------------------------------- several outputs


class WeightedHeads(keras.losses.Loss):
    """The loss of a network with auxiliary classifiers: each head's cross-entropy with the
    same labels, weighted and summed (GoogLeNet: 0.3 aux1 + 0.3 aux2 + 1.0 main). The
    predictions are the heads' softmax outputs stacked: (batch, heads, classes)."""

    def __init__(self, head_weights, name: str = "weighted_heads", **kwargs):
        super().__init__(name=name, **kwargs)
        self.head_weights = [float(w) for w in head_weights]

    def call(self, y_true, y_pred):
        return sum(weight * keras.losses.sparse_categorical_crossentropy(y_true, y_pred[:, k])
                   for k, weight in enumerate(self.head_weights))

    def get_config(self) -> dict:
        return {**super().get_config(), "head_weights": self.head_weights}


def head_metrics(names: list[str], classes: int) -> list:
    """Accuracy (and top-5 beyond 10 classes) of the last head, the network's own, and
    each head's loss under its name, for stacked heads."""

    def on_head(function, head: int, name: str, **options):
        return keras.metrics.MeanMetricWrapper(
            lambda y_true, y_pred: function(y_true, y_pred[:, head], **options), name=name)

    main = len(names) - 1
    metrics = [on_head(keras.metrics.sparse_categorical_accuracy, main, "accuracy")]
    if classes > 10:
        metrics.append(on_head(keras.metrics.sparse_top_k_categorical_accuracy, main, "top5",
                               k=5))
    return metrics + [on_head(keras.losses.sparse_categorical_crossentropy, head,
                              f"{name}_loss") for head, name in enumerate(names)]


def earlier_run(progress: dict, folder: str) -> str:
    """The line that says a result comes from a checkpoint, and from which run."""
    run, epochs = progress["run"], progress["epoch"]
    stopped = ", stopped by a callback" if progress["stopped"] else ""
    return (f"this result comes from an earlier run on {run['backend']}/{run['device']} at "
            f"{run['date']}: {epochs} epoch{'s' * (epochs != 1)}{stopped}, "
            f"{run['seconds']:.0f} s of training (checkpoint {folder}; delete it to train again)")


def run_record(where: dict, history: dict) -> dict:
    """Backend, device, date and total seconds of a run: where a result came from."""
    return {**where, "date": datetime.datetime.now().isoformat(" ", "seconds"),
            "seconds": sum(history.get("seconds", []))}


# --------------------------------------------------------------------------- checks



def check_settings(epochs, lr, optimizer, momentum, weight_decay, schedule) -> None:
    """Refuse settings that would train nothing, diverge, or quietly mean something else."""
    if not is_whole(epochs) or epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1, not {epochs!r}")
    if not is_number(lr) or not 0 < lr < math.inf:
        raise ValueError(f"lr (the learning rate) must be a positive number, not {lr!r}")
    if not is_number(momentum) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must be at least 0 and below 1, not {momentum!r}")
    if not is_number(weight_decay) or not 0 <= weight_decay < math.inf:
        raise ValueError(f"weight_decay must be a number >= 0, not {weight_decay!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")


def check_heads(model: keras.Model, loss_weights) -> list[tuple[str, float]] | None:
    """(output name, weight) for each output of a model with several, from `loss_weights`;
    None for a model with one output (and no loss_weights)."""
    outputs = getattr(model, "outputs", None) or [None]
    names = getattr(model, "output_names", None) or [f"output_{k}" for k in range(len(outputs))]
    if loss_weights is None:
        if len(outputs) > 1:
            raise ValueError(
                f"the model has {len(outputs)} outputs ({', '.join(names)}): give "
                "loss_weights, one per output, the last output being the network's own, "
                "as googlenet.AUX_LOSS_WEIGHTS (0.3, 0.3, 1.0) are")
        return None
    if isinstance(loss_weights, dict):  # by output name, as Keras's compile takes them
        weights = ([loss_weights[name] for name in names]
                   if set(loss_weights) == set(names) else None)
    elif isinstance(loss_weights, (list, tuple, np.ndarray)):
        weights = list(np.asarray(loss_weights, dtype=object).reshape(-1))
    else:
        weights = None
    if len(outputs) < 2:
        raise ValueError("loss_weights is for a model with several outputs (auxiliary "
                         "classifiers); this model has one")
    if weights is None or len(weights) != len(outputs) or not all(
            is_number(w) and 0 <= w < math.inf for w in weights) or not weights[-1] > 0:
        raise ValueError(f"loss_weights must be {len(outputs)} numbers >= 0, one per output "
                         f"({', '.join(names)}; or a dict by those names), the last above 0; "
                         f"not {loss_weights!r}")
    return [(name, float(w)) for name, w in zip(names, weights, strict=True)]


def check_data(model: keras.Model, train, val) -> tuple[int, np.ndarray, int]:
    """Check the data against the model before any training.

    Returns (batches per epoch, the first batch's labels, number of classes). Errors that
    Keras would report late (after an epoch), obscurely ("Graph execution error") or not at
    all (JAX trains on labels the model has no output for) are caught here.
    """
    steps, images, labels = first_batch(train, "training")
    check_images(model, images, "training")
    classes = check_softmax(model, images)
    check_labels(all_labels(train, labels), classes, "training")
    if val is not None:
        _, val_images, val_labels = first_batch(val, "validation")
        check_images(model, val_images, "validation")
        check_labels(all_labels(val, val_labels), classes, "validation")
    return steps, labels, classes


def first_batch(dataset, role: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(batches per epoch, first images, first labels) of data that fit can train on."""
    if not (isinstance(dataset, keras.utils.PyDataset) or hasattr(dataset, "element_spec")):
        raise TypeError(f"the {role} data must be data.batches(split, batch_size), a "
                        "keras.utils.PyDataset or a tf.data.Dataset, not "
                        f"{type(dataset).__name__}")
    try:
        steps = len(dataset)
    except TypeError as error:
        raise ValueError(f"fit needs to know how many batches the {role} data has; for a "
                         "tf.data pipeline of unknown length add .apply("
                         "tf.data.experimental.assert_cardinality(batches))") from error
    if steps < 1:
        raise ValueError(f"the {role} data has no batches")
    batch = dataset[0] if isinstance(dataset, keras.utils.PyDataset) else next(iter(dataset))
    return steps, np.asarray(batch[0]), np.asarray(batch[1])


def all_labels(dataset, first: np.ndarray) -> np.ndarray:
    """Every label of `Batches`; for other data, those of the first batch."""
    return dataset.data.labels if isinstance(dataset, Batches) else first


def check_images(model: keras.Model, images: np.ndarray, role: str) -> None:
    """The images must have the size the model takes (a model not built yet takes any), and
    be uint8 where it takes uint8 (an augmentation layer in front would cast floats)."""
    inputs = getattr(model, "inputs", None)
    if (inputs and keras.backend.standardize_dtype(inputs[0].dtype) == "uint8"
            and images.dtype != np.uint8):
        raise ValueError(
            f"the model takes uint8 images, as stored (it has the augmentation layer in front "
            f"of it), but the {role} images are {images.dtype}: give it "
            "data.batches(..., device=True), or train the network without the layer")
    expected = getattr(model, "input_shape", None)
    if not isinstance(expected, tuple):
        return
    expected = expected[1:]
    if len(expected) != images.ndim - 1 or any(
            size not in (None, got)
            for size, got in zip(expected, images.shape[1:], strict=True)):
        raise ValueError(f"the {role} images are {images.shape[1:]} but the model takes "
                         f"{expected}: load every split with the same image_size")


def check_labels(labels: np.ndarray, classes: int, role: str) -> None:
    """Labels must be class numbers 0 .. classes - 1, one per example."""
    labels = np.asarray(labels)
    if labels.ndim > 1 and labels.shape[-1] > 1:
        raise ValueError(f"the {role} labels have shape {labels.shape}: give class numbers "
                         "(0, 1, 2, ...), not one-hot rows")
    if labels.dtype.kind not in "iu" and not (np.isfinite(labels).all()
                                              and (labels == np.round(labels)).all()):
        raise ValueError(f"the {role} labels must be whole class numbers, not {labels.dtype} "
                         "values such as NaN or 0.5")
    low, high = labels.min(), labels.max()
    if low < 0 or high >= classes:
        raise ValueError(f"the {role} labels run from {low:g} to {high:g}, but the model has "
                         f"{classes} outputs (classes 0 to {classes - 1}): check the labels, "
                         "or build the model with as many outputs as there are classes")


def check_softmax(model: keras.Model, images: np.ndarray) -> int:
    """The loss takes probabilities: run the model on a few images and look at its outputs.

    Returns the number of outputs (classes).
    """
    heads = keras.tree.flatten(model(images[:8], training=False))
    for outputs in heads:
        outputs = keras.ops.convert_to_numpy(outputs).astype("float32")
        if outputs.ndim != 2 or (outputs < 0).any() or not np.allclose(outputs.sum(-1), 1,
                                                                       atol=0.02):
            raise ValueError(
                "the model's outputs are not probabilities (rows of numbers >= 0 that sum to "
                "1): fit's loss expects the model to end with a softmax, as in "
                "Dense(num_classes, activation='softmax'); on logits it would not learn "
                "properly")
    classes = {int(outputs.shape[-1]) for outputs in heads}
    if len(classes) > 1:
        raise ValueError(f"the model's outputs have {sorted(classes)} classes: every head "
                         "must predict the same classes")
    return classes.pop()


def epoch_size(dataset, steps: int, first_labels: np.ndarray) -> tuple[int, int]:
    """(batch size, images one training epoch sees).

    Exact for `Batches`; for other data, every batch is taken to be as large as the first
    (a tf.data pipeline without drop_remainder then counts its last batch as full).
    """
    if isinstance(dataset, Batches):
        whole = steps * dataset.batch_size
        return dataset.batch_size, whole if dataset.drop_remainder else len(dataset.data)
    return len(first_labels), steps * len(first_labels)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_folder(path) -> str:
    """Make sure `path` can hold the checkpoint (a folder, made if missing), before training."""
    path = os.fspath(path)
    if not path:
        raise ValueError("checkpoint='' names no folder: pass a folder's path, or "
                         "checkpoint=None to train without one")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"checkpoint={path!r} is a file, but checkpoint names a folder (fit "
                         f"keeps {CHECKPOINT} in it): pass a folder, for example "
                         f"{os.path.dirname(path) or '.'!r} or a new one")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:  # a file where a parent folder should be, no permission, ...
        raise ValueError(f"cannot make the checkpoint folder {path!r}: {error.strerror} "
                         f"({error.filename}); pass another folder") from error
    return path


def save(folder: str, arrays: dict, progress: dict) -> None:
    """Write `arrays` and `progress` (as JSON) into `folder`/checkpoint.npz, atomically.

    The file is written under a unique temporary name in the same folder, then renamed over
    the old one: a crash, or another process saving at the same time, leaves the old
    checkpoint or the new one, never a mix or half of one.
    """
    handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, progress=np.array(json.dumps({**progress, "format": FORMAT})),
                     **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, os.path.join(folder, CHECKPOINT))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(folder: str) -> tuple[dict, dict] | None:
    """The arrays and progress in `folder`/checkpoint.npz, or None when there is none yet."""
    path = os.path.join(folder, CHECKPOINT)
    if not os.path.exists(path):
        if any(os.path.exists(os.path.join(folder, old)) for old in ("progress.json",
                                                                    "state.npz")):
            raise ValueError(
                f"{folder} holds a checkpoint of an earlier version of course_lib "
                "(progress.json, state.npz), which did not save the random generators or "
                "the settings, so it cannot be resumed exactly: delete that folder to start "
                "over, or pass another checkpoint folder")
        return None
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        progress = json.loads(str(arrays.pop("progress")))
        if progress["format"] != FORMAT:
            raise ValueError(f"format {progress['format']}, this version reads {FORMAT}")
    except Exception as error:  # noqa: BLE001 - whatever failed, the file cannot be used
        raise ValueError(
            f"the checkpoint {path} is damaged or was not written by fit (reading it failed "
            f"with {type(error).__name__}); it was left as it is. Put back a copy if you have "
            "one; otherwise delete it to start over, or pass another checkpoint folder"
        ) from error
    return arrays, progress


def resume(model: keras.Model, folder: str, settings: dict) -> dict | None:
    """Load `folder`'s checkpoint into the compiled `model`; its progress, or None if none."""
    found = load(folder)
    if found is None:
        return None
    arrays, progress = found
    if progress["epoch"] == 0 and progress["settings"] != settings:
        return None  # the start of a run that trained nothing: begin the new one instead
    count = sum(name.startswith("variable_") for name in arrays)
    saved = [arrays[f"variable_{i}"].shape for i in range(count)]
    if saved != [tuple(v.shape) for v in model.variables]:
        if progress["settings"].get("model") == settings["model"]:
            check_same_settings(progress, settings, folder)  # says what changed, if anything
        raise ValueError(
            f"the checkpoint in {folder} was saved from a different model "
            f"({progress['settings']['model']!r}, {len(saved)} variables) than "
            f"{model.name!r} ({len(model.variables)}): pass another checkpoint folder, or "
            "delete that one to start over")
    check_same_settings(progress, settings, folder)
    restore_state(model, arrays)
    return progress


# Settings that earlier versions of the course did not record: their checkpoints still resume.
LATER_SETTINGS = ("validation_data", "architecture", "precision")


def check_same_settings(progress: dict, settings: dict, folder: str) -> None:
    """Refuse to resume with settings other than the checkpoint's, saying what differs."""
    saved = progress["settings"]
    unknown = [key for key in LATER_SETTINGS if key not in saved]
    if unknown:  # the next save records them
        print(f"The checkpoint in {folder} was made by an earlier version of course_lib, "
              f"which did not record {', '.join(unknown)}: resuming without comparing them.")
    changed = {key: (saved.get(key), value) for key, value in settings.items()
               if key not in unknown and saved.get(key) != value}
    done = progress["epoch"]
    if set(changed) == {"epochs"} and settings["schedule"] == "constant":
        if settings["epochs"] < done:
            raise ValueError(f"the checkpoint in {folder} already holds {done} epochs, more "
                             f"than epochs={settings['epochs']}: ask for at least {done}, or "
                             "pass another checkpoint folder")
        return  # a constant rate does not depend on the run's length: train on
    if changed:
        lines = "\n".join(f"  {key}: {old!r} then, {new!r} now"
                          for key, (old, new) in changed.items())
        note = ("\nWith a step or cosine schedule the number of epochs sets where the rate "
                "falls, so only a schedule='constant' run can be given more epochs."
                if "epochs" in changed else "")
        raise ValueError(
            f"the checkpoint in {folder} was made with other settings:\n{lines}{note}\n"
            "Resuming would silently change the run: call fit with the checkpoint's settings, "
            "pass another checkpoint folder for a new run, or delete that folder to start over")


def model_state(model: keras.Model) -> dict[str, np.ndarray]:
    """All a resumed run needs: the model's variables (weights, and the states of the random
    generators its dropout draws from), the optimizer's (step count, momentum) and Keras's
    global generator's, which random ops without a generator of their own use."""
    arrays = {f"variable_{i}": keras.ops.convert_to_numpy(v)
              for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer_{i}": keras.ops.convert_to_numpy(v)
                   for i, v in enumerate(model.optimizer.variables)})
    generator = global_seed_generator()
    if generator is not None:
        arrays["global_seed"] = keras.ops.convert_to_numpy(generator.state)
    return arrays


def restore_state(model: keras.Model, arrays: dict) -> None:
    """Put `model_state`'s arrays back into a compiled model (built from the same code)."""
    for i, variable in enumerate(model.variables):
        variable.assign(arrays[f"variable_{i}"])
    model.optimizer.build(model.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])
    if "global_seed" in arrays:
        global_seed_generator(create=True).state.assign(arrays["global_seed"])


# --------------------------------------------------------------------------- callbacks


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def diverged(what: str, epoch: int, lr: float) -> FloatingPointError:
    """The error, with advice, for a run whose numbers stopped being finite."""
    return FloatingPointError(
        f"{what} in epoch {epoch} (learning rate {lr:g}), so training stopped; a checkpoint "
        "keeps the last epoch whose weights were finite. Try a learning rate 3 to 10 times "
        "lower, and check that the images are normalised (data.batches does it) and hold no "
        "NaN.")


class SetEpoch(keras.callbacks.Callback):
    """Tells the training batches which epoch starts, so a resumed run sees the same order."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of wall-clock time have passed, for comparisons on an
    equal budget: ``fit(..., epochs=1000, schedule="constant", callbacks=[TimeBudget(60)])``.

    Only training counts: the clock starts when the first training step ends, so compiling
    that step does not count (it takes longer for a deeper network, and far longer on JAX
    than on TensorFlow), and it stops while the validation data is evaluated (compiling
    that included). Training stops after the step that crosses the budget (Keras then
    validates and ends the epoch), so a run overshoots by up to one step. `fit` counts a
    run it stopped as finished. After training, `seconds[i]` is the training time on the
    clock at the end of epoch i + 1 (the x axis for a curve of accuracy against time) and
    `steps` the training steps taken. The clock and the lists belong to one call of fit: a
    run resumed from a checkpoint gets the whole budget again, so time a run in one go.
    """

    def __init__(self, seconds: float):
        super().__init__()
        if not is_number(seconds) or not 0 < seconds < math.inf:
            raise ValueError(f"seconds must be a positive number, not {seconds!r}")
        self.budget = float(seconds)
        self.on_train_begin()

    def elapsed(self) -> float:
        """Seconds of training so far (not counting the first step and validation)."""
        if self.start is None:
            return 0.0
        return (self.paused or time.perf_counter()) - self.start - self.pauses

    def on_train_begin(self, logs=None):
        self.start, self.steps, self.seconds = None, 0, []
        self.paused, self.pauses = None, 0.0  # when validation began; its total time

    def on_test_begin(self, logs=None):
        self.paused = time.perf_counter()

    def on_test_end(self, logs=None):
        if self.paused is not None and self.start is not None:
            self.pauses += time.perf_counter() - self.paused
        self.paused = None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.start is None:
            self.start = time.perf_counter()
        elif self.elapsed() >= self.budget:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self.elapsed())


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises `diverged` as soon as the training loss (or, at the epoch's end, any metric) is
    NaN or infinite. Keras's TerminateOnNaN stops quietly; this says what to try.

    It reads the previous step's loss: the step just launched keeps the accelerator busy
    meanwhile (JAX and GPUs run steps ahead of Python).
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.pending = epoch + 1, None

    def on_train_batch_end(self, batch, logs=None):
        if self.pending is not None:
            loss = float(keras.ops.convert_to_numpy(self.pending))
            if not math.isfinite(loss):
                raise diverged(f"the training loss became {loss} by batch {batch}",
                               self.epoch, current_lr(self.model))
        self.pending = (logs or {}).get("loss")

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise diverged(f"{name} became {float(value)}", self.epoch,
                               current_lr(self.model))


class EpochLogger(keras.callbacks.Callback):
    """Prints one line per epoch and records time, throughput and learning rate."""

    def __init__(self, epochs: int, steps: int, images: int, history: dict,
                 verbose: bool = True):
        super().__init__()
        self.epochs, self.steps, self.images = epochs, steps, images
        self.history, self.verbose = history, verbose

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end, self._batches = None, 0
        # The rate this epoch starts with (a step schedule changes it at epoch boundaries).
        self._lr = current_lr(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if batch == self.steps - 1 and logs:
            # JAX runs steps asynchronously: reading a number waits for the last one.
            float(keras.ops.convert_to_numpy(next(iter(logs.values()))))
            self._train_end = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._train_end = self._train_end or time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        train_seconds = (self._train_end or end) - self._start
        record = {k: float(v) for k, v in (logs or {}).items()}
        record["lr"] = self._lr
        record["seconds"] = end - self._start
        # the images trained: fewer when a callback (TimeBudget, EarlyStopping) stopped the
        # epoch before its last step
        record["images"] = round(self.images * min(self._batches, self.steps) / self.steps)
        record["images_per_second"] = record["images"] / train_seconds
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        self.history.setdefault("epoch", []).append(epoch + 1)
        if self.verbose:
            shown = "  ".join(f"{k} {record[k]:.4f}" for k in
                              ("loss", "accuracy", "val_loss", "val_accuracy") if k in record)
            print(f"epoch {epoch + 1:>3}/{self.epochs}  {shown}  "
                  f"{record['images_per_second']:,.0f} img/s  {record['seconds']:.1f} s",
                  flush=True)


class Checkpoint(keras.callbacks.Callback):
    """Saves the run into `folder` after every epoch, and again when training ends (where
    callbacks such as EarlyStopping may have stopped it or restored earlier weights).

    Weights that are not finite are never saved: the last good checkpoint stays.
    """

    def __init__(self, folder: str, history: dict, settings: dict, where: dict):
        super().__init__()
        self.folder, self.history, self.settings, self.where = folder, history, settings, where

    def on_train_begin(self, logs=None):
        if not self.history.get("epoch"):  # a new run: keep its start, so that a run
            self.save()  # stopped in its first epoch starts again from the same weights

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        self.save()

    def save(self):
        epoch = self.history["epoch"][-1] if self.history.get("epoch") else 0
        if not self.model.optimizer.built:  # before the first step (the run's start)
            self.model.optimizer.build(self.model.trainable_variables)
        arrays = model_state(self.model)
        broken = [name for name, array in arrays.items()
                  if array.dtype.kind == "f" and not np.isfinite(array).all()]
        if broken:
            raise diverged(f"the weights hold NaN or infinite numbers ({broken[0]})", epoch,
                           current_lr(self.model))
        save(self.folder, arrays, {
            "epoch": epoch, "stopped": bool(self.model.stop_training),
            "settings": self.settings, "history": self.history,
            "run": run_record(self.where, self.history),
        })
