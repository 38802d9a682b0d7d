import json

import keras
import numpy as np
import pytest

from course_lib import data, train


@pytest.fixture(scope="module")
def fashion():
    return (data.load("fashion_mnist", "train", limit=2_000),
            data.load("fashion_mnist", "test", limit=500))


def tiny_model(seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="tiny")


def run(model, fashion, **options):
    train_split, test_split = fashion
    return train.fit(model, data.batches(train_split, 100, training=True, pad=2),
                     data.batches(test_split, 250), lr=0.05, **options)


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


class Interrupt(keras.callbacks.Callback):
    """Stops training after the first epoch, as a dropped session would."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_an_interrupted_run_resumes_where_it_stopped(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    uninterrupted = tiny_model()
    expected = run(uninterrupted, fashion, epochs=3, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model(), fashion, epochs=3, checkpoint=folder, callbacks=[Interrupt()],
            verbose=False)
    with open(tmp_path / "ckpt" / "progress.json") as f:
        assert json.load(f)["epoch"] == 1
    resumed = tiny_model(seed=99)  # fresh weights: everything must come from the checkpoint
    history = run(resumed, fashion, epochs=3, checkpoint=folder, verbose=False)
    assert history["epoch"] == [1, 2, 3]
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    for got, want in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # A finished run is not repeated.
    again = tiny_model(seed=7)
    assert run(again, fashion, epochs=3, checkpoint=folder, verbose=False) == history
    for got, want in zip(again.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_checkpoint_from_another_model_is_refused(fashion, tmp_path):
    folder = str(tmp_path / "ckpt")
    run(tiny_model(), fashion, epochs=1, checkpoint=folder, verbose=False)
    inputs = keras.Input((28, 28, 1))
    other = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(inputs)), name="other")
    with pytest.raises(ValueError, match="different model"):
        run(other, fashion, epochs=2, checkpoint=folder, verbose=False)


def test_schedules_follow_the_papers():
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
