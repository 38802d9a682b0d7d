"""Run by test_distribution.py in a fresh process with 4 simulated devices (JAX:
XLA_FLAGS=--xla_force_host_platform_device_count=4; TensorFlow: 4 logical CPUs set here):
trains one small network on one device and on four, and prints what the test compares."""

import json
import sys

import keras
import numpy as np

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)

from course_lib import data, train  # noqa: E402

folder = sys.argv[1]
rng = np.random.default_rng(0)
split = data.Split("toy", "train", rng.integers(0, 256, (48, 16, 16, 3), np.uint8),
                   np.arange(48, dtype="int32") % 4, tuple("abcd"),
                   np.array([120.0] * 3, "float32"), np.array([60.0] * 3, "float32"), "test")
# JAX splits each compiled step between the devices, augmentation included; TensorFlow runs
# one step per device, each drawing its own crops: there the batches come from the host.
device = keras.backend.backend() == "jax"
options = dict(device=True, crop=16, pad=2) if device else {}


def network(heads=False):
    """A small network; with `heads`, an auxiliary classifier too (GoogLeNet's kind)."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="fc")(x)
    if heads:
        aux = keras.layers.Dense(4, activation="softmax", name="aux")(
            keras.layers.Flatten()(keras.layers.MaxPooling2D(7, name="aux_pool")(inputs)))
        outputs = [aux, outputs]
    return keras.Model(inputs, outputs, name="tiny")


def run(distribution, epochs=2, checkpoint=None, batch=16, heads=False):
    model = network(heads)
    history = train.fit(model, data.batches(split, batch, training=True, **options),
                        data.batches(split.take(40), batch, **options), epochs=epochs,
                        lr=0.05, weight_decay=1e-4, schedule="constant", checkpoint=checkpoint,
                        distribution=distribution, verbose=False,
                        loss_weights=(0.3, 1.0) if heads else None)
    return {"loss": history["loss"], "val_loss": history["val_loss"],
            "devices": history["run"]["devices"],
            "weights": [w.tolist() for w in model.get_weights()]}


import time  # noqa: E402

clock = time.perf_counter()
results = {"one": run(None)}
clock = print(f"one device: {time.perf_counter() - clock:.1f} s") or time.perf_counter()
results["four"] = run("data_parallel")
clock = print(f"four devices: {time.perf_counter() - clock:.1f} s") or time.perf_counter()
run(None, epochs=1, checkpoint=f"{folder}/resumed")  # one epoch on one device, then
results["resumed"] = run("data_parallel", checkpoint=f"{folder}/resumed")  # the rest on four
print(f"resumed: {time.perf_counter() - clock:.1f} s")
results["heads_one"] = run(None, heads=True)  # auxiliary heads: the same on four devices
results["heads_four"] = run("data_parallel", heads=True)
try:
    run("data_parallel", batch=18)
    results["uneven"] = None
except ValueError as error:
    results["uneven"] = str(error)
print("RESULTS " + json.dumps(results))
