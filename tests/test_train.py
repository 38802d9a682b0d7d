import dataclasses
import os
import threading

import keras
import numpy as np
import pytest

from course_lib import config, data, train

BACKEND = keras.backend.backend()
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch")


@pytest.fixture(scope="module")
def fashion():
    return (data.load("fashion_mnist", "train", limit=2_000),
            data.load("fashion_mnist", "test", limit=500))


def tiny_model(seed=1, softmax=True, noise=False, channels=1):
    """Two layers and a dropout (every course model has one) on 28x28 images."""
    config.seed_everything(seed)  # the global generator too, on every Keras version
    x = inputs = keras.Input((28, 28, channels))
    if noise:
        x = GlobalNoise(name="noise")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    outputs = keras.layers.Dense(10, activation="softmax" if softmax else None, name="fc")(x)
    return keras.Model(inputs, outputs, name="tiny")


class GlobalNoise(keras.layers.Layer):
    """Noise drawn from Keras's global random generator (no seed generator of its own)."""

    def call(self, x, training=False):
        return x + keras.random.normal(keras.ops.shape(x), stddev=0.1) if training else x


def run(model, fashion, *, batch=100, lr=0.05, train_split=None, val_split=None, pad=2,
        data_seed=0, device=None, **options):
    """Train on `fashion`; `device` (a dict of DeviceBatches options) augments on the device."""
    train_split = fashion[0] if train_split is None else train_split
    val_split = fashion[1] if val_split is None else val_split
    on_device = {} if device is None else {"device": True, **device}
    evaluation = {k: v for k, v in on_device.items() if k not in ("pca", "flip")}
    return train.fit(model, data.batches(train_split, batch, training=True, pad=pad,
                                         seed=data_seed, **on_device),
                     data.batches(val_split, 250, **evaluation), lr=lr, **options)


def in_colour(split, mean=None, std=None):
    """Fashion-MNIST in three unequal channels, for PCA colour noise."""
    grey = split.images.astype("int32")
    images = np.concatenate([grey, 255 - grey, (grey + 128) // 2], -1).astype(np.uint8)
    pixels = images.reshape(-1, 3).astype("float64")
    mean = pixels.mean(0).astype("float32") if mean is None else mean
    std = pixels.std(0).astype("float32") if std is None else std
    return dataclasses.replace(split, images=images, mean=mean, std=std)


def tf_data(split, batch):
    """The split as a tf.data pipeline of normalised batches (as a student might write)."""
    import tensorflow as tf

    images = ((split.images - split.mean) / split.std).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, split.labels)).batch(batch)


def with_label(split, label):
    labels = split.labels.copy()
    labels[3] = label
    return dataclasses.replace(split, labels=labels)


def assert_same_state(got: keras.Model, want: keras.Model):
    """Every variable equal to the last bit, random generators' states included."""
    assert len(got.variables) == len(want.variables)
    for a, b in zip(got.variables, want.variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


class CountBatches(keras.callbacks.Callback):
    """Counts the training steps taken in each epoch."""

    def __init__(self):
        super().__init__()
        self.per_epoch = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[self.epoch] = self.per_epoch.get(self.epoch, 0) + 1

    @property
    def total(self):
        return sum(self.per_epoch.values())


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt in the middle of the second epoch, as a dropped session would."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 5:
            raise KeyboardInterrupt


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Stops training after one epoch, as EarlyStopping does."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class Explode(keras.callbacks.Callback):
    """Sets an absurd learning rate from the second epoch on: the loss becomes NaN."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.optimizer.learning_rate.assign(1e30)


def one_epoch_checkpoint(fashion, folder, **options):
    """A 3-epoch run interrupted in its second epoch: the checkpoint holds epoch 1."""
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(), fashion, epochs=3, checkpoint=folder, callbacks=[Interrupt()],
            verbose=False, **options)


# --------------------------------------------------------------------------- training


def test_a_short_run_learns_and_reports_one_line_per_epoch(fashion, capsys):
    history = run(tiny_model(), fashion, epochs=3)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3 and lines[-1].startswith("epoch   3/3")
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.5  # chance is 0.1
    assert all(rate > 0 for rate in history["images_per_second"])
    # The default step schedule divides by 10 at 50% and 75% of the run: epochs 2 and 3 here.
    assert history["lr"] == pytest.approx([0.05, 0.005, 0.0005])
    assert history["run"]["backend"] == BACKEND and history["run"]["earlier"] is False


def test_images_per_second_counts_the_images_of_a_tf_data_pipeline(fashion):
    history = train.fit(tiny_model(), tf_data(fashion[0], 100), epochs=1, lr=0.05,
                        verbose=False)
    # Without validation an epoch's seconds are its training time and what the callbacks do
    # after its last step (more on a loaded machine): 2,000 images went through, not 1,000 or
    # 4,000 (nor the 20 steps or the 100 images of a batch).
    images = history["images_per_second"][0] * history["seconds"][0]
    assert 2_000 * 0.999 <= images < 3_000


def test_sgd_decays_weights_as_the_papers_did():
    """Weight decay as an L2 penalty added to the gradient before momentum, Keras's momentum
    rule written out; biases (and batch norm's gamma and beta) not decayed."""
    optimizer = train.make_optimizer("sgd", lr=0.1, momentum=0.9, weight_decay=1e-2)
    kernel = keras.Variable(np.full(3, 2.0, "float32"), name="kernel")
    bias = keras.Variable(np.full(3, 2.0, "float32"), name="bias")
    gradient = np.array([0.5, -1.0, 0.0], "float32")
    w, v, b, u = np.full(3, 2.0), np.zeros(3), np.full(3, 2.0), np.zeros(3)
    for _ in range(5):
        optimizer.apply_gradients([(gradient, kernel), (gradient, bias)])
        v = 0.9 * v - 0.1 * (gradient + 1e-2 * w)
        w = w + v
        u = 0.9 * u - 0.1 * gradient
        b = b + u
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), w, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), b, rtol=1e-6)
    assert not train.decayed(keras.Variable(1.0, name="gamma"))
    # saved with a model and loaded again (clone_model does the same)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, train.SGD) and (again.l2, float(again.momentum)) == (1e-2, 0.9)


