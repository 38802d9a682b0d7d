"""Run by test_imagenet_train.py in a fresh process with 4 simulated devices: trains a
course network on tensorflow-datasets' mock ImageNet (random images of random sizes, no
files) through `python -m course_lib.imagenet_train`, twice: the second run finds the first
one's checkpoint finished and returns it. Then the same run again, interrupted after its
first epoch and resumed: it must end where the uninterrupted one did."""

import json
import sys

import keras

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)

import tensorflow_datasets as tfds  # noqa: E402

from course_lib import imagenet_train, train  # noqa: E402

folder = sys.argv[1]
# 18 validation images: the last batch of 2 cannot be split between 4 devices, so the
# program keeps 16
argv = ["--model", "resnet20", "--image-size", "32", "--epochs", "2", "--batch", "8",
        "--limit", "32", "--val-limit", "18", "--checkpoint", f"{folder}/run"]


class Interrupt(keras.callbacks.Callback):
    """Stops a run as the second epoch begins, as a killed process would."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def interrupted_fit(*args, **options):
    return fit(*args, **options, callbacks=[Interrupt()])


fit = train.fit
epochs_set = []  # what train.fit tells the training pipeline, run after run
make_pipeline = imagenet_train.pipeline


def recording_pipeline(*args, **options):
    made = make_pipeline(*args, **options)
    if options.get("training"):
        set_epoch = made.set_epoch
        made.set_epoch = lambda epoch: (epochs_set.append(int(epoch)), set_epoch(epoch))[1]
    return made


imagenet_train.pipeline = recording_pipeline
with tfds.testing.mock_data(num_examples=40):
    first = imagenet_train.main(argv)
    again = imagenet_train.main(argv)
    # the same run, stopped after its first epoch, then resumed
    elsewhere = [*argv[:-1], f"{folder}/interrupted"]
    train.fit = interrupted_fit
    try:
        imagenet_train.main(elsewhere)
    except KeyboardInterrupt:
        pass
    train.fit = fit
    resumed = imagenet_train.main(elsewhere)
    try:
        imagenet_train.main([*argv[:7], "6", *argv[8:]])  # batches of 6 on 4 devices
        uneven = None
    except SystemExit as stopped:
        uneven = stopped.code
    try:  # 3 validation images: none left that 4 devices can share
        imagenet_train.main([*argv[:11], "3", *argv[12:]])
        few = None
    except SystemExit as stopped:
        few = stopped.code
print("RESULTS " + json.dumps({
    "loss": first["loss"], "val_accuracy": first["val_accuracy"],
    "devices": first["run"]["devices"], "earlier": again["run"]["earlier"],
    "again_loss": again["loss"], "images": first["images"], "uneven": uneven,
    "resumed_loss": resumed["loss"], "resumed_val": resumed["val_accuracy"],
    "epochs_set": epochs_set, "few": few,
    "devices_seen": train.device_count(train.data_parallel())}))
