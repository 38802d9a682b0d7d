"""Data-parallel training (`train.fit(..., distribution=...)`) on 4 simulated CPU devices."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from course_lib import train

BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4")
    script = os.path.join(os.path.dirname(__file__), "distributed_run.py")
    done = subprocess.run([sys.executable, script, str(tmp_path_factory.mktemp("dp"))],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")][-1]
    return json.loads(line.removeprefix("RESULTS "))


def test_four_devices_train_as_one_does_for_the_same_global_batch(results):
    one, four = results["one"], results["four"]
    assert (one["devices"], four["devices"]) == (1, 4)
    assert four["loss"][1] < four["loss"][0]  # it learns
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-4)
    np.testing.assert_allclose(four["val_loss"], one["val_loss"], rtol=1e-4)
    # and the model passed in holds the weights trained on the devices
    for mine, single in zip(four["weights"], one["weights"], strict=True):
        np.testing.assert_allclose(mine, single, rtol=1e-3, atol=1e-5)


def test_a_run_checkpointed_on_one_device_resumes_on_four(results):
    np.testing.assert_allclose(results["resumed"]["loss"], results["one"]["loss"], rtol=1e-4)
    for mine, single in zip(results["resumed"]["weights"], results["one"]["weights"],
                            strict=True):
        np.testing.assert_allclose(mine, single, rtol=1e-3, atol=1e-5)


def test_a_model_with_auxiliary_heads_trains_on_four_devices_as_on_one(results):
    """Also a second network of another size in the same process: on TensorFlow, a new
    MirroredStrategy for it failed in the all-reduce of its gradients (shapes [312] vs
    [260]), so data_parallel() reuses one."""
    one, four = results["heads_one"], results["heads_four"]
    assert four["devices"] == 4
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-4)
    for mine, single in zip(four["weights"], one["weights"], strict=True):
        np.testing.assert_allclose(mine, single, rtol=1e-3, atol=1e-5)


def test_batches_the_devices_cannot_share_are_refused(results):
    assert "18 images, which 4 devices cannot share evenly" in results["uneven"]


@pytest.mark.parametrize("wrong", ["mirrored", 4, object()])
def test_a_distribution_of_another_kind_is_refused(wrong):
    with pytest.raises(ValueError, match="distribution must be None, 'data_parallel'"):
        train.distribution_of(wrong)


def test_data_parallel_uses_every_device_of_this_process():
    found = train.data_parallel()
    assert train.device_count(found) >= 1
    assert train.distribution_of(found) is found
    if keras.backend.backend() == "tensorflow":  # one MirroredStrategy, reused (see below)
        assert train.data_parallel() is found


class Doubler(keras.Model):  # subclassed: keras.models.clone_model cannot copy it
    def __init__(self):
        super().__init__(name="doubler")
        self.dense = keras.layers.Dense(2, activation="softmax")

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 4)) * 2)


def test_a_model_that_cannot_be_copied_is_refused_saying_why():
    model = Doubler()
    model(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="functional or Sequential"):
        train.replicate(model, train.data_parallel())