def test_an_sgd_checkpoint_from_before_the_papers_decay_is_refused(fashion, tmp_path):
    """Earlier versions decayed SGD's weights Keras's (decoupled) way: resuming such a run
    with the papers' rule would silently change it."""
    folder = str(tmp_path / "run")
    run(tiny_model(), fashion, epochs=1, schedule="constant", checkpoint=folder,
        verbose=False)
    arrays, progress = train.load(folder)
    del progress["settings"]["weight_decay_rule"]  # as the earlier versions saved it
    train.save(folder, arrays, progress)
    with pytest.raises(ValueError, match="weight_decay_rule: None then, 'l2 before momentum"):
        run(tiny_model(), fashion, epochs=2, schedule="constant", checkpoint=folder,
            verbose=False)


def test_the_papers_decay_is_ten_times_keras_own_under_momentum():
    """500 steps with no gradient but the decay: the papers' 1e-4 shrinks a weight as much
    as Keras's decoupled weight_decay=1e-3 (to 2%), about ten times Keras's 1e-4."""
    def shrunk(optimizer):
        weight = keras.Variable(np.ones(1, "float32"), name="kernel")
        for _ in range(500):
            optimizer.apply_gradients([(np.zeros(1, "float32"), weight)])
        return 1 - float(keras.ops.convert_to_numpy(weight)[0])

    papers = shrunk(train.make_optimizer("sgd", 0.1, 0.9, 1e-4))
    assert papers == pytest.approx(shrunk(keras.optimizers.SGD(0.1, 0.9, weight_decay=1e-3)),
                                   rel=0.02)
    assert papers == pytest.approx(10 * shrunk(keras.optimizers.SGD(0.1, 0.9,
                                                                     weight_decay=1e-4)),
                                   rel=0.05)


