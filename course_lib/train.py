"""A thin layer over `model.fit` that every notebook shares.

`fit(model, train, val, epochs=..., lr=...)` compiles the model with the papers' recipe
(SGD with momentum and weight decay, a step or cosine learning-rate schedule), trains it,
prints one line per epoch (never thousands of progress-bar lines), measures throughput, and
returns the history as a plain dict for plotting.

Give it a `checkpoint` folder and it saves the weights, the optimizer's state and the history
after every epoch; run the same call again after an interruption (a dropped Colab session, a
closed laptop) and it continues from the last finished epoch instead of starting over.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")


def learning_rate(lr: float, schedule: str, epochs: int, steps_per_epoch: int,
                  milestones=None):
    """The learning rate as a function of the step, as the papers set it.

    - ``constant``: `lr` throughout.
    - ``step``: divided by 10 at each epoch in `milestones` (default: at 50% and 75%).
    - ``cosine``: a half cosine from `lr` down to 0 over the whole run.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps_per_epoch)
    milestones = milestones or [epochs // 2, (3 * epochs) // 4]
    milestones = sorted({m for m in milestones if 0 < m < epochs})  # no repeats, none past
    if not milestones:  # a run too short to have a step
        return lr
    # The schedule keeps values[0] while step <= boundary; step m * steps is epoch m's first.
    boundaries = [m * steps_per_epoch - 1 for m in milestones]
    values = [lr * 0.1**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(name: str = "sgd", lr=0.01, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> keras.optimizers.Optimizer:
    """SGD with momentum (the papers' choice) or Adam; weight decay skips biases and BN."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")
    if name == "sgd":
        optimizer = keras.optimizers.SGD(lr, momentum=momentum, weight_decay=weight_decay or None)
    else:
        optimizer = keras.optimizers.AdamW(lr, weight_decay=weight_decay or 0.0)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def use_jit() -> bool:
    """XLA on GPUs and always on JAX (which compiles anyway); TensorFlow on a CPU runs plain
    graphs, which start much faster for the short runs CPUs get."""
    from course_lib.config import gpu_name

    return keras.backend.backend() == "jax" or gpu_name() is not None


def fit(model: keras.Model, train, val=None, *, epochs: int, lr: float = 0.01,
        optimizer: str = "sgd", momentum: float = 0.9, weight_decay: float = 5e-4,
        schedule: str = "step", milestones=None, checkpoint: str | None = None,
        callbacks=(), verbose: bool = True) -> dict:
    """Compile and train `model`; return the history (one list per metric, per epoch).

    `train` and `val` are `course_lib.data.Batches` (or any Keras-accepted dataset with a
    length). The history holds loss, accuracy, val_loss, val_accuracy, lr, seconds (per
    epoch) and images_per_second (training only; the first epoch includes compilation).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    steps = len(train)
    num_classes = model.output_shape[-1]
    metrics = ["accuracy"]
    if num_classes > 10:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"))
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate(lr, schedule, epochs, steps,
                                                          milestones), momentum, weight_decay),
        loss="sparse_categorical_crossentropy",
        metrics=metrics,
        jit_compile=use_jit(),
    )
    history: dict[str, list] = {}
    start = 0
    if checkpoint:
        start, history = restore(model, checkpoint)
        if start >= epochs:
            if verbose:
                print(f"already trained for {start} epochs (checkpoint {checkpoint})")
            return history
        if start and verbose:
            print(f"resuming from epoch {start} (checkpoint {checkpoint})")
    images = steps * _batch_size(train)  # what one epoch trains on (no partial batch)
    logger = EpochLogger(epochs, steps, images, history, verbose)
    saver = [Checkpoint(checkpoint, history)] if checkpoint else []
    # The data shuffle themselves, example by example, in an order fixed by the epoch.
    order = [SetEpoch(train)] if hasattr(train, "set_epoch") else []
    model.fit(train, validation_data=val, epochs=epochs, initial_epoch=start, verbose=0,
              shuffle=False, callbacks=[*order, logger, *saver, *callbacks])
    return history


def _batch_size(dataset) -> int:
    return getattr(dataset, "batch_size", None) or 1


class SetEpoch(keras.callbacks.Callback):
    """Tells the training batches which epoch starts, so a resumed run sees the same order."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class EpochLogger(keras.callbacks.Callback):
    """Prints one line per epoch and records time, throughput and learning rate."""

    def __init__(self, epochs: int, steps: int, images: int, history: dict,
                 verbose: bool = True):
        super().__init__()
        self.epochs, self.steps, self.images = epochs, steps, images
        self.history, self.verbose = history, verbose

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_end = None
        # The rate this epoch starts with (a step schedule changes it at epoch boundaries).
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
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
        record["images_per_second"] = self.images / train_seconds
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
    """After every epoch, saves weights, optimizer state and history into `folder`.

    The files are written under temporary names and then renamed, so an interruption while
    saving leaves the previous checkpoint intact.
    """

    def __init__(self, folder: str, history: dict):
        super().__init__()
        self.folder, self.history = folder, history

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.folder, epoch + 1, self.history)


def save(model: keras.Model, folder: str, epoch: int, history: dict) -> None:
    """Write `model`'s weights and optimizer state after `epoch` finished epochs."""
    os.makedirs(folder, exist_ok=True)
    arrays = {f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    for i, variable in enumerate(model.optimizer.variables):
        arrays[f"optimizer_{i}"] = keras.ops.convert_to_numpy(variable)
    state = os.path.join(folder, "state.npz")
    with open(state + ".tmp", "wb") as f:
        np.savez(f, **arrays)
    os.replace(state + ".tmp", state)
    info = os.path.join(folder, "progress.json")
    with open(info + ".tmp", "w") as f:
        json.dump({"epoch": epoch, "model": model.name, "history": history}, f)
    os.replace(info + ".tmp", info)


def restore(model: keras.Model, folder: str) -> tuple[int, dict]:
    """Load a checkpoint written by `save` into a compiled `model`; (0, {}) if none exists."""
    info, state = os.path.join(folder, "progress.json"), os.path.join(folder, "state.npz")
    if not (os.path.exists(info) and os.path.exists(state)):
        return 0, {}
    with open(info) as f:
        progress = json.load(f)
    with np.load(state) as arrays:
        weights = [arrays[f"weight_{i}"] for i in range(len(model.weights))
                   if f"weight_{i}" in arrays]
        expected = [tuple(w.shape) for w in model.weights]
        if [w.shape for w in weights] != expected:
            raise ValueError(
                f"the checkpoint in {folder} was saved from a different model "
                f"({progress.get('model')!r}, {len(weights)} weight arrays) than "
                f"{model.name!r} ({len(expected)}); delete that folder or pass another "
                "checkpoint folder"
            )
        model.set_weights(weights)
        model.optimizer.build(model.trainable_variables)
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(arrays[f"optimizer_{i}"])
    return int(progress["epoch"]), progress["history"]