def test_the_schedules_follow_the_papers():
    step = train.learning_rate(0.1, "step", epochs=4, steps_per_epoch=10)
    assert [float(step(s)) for s in (0, 19, 20, 30)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    cosine = train.learning_rate(0.1, "cosine", epochs=4, steps_per_epoch=10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(40)) == pytest.approx(0.0)
    assert float(cosine(20)) == pytest.approx(0.05)
    assert train.learning_rate(0.1, "constant", 4, 10) == 0.1
    short = train.learning_rate(0.1, "step", epochs=2, steps_per_epoch=10)
    assert [float(short(s)) for s in (9, 10, 19)] == pytest.approx([0.1, 0.01, 0.01])
    with pytest.raises(ValueError, match="schedule"):
        train.learning_rate(0.1, "linear", 4, 10)
    with pytest.raises(ValueError, match="optimizer"):
        train.make_optimizer("rmsprop")
    with pytest.raises(ValueError, match="milestones"):
        train.learning_rate(0.1, "step", epochs=4, steps_per_epoch=10, milestones=[4])


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("noise", [False, pytest.param(True, marks=pytest.mark.skipif(
    BACKEND == "jax", reason="JAX refuses unseeded random ops in a compiled step, so only "
    "TensorFlow trains with Keras's global generator"))])
def test_an_interrupted_run_resumes_exactly(fashion, tmp_path, noise):
    folder = str(tmp_path / "ckpt")
    uninterrupted = tiny_model(noise=noise)
    expected = run(uninterrupted, fashion, epochs=2, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(noise=noise), fashion, epochs=2, checkpoint=folder,
            callbacks=[Interrupt()], verbose=False)
    # Other weights, other dropout seed, a fresh global generator: all from the checkpoint.
    resumed = tiny_model(seed=99, noise=noise)
    history = run(resumed, fashion, epochs=2, checkpoint=folder, verbose=False)
    assert history["epoch"] == [1, 2]
    assert {k: history[k] for k in HISTORY_KEYS} == {k: expected[k] for k in HISTORY_KEYS}
    assert_same_state(resumed, uninterrupted)


@pytest.fixture(scope="module")
def colour_fashion(fashion):
    train_split = in_colour(fashion[0])
    return train_split, in_colour(fashion[1], train_split.mean, train_split.std)


def test_an_interrupted_run_augmented_on_the_device_resumes_exactly(colour_fashion, tmp_path):
    """Resized, cropped, flipped and colour-shifted in the compiled step, from a seed
    generator that the checkpoint keeps: the resumed run ends on the same weights."""
    folder = str(tmp_path / "ckpt")
    device = {"resize": 32, "crop": 28, "pca": True}
    options = dict(pad=0, device=device, verbose=False)
    uninterrupted = tiny_model(channels=3)
    expected = run(uninterrupted, colour_fashion, epochs=2, **options)
    assert expected["val_accuracy"][-1] > 0.5  # chance is 0.1: it learns
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(channels=3), colour_fashion, epochs=2, checkpoint=folder,
            callbacks=[Interrupt()], **options)
    resumed = tiny_model(seed=99, channels=3)
    history = run(resumed, colour_fashion, epochs=2, checkpoint=folder, **options)
    assert {k: history[k] for k in HISTORY_KEYS} == {k: expected[k] for k in HISTORY_KEYS}
    assert_same_state(resumed, uninterrupted)
    # The model itself is trained and compiled: on the host path, from images resized once
    # (to uint8: half a grey level from the device's pixels), it scores as it validated.
    test_split = colour_fashion[1]
    once = dataclasses.replace(test_split, images=data.resize(test_split.images, 32))
    _, accuracy = resumed.evaluate(data.batches(once, 250, crop=28), verbose=0)
    assert accuracy == pytest.approx(history["val_accuracy"][-1], abs=0.01)


def two_headed_model(seed=1):
    """tiny_model with an auxiliary classifier on conv1, as GoogLeNet has two."""
    config.seed_everything(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    aux = keras.layers.Dense(10, activation="softmax", name="aux")(
        keras.layers.GlobalAveragePooling2D()(x))
    x = keras.layers.Dropout(0.3, name="drop")(keras.layers.Flatten()(x))
    main = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inputs, [aux, main], name="two_heads")


def test_a_model_with_auxiliary_heads_trains_on_their_weighted_losses(fashion, tmp_path):
    """loss = 0.3 aux + 1.0 main, accuracy on the main head, each head's loss recorded;
    interrupted and resumed, it ends on the same weights."""
    options = dict(epochs=2, loss_weights=(0.3, 1.0), verbose=False)
    uninterrupted = two_headed_model()
    expected = run(uninterrupted, fashion, **options)
    for got, aux, main in zip(expected["loss"], expected["aux_loss"], expected["fc_loss"],
                              strict=True):
        assert got == pytest.approx(0.3 * aux + main, rel=1e-4)
    assert expected["fc_loss"][-1] < expected["fc_loss"][0]  # it learns
    main_only = keras.Model(uninterrupted.inputs, uninterrupted.outputs[1])
    scores = main_only.predict(data.batches(fashion[1], 250), verbose=0)
    accuracy = float(np.mean(scores.argmax(-1) == fashion[1].labels))
    assert accuracy == pytest.approx(expected["val_accuracy"][-1], abs=1e-6)
    folder = str(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        run(two_headed_model(), fashion, checkpoint=folder, callbacks=[Interrupt()],
            **options)
    resumed = two_headed_model(seed=99)
    history = run(resumed, fashion, checkpoint=folder, **options)
    assert history["loss"] == expected["loss"] and history["aux_loss"] == expected["aux_loss"]
    assert_same_state(resumed, uninterrupted)
    with pytest.raises(ValueError, match="loss_weights"):  # other weights: another run
        run(two_headed_model(), fashion, checkpoint=folder, epochs=2, loss_weights=(0.5, 1.0))
    # the same weights by output name, or as an array, are the same run: it is finished
    for same in ({"fc": 1.0, "aux": 0.3}, np.array([0.3, 1.0])):
        again = run(two_headed_model(), fashion, checkpoint=folder, epochs=2,
                    loss_weights=same, verbose=False)
        assert again["run"]["earlier"] and again["loss"] == expected["loss"]


@pytest.mark.parametrize("model, weights, message", [
    (two_headed_model, None, r"2 outputs \(aux, fc\): give loss_weights"),
    (tiny_model, (0.3, 1.0), "for a model with several outputs"),
    (two_headed_model, (1.0,), "2 numbers >= 0, one per output"),
    (two_headed_model, (0.3, 0.0), "the last above 0"),
    (two_headed_model, (-1, 1), "2 numbers >= 0"),
    (two_headed_model, "0.3, 1", "2 numbers >= 0"),
    (two_headed_model, {"aux": 0.3, "main": 1.0}, r"or a dict by those names"),
    (two_headed_model, (0.3, float("nan")), "2 numbers >= 0"),
])
def test_loss_weights_that_do_not_fit_the_model_are_refused(fashion, model, weights, message):
    with pytest.raises(ValueError, match=message):
        run(model(), fashion, epochs=1, loss_weights=weights)


def test_course_batches_reach_keras_in_their_order_without_tf_data_autotuning(fashion):
    """On TensorFlow fit hands Keras the batches as a tf.data pipeline with autotuning off:
    Keras's own (prefetch(AUTOTUNE)) ran 1 epoch in 4 at half speed on 2 cores. Same
    batches, same order, same length; elsewhere the batches themselves."""
    batches = data.batches(fashion[0].take(300), 64, training=True, pad=2)
    batches.set_epoch(3)
    fed = train.steady(batches)
    if BACKEND != "tensorflow":
        assert fed is batches
        return
    assert fed.options().autotune.enabled is False and len(fed) == len(batches) == 4
    for (images, labels), index in zip(fed, range(len(batches)), strict=True):
        want_images, want_labels = batches[index]
        np.testing.assert_array_equal(images.numpy(), want_images)
        np.testing.assert_array_equal(labels.numpy(), want_labels)
    assert train.steady(None) is None


def test_device_and_host_batches_do_not_mix(fashion):
    train_split, test_split = fashion
    counter = CountBatches()
    with pytest.raises(ValueError, match="both be data.batches"):
        train.fit(tiny_model(), data.batches(train_split, 100, training=True, device=True),
                  data.batches(test_split, 250), epochs=1, callbacks=[counter])
    with pytest.raises(ValueError, match="same crop and resize"):
        train.fit(tiny_model(), data.batches(train_split, 100, training=True, device=True),
                  data.batches(test_split, 250, device=True, crop=24), epochs=1,
                  callbacks=[counter])
    with pytest.raises(ValueError, match=r"model takes \(28, 28, 1\).*\(24, 24, 1\)"):
        train.fit(tiny_model(), data.batches(train_split, 100, training=True, device=True,
                                             crop=24), epochs=1, callbacks=[counter])
    assert counter.total == 0


def test_the_global_random_generator_is_found():
    # The course's one private Keras read (config): this fails loudly if Keras moves it.
    keras.random.normal((1,))
    generator = config.global_seed_generator()
    assert isinstance(generator, keras.random.SeedGenerator), \
        "Keras moved its global SeedGenerator: update course_lib.config.global_seed_generator"
    before = keras.ops.convert_to_numpy(generator.state)
    keras.random.normal((1,))
    assert (keras.ops.convert_to_numpy(generator.state) != before).any()
    config.seed_everything(0)  # reseeding drops it, on every Keras version
    assert config.global_seed_generator() is None


def test_a_finished_run_is_returned_with_where_it_came_from(fashion, tmp_path, capsys):
    folder = str(tmp_path / "ckpt")
    trained = tiny_model()
    first = run(trained, fashion, epochs=2, checkpoint=folder, verbose=False)
    counter = CountBatches()
    again = tiny_model(seed=7)
    history = run(again, fashion, epochs=2, checkpoint=folder, callbacks=[counter])
    assert counter.total == 0
    assert {k: history[k] for k in HISTORY_KEYS} == {k: first[k] for k in HISTORY_KEYS}
    assert_same_state(again, trained)
    record = history["run"]
    assert record["earlier"] is True and record["backend"] == BACKEND
    assert record["device"] == "cpu" and record["date"][:2] == "20"
    assert record["seconds"] == pytest.approx(sum(first["seconds"]))
    out = capsys.readouterr().out
    assert f"earlier run on {BACKEND}/cpu at {record['date']}" in out


def test_a_run_stopped_by_a_callback_counts_as_finished(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    first = run(tiny_model(), fashion, epochs=3, checkpoint=folder,
                callbacks=[StopAfterFirstEpoch()], verbose=False)
    assert first["epoch"] == [1]
    counter = CountBatches()
    again = run(tiny_model(seed=3), fashion, epochs=3, checkpoint=folder, callbacks=[counter],
                verbose=False)
    assert counter.total == 0 and again["epoch"] == [1]


@pytest.fixture(scope="module")
def step_checkpoint(fashion, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("step") / "ckpt")
    one_epoch_checkpoint(fashion, folder)
    return folder


@pytest.mark.parametrize("change, key", [
    (dict(lr=0.1), "lr"),
    (dict(batch=50), "batch_size"),
    (dict(optimizer="adam"), "optimizer"),
    (dict(momentum=0.5), "momentum"),
    (dict(weight_decay=0.0), "weight_decay"),
    (dict(schedule="cosine"), "schedule"),
    (dict(milestones=[1]), "milestones"),
    (dict(epochs=4), "epochs"),
    (dict(train_size=1_000), "examples"),
    (dict(val_size=250), "validation_batches"),
    (dict(pad=0), "data"),  # the augmentation
    (dict(data_seed=1), "data"),  # the shuffle
    (dict(other_examples=True), "data"),  # as many examples, other ones
    (dict(device={}), "data"),  # the same augmentation, on the device
])
def test_resuming_with_other_settings_is_refused(fashion, step_checkpoint, change, key):
    change = dict(change)
    options = {"epochs": change.pop("epochs", 3)}
    if "train_size" in change:
        options["train_split"] = fashion[0].take(change.pop("train_size"))
    if "val_size" in change:
        options["val_split"] = fashion[1].take(change.pop("val_size"))
    if change.pop("other_examples", False):
        options["train_split"] = data.load("fashion_mnist", "train", limit=2_000, seed=1)
    counter = CountBatches()
    with pytest.raises(ValueError, match=key) as refused:
        run(tiny_model(), fashion, checkpoint=step_checkpoint, callbacks=[counter],
            verbose=False, **options, **change)
    message = str(refused.value)
    assert step_checkpoint in message and "another checkpoint folder" in message
    assert counter.total == 0
    if key == "epochs":
        assert "constant" in message  # says which schedule could be extended


def test_a_constant_rate_run_can_be_extended_but_not_shortened(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    straight = tiny_model()
    expected = run(straight, fashion, epochs=2, schedule="constant", verbose=False)
    run(tiny_model(), fashion, epochs=1, schedule="constant", checkpoint=folder, verbose=False)
    extended = tiny_model(seed=5)
    history = run(extended, fashion, epochs=2, schedule="constant", checkpoint=folder,
                  verbose=False)
    assert {k: history[k] for k in HISTORY_KEYS} == {k: expected[k] for k in HISTORY_KEYS}
    assert_same_state(extended, straight)
    with pytest.raises(ValueError, match="already holds 2 epochs"):
        run(tiny_model(), fashion, epochs=1, schedule="constant", checkpoint=folder,
            verbose=False)


def test_a_checkpoint_from_another_model_is_refused(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    run(tiny_model(), fashion, epochs=1, checkpoint=folder, verbose=False)
    inputs = keras.Input((28, 28, 1))
    other = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(inputs)), name="other")
    with pytest.raises(ValueError, match="different model"):
        run(other, fashion, epochs=1, checkpoint=folder, verbose=False)


# --------------------------------------------------------------------------- the file


def test_the_checkpoint_is_one_file_replaced_atomically(fashion, tmp_path, monkeypatch):
    folder = str(tmp_path / "ckpt")
    one_epoch_checkpoint(fashion, folder, schedule="constant")
    assert os.listdir(folder) == ["checkpoint.npz"]
    path = os.path.join(folder, "checkpoint.npz")
    with open(path, "rb") as f:
        before = f.read()

    def killed(*args):
        raise KeyboardInterrupt  # the process dies while putting the new file in place

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(), fashion, epochs=3, schedule="constant", checkpoint=folder,
            verbose=False)
    monkeypatch.undo()
    assert os.listdir(folder) == ["checkpoint.npz"]
    with open(path, "rb") as f:
        assert f.read() == before
    assert train.load(folder)[1]["epoch"] == 1


def test_a_checkpoint_path_that_is_a_file_fails_before_training(fashion, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    counter = CountBatches()
    with pytest.raises(ValueError, match="is a file"):
        run(tiny_model(), fashion, epochs=1, checkpoint=str(path), callbacks=[counter],
            verbose=False)
    assert counter.total == 0 and path.read_text() == "mine"


def test_concurrent_writers_never_leave_a_broken_checkpoint(tmp_path):
    folder = str(tmp_path / "ckpt")
    os.makedirs(folder)
    arrays = {"variable_0": np.arange(200_000, dtype="float32")}
    done, problems = threading.Event(), []

    def write(worker):
        for epoch in range(25):
            try:
                train.save(folder, arrays, {"epoch": epoch, "worker": worker})
            except Exception as error:  # noqa: BLE001 - any failure is what we look for
                problems.append(error)

    def read():
        while not done.is_set():
            try:
                found = train.load(folder)
                if found is not None:
                    np.testing.assert_array_equal(found[0]["variable_0"], arrays["variable_0"])
            except Exception as error:  # noqa: BLE001
                problems.append(error)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    reader = threading.Thread(target=read)
    for thread in (*writers, reader):
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert problems == []
    assert os.listdir(folder) == ["checkpoint.npz"]
    assert train.load(folder)[1]["epoch"] == 24


@pytest.mark.parametrize("damage", ["truncated", "not a checkpoint"])
def test_a_damaged_checkpoint_is_reported_and_left_alone(fashion, tmp_path, damage):
    folder = str(tmp_path / "ckpt")
    os.makedirs(folder)
    train.save(folder, {"variable_0": np.zeros(10_000, "float32")}, {"epoch": 1})
    path = os.path.join(folder, "checkpoint.npz")
    with open(path, "rb") as f:
        whole = f.read()
    damaged = whole[: len(whole) // 2] if damage == "truncated" else b"my notes"
    with open(path, "wb") as f:
        f.write(damaged)
    with pytest.raises(ValueError, match="damaged") as refused:
        run(tiny_model(), fashion, epochs=1, checkpoint=folder, verbose=False)
    assert path in str(refused.value) and "delete" in str(refused.value)
    with open(path, "rb") as f:
        assert f.read() == damaged


def test_a_checkpoint_of_the_earlier_format_is_refused(fashion, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "progress.json").write_text('{"epoch": 1, "model": "tiny", "history": {}}')
    np.savez(folder / "state.npz", weight_0=np.zeros(3))
    with pytest.raises(ValueError, match="earlier version"):
        run(tiny_model(), fashion, epochs=1, checkpoint=str(folder), verbose=False)
    assert sorted(os.listdir(folder)) == ["progress.json", "state.npz"]


# --------------------------------------------------------------------------- failures


def test_a_diverging_run_stops_with_advice_and_keeps_the_finite_checkpoint(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    counter = CountBatches()
    with pytest.raises(FloatingPointError, match="epoch 2") as diverged:
        run(tiny_model(), fashion, epochs=3, schedule="constant", checkpoint=folder,
            callbacks=[Explode(), counter], verbose=False)
    message = str(diverged.value)
    assert "learning rate" in message and "lower" in message and "normalis" in message
    assert counter.per_epoch[1] < 20  # stopped within the epoch, not at its end
    arrays, progress = train.load(folder)
    assert progress["epoch"] == 1
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")


@pytest.mark.parametrize("where, label", [("train", 10), ("train", -1), ("val", 10),
                                          ("tf.data", 10)])
def test_labels_outside_the_model_outputs_are_refused(fashion, where, label):
    train_split, test_split = fashion
    counter = CountBatches()
    with pytest.raises(ValueError, match=f"label.*{label}.*10 outputs"):
        if where == "tf.data":
            train.fit(tiny_model(), tf_data(with_label(train_split, label), 100), epochs=1,
                      callbacks=[counter], verbose=False)
        elif where == "train":
            run(tiny_model(), fashion, train_split=with_label(train_split, label), epochs=1,
                callbacks=[counter], verbose=False)
        else:
            run(tiny_model(), fashion, val_split=with_label(test_split, label), epochs=1,
                callbacks=[counter], verbose=False)
    assert counter.total == 0


@pytest.mark.parametrize("labels, problem", [
    (np.eye(10)[[1, 2, 3]], "one-hot"), (np.array([1.0, np.nan]), "whole class numbers"),
    (np.array([0.5, 1.0]), "whole class numbers"),
])
def test_labels_that_are_not_class_numbers_are_refused(labels, problem):
    with pytest.raises(ValueError, match=problem):
        train.check_labels(labels, 10, "training")


def test_a_model_without_softmax_is_refused(fashion):
    with pytest.raises(ValueError, match="softmax"):
        run(tiny_model(softmax=False), fashion, epochs=1, verbose=False)


@pytest.mark.parametrize("options, name", [
    (dict(lr=0), "lr"), (dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(lr=float("inf")), "lr"), (dict(lr="0.1"), "lr"),
    (dict(epochs=0), "epochs"), (dict(epochs=2.5), "epochs"), (dict(epochs="3"), "epochs"),
    (dict(epochs=True), "epochs"),
    (dict(epochs=4, milestones=[4]), "milestones"), (dict(epochs=4, milestones=[0]), "milestones"),
    (dict(epochs=4, schedule="cosine", milestones=[2]), "milestones"),
    (dict(momentum=1.0), "momentum"), (dict(weight_decay=-1e-4), "weight_decay"),
])
def test_bad_settings_are_refused(fashion, options, name):
    options = {"epochs": 2, **options}
    with pytest.raises(ValueError, match=name):
        run(tiny_model(), fashion, verbose=False, **options)


def test_data_fit_cannot_use_is_refused_before_training(fashion):
    train_split, test_split = fashion
    model, counter = tiny_model(), CountBatches()
    with pytest.raises(TypeError, match="data.batches"):
        train.fit(model, (train_split.images, train_split.labels), epochs=1)
    empty = dataclasses.replace(train_split, images=train_split.images[:0],
                                labels=train_split.labels[:0])
    with pytest.raises(ValueError, match="no batches"):
        train.fit(model, data.batches(empty, 100), epochs=1)
    larger = dataclasses.replace(
        test_split, images=np.pad(test_split.images, ((0, 0), (2, 2), (2, 2), (0, 0))))
    with pytest.raises(ValueError, match=r"validation.*\(32, 32, 1\).*\(28, 28, 1\)"):
        run(model, fashion, val_split=larger, epochs=1, callbacks=[counter], verbose=False)
    assert counter.total == 0


# --------------------------------------------------------------------------- TimeBudget


def test_time_budget_stops_training_and_counts_as_finished(fashion, tmp_path):
    budget = train.TimeBudget(1e-9)  # spent as soon as the clock starts
    history = run(tiny_model(), fashion, epochs=50, schedule="constant",
                  callbacks=[budget], checkpoint=str(tmp_path / "run"), verbose=False)
    assert history["epoch"] == [1] and budget.steps == 2  # the first step, then one more
    assert history["images"] == [200]  # 2 of the epoch's 20 steps of 100: the rate's count
    assert len(budget.seconds) == 1 and budget.seconds[0] > 0
    again = run(tiny_model(), fashion, epochs=50, schedule="constant",
                callbacks=[train.TimeBudget(1e-9)], checkpoint=str(tmp_path / "run"),
                verbose=False)
    assert again["run"]["earlier"] and again["epoch"] == [1]


def test_time_budget_lets_a_short_run_finish(fashion):
    budget = train.TimeBudget(3600)
    history = run(tiny_model(), fashion, epochs=2, callbacks=[budget], verbose=False,
                  train_split=fashion[0].take(400), val_split=fashion[1].take(100))
    assert history["epoch"] == [1, 2] and budget.steps == 2 * 4
    assert history["images"] == [400, 400]
    assert len(budget.seconds) == 2 and budget.seconds[0] <= budget.seconds[1]


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan"), "60", None])
def test_time_budget_refuses_impossible_budgets(seconds):
    with pytest.raises(ValueError, match="seconds"):
        train.TimeBudget(seconds)


# --------------------------------------------------------------------------- found by a review


class InterruptFirstEpoch(keras.callbacks.Callback):
    """Raises KeyboardInterrupt in the first epoch, before any epoch has been saved."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            raise KeyboardInterrupt


def test_a_run_stopped_in_its_first_epoch_starts_again_from_its_first_weights(fashion,
                                                                              tmp_path):
    """The cell is run again with the same (now partly trained) model: the checkpoint of
    the run's start puts back its first weights, as an uninterrupted run had them."""
    folder = str(tmp_path / "ckpt")
    uninterrupted = tiny_model()
    expected = run(uninterrupted, fashion, epochs=2, verbose=False)
    model = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        run(model, fashion, epochs=2, checkpoint=folder, callbacks=InterruptFirstEpoch(),
            verbose=False)  # one callback, not in a list, is fine
    assert train.load(folder)[1]["epoch"] == 0
    history = run(model, fashion, epochs=2, checkpoint=folder, verbose=False)
    assert {k: history[k] for k in HISTORY_KEYS} == {k: expected[k] for k in HISTORY_KEYS}
    assert_same_state(model, uninterrupted)
    # A start that trained nothing does not hold a new run to its settings.
    other = str(tmp_path / "other")
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(), fashion, epochs=2, checkpoint=other, callbacks=[InterruptFirstEpoch()],
            verbose=False)
    assert run(tiny_model(), fashion, epochs=1, lr=0.1, checkpoint=other,
               verbose=False)["epoch"] == [1]


def test_a_second_fit_on_the_same_device_batches_draws_the_same_crops(colour_fashion):
    """Running the cell again (a new model, the same batches) must repeat the run."""
    train_split, val_split = colour_fashion
    batches = data.batches(train_split, 100, training=True, device=True, crop=24, pad=2)
    val = data.batches(val_split, 250, device=True, crop=24)
    models = []
    for _ in range(2):
        models.append(keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Flatten(),
                                        keras.layers.Dense(10, activation="softmax")]))
        config.seed_everything(1)
        models[-1].set_weights([np.full(w.shape, 0.01, w.dtype)
                                for w in models[0].get_weights()])
        train.fit(models[-1], batches, val, epochs=1, lr=0.01, verbose=False)
    np.testing.assert_array_equal(models[0].get_weights()[0], models[1].get_weights()[0])


def tanh_model(seed=1):
    """tiny_model's name and shapes, another network."""
    config.seed_everything(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="tanh", name="conv1")(inputs)
    x = keras.layers.Dropout(0.3, name="drop")(keras.layers.Flatten()(x))
    outputs = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_a_checkpoint_is_not_reused_for_another_network_precision_or_validation_set(
        fashion, step_checkpoint):
    with pytest.raises(ValueError, match="architecture"):
        run(tanh_model(), fashion, epochs=3, checkpoint=step_checkpoint, verbose=False)
    others = data.load("fashion_mnist", "test", limit=500, seed=1)  # as many, other ones
    with pytest.raises(ValueError, match="validation_data"):
        run(tiny_model(), fashion, epochs=3, checkpoint=step_checkpoint, val_split=others,
            verbose=False)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        with pytest.raises(ValueError, match="precision: 'float32' then, 'mixed_bfloat16'"):
            run(tiny_model(), fashion, epochs=3, checkpoint=step_checkpoint, verbose=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def noise(images, rng, sigma=0.1):
    return images + sigma * rng.standard_normal(images.shape).astype("float32")


def test_numpy_augmentations_are_recorded_by_their_code_not_their_address():
    import functools

    first, second = functools.partial(noise, sigma=0.1), functools.partial(noise, sigma=0.1)
    assert train.describe(first) == train.describe(second)  # another object, the same
    assert "0x" not in train.describe(first) and "sigma" in train.describe(first)
    assert train.describe(functools.partial(noise, sigma=0.2)) != train.describe(first)
    assert train.describe(lambda x, rng: x + 1) != train.describe(lambda x, rng: x * 2)


def test_a_model_with_the_augmentation_in_front_is_refused_where_it_would_mislead(fashion):
    from course_lib import augment

    batches = data.batches(fashion[0], 100, training=True, device=True, pad=2)
    val = data.batches(fashion[1], 250, device=True)
    front = augment.in_front(batches.layer, tiny_model(), fashion[0].image_shape)
    with pytest.raises(ValueError, match="already has an augmentation layer in front"):
        train.fit(front, batches, val, epochs=1, verbose=False)  # it would augment twice
    with pytest.raises(ValueError, match="takes uint8 images.*training images are float32"):
        train.fit(front, data.batches(fashion[0], 100, training=True),
                  data.batches(fashion[1], 250), epochs=1, verbose=False)


def test_milestones_and_checkpoint_folders_that_cannot_be(fashion, tmp_path):
    for milestones in (2, np.array([1, 2])):
        with pytest.raises(ValueError, match="milestones"):
            run(tiny_model(), fashion, epochs=3, milestones=milestones,
                schedule="step" if isinstance(milestones, int) else "cosine", verbose=False)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="names no folder"):
        run(tiny_model(), fashion, epochs=1, checkpoint="", verbose=False)  # trained unsaved
    with pytest.raises(ValueError, match="cannot make the checkpoint folder"):
        run(tiny_model(), fashion, epochs=1, checkpoint=str(tmp_path / "file" / "ckpt"),
            verbose=False)


def test_a_checkpoint_of_the_last_version_still_resumes_exactly(fashion, tmp_path, capsys):
    """Checkpoints made before fit recorded the architecture, the validation data and the
    precision (they lack those settings) resume, saying so, and exactly."""
    folder = str(tmp_path / "ckpt")
    uninterrupted = tiny_model()
    expected = run(uninterrupted, fashion, epochs=2, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(), fashion, epochs=2, checkpoint=folder, callbacks=[Interrupt()],
            verbose=False)
    arrays, progress = train.load(folder)
    for key in train.LATER_SETTINGS:
        del progress["settings"][key]
    train.save(folder, arrays, progress)
    resumed = tiny_model(seed=99)
    history = run(resumed, fashion, epochs=2, checkpoint=folder, verbose=False)
    assert "earlier version of course_lib, which did not record" in capsys.readouterr().out
    assert {k: history[k] for k in HISTORY_KEYS} == {k: expected[k] for k in HISTORY_KEYS}
    assert_same_state(resumed, uninterrupted)
    assert set(train.LATER_SETTINGS) <= set(train.load(folder)[1]["settings"])  # recorded now
