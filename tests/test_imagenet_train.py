"""course_lib.imagenet_train: the recipes, and a run end to end on tensorflow-datasets' mock
ImageNet on 4 simulated devices."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from course_lib import imagenet_train


def test_each_family_trains_with_its_papers_recipe():
    assert imagenet_train.recipe("resnet50") == ("resnet", imagenet_train.RECIPES["resnet"])
    assert imagenet_train.recipe("vgg16")[1]["epochs"] == 74  # 370K iterations of 256
    family, fallback = imagenet_train.recipe("googlenet")
    assert family == "googlenet" and fallback == imagenet_train.RECIPES["alexnet"]
    assert imagenet_train.milestones(90, 3) == [22, 45, 68]
    assert imagenet_train.milestones(120, 2) == [40, 80]
    assert imagenet_train.milestones(1, 3) == []


@pytest.mark.parametrize("argv, said", [
    (["--model", "resnet21"], "unknown model 'resnet21'"),
    (["--model", "resnet50", "--batch", "0"], "--batch must be at least 1"),
    (["--model", "alexnet", "--image-size", "16"], "at least 67 x 67 px"),
    (["--model", "alexnet", "--lr", "-0.01"], "--lr must be a positive number, not -0.01"),
    (["--model", "alexnet", "--lr", "nan"], "--lr must be a positive number, not nan"),
    (["--model", "alexnet", "--weight-decay", "inf"], "--weight-decay must be a number of at "
                                                      "least 0, not inf"),
])
def test_bad_arguments_are_refused_saying_why(argv, said, capsys):
    with pytest.raises(SystemExit) as stopped:
        imagenet_train.main(argv)
    assert stopped.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the end-to-end run is checked in "
                    "the JAX run; TensorFlow's data-parallel path in test_distribution.py")
def test_a_run_on_mock_imagenet_on_four_devices_learns_nothing_silly_and_resumes(tmp_path):
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), COURSE_PROFILE="smoke",
               COURSE_CACHE=str(tmp_path / "cache"))
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    script = os.path.join(os.path.dirname(__file__), "imagenet_run.py")
    done = subprocess.run([sys.executable, script, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULTS ")][-1]
    results = json.loads(line.removeprefix("RESULTS "))
    assert results["devices"] == results["devices_seen"] == 4
    assert results["images"] == [32, 32] and np.isfinite(results["loss"]).all()
    assert all(0 <= accuracy <= 1 for accuracy in results["val_accuracy"])
    # the second run finds the first one's checkpoint finished and returns its history
    assert results["earlier"] and results["again_loss"] == results["loss"]
    # interrupted after epoch 1 and resumed: the same batches, so the same losses. fit
    # names the epoch before Keras reads a batch and as each epoch begins; the finished
    # run's rerun trains nothing, and the resumed run starts at epoch 1.
    assert results["epochs_set"] == [0, 0, 1] + [0, 0, 1] + [1, 1]
    assert results["resumed_loss"] == results["loss"]
    assert results["resumed_val"] == results["val_accuracy"]
    assert "top-1 error on the validation images" in done.stdout
    # batches the 4 devices cannot share are refused before training
    assert results["uneven"] == 2 and "--batch 6 cannot be shared by the 4 devices" in done.stderr
    assert results["few"] == 2 and "--val-limit 3 leaves no validation images that the 4 " \
        "devices can share: pass at least 4" in done.stderr


def test_too_few_images_for_a_batch_are_refused_saying_why(capsys):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=10), pytest.raises(SystemExit) as stopped:
        imagenet_train.main(["--model", "resnet20", "--image-size", "32", "--batch", "8",
                             "--limit", "3", "--devices", "one"])
    assert stopped.value.code == 2
    assert "3 train images make no batch of 8: lower --batch" in capsys.readouterr().err


def test_the_pipeline_crops_every_image_to_the_input_size_and_normalises_it():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):  # random images of random sizes
        train = imagenet_train.pipeline("train", image_size=40, batch=2, training=True,
                                        scale=(32, 36), limit=4)  # a crop above the scale
        val = imagenet_train.pipeline("validation", image_size=40, batch=4, training=False,
                                      limit=6)
        batches = [(x.numpy(), y.numpy()) for x, y in train]
        checked = [x.numpy() for x, _ in val]
    assert len(train) == len(batches) == 2 and len(val) == len(checked) == 2
    assert {x.shape for x, _ in batches} == {(2, 40, 40, 3)}
    assert [x.shape[0] for x in checked] == [4, 2]  # validation keeps the last images
    pixels = np.concatenate([x.ravel() for x, _ in batches])
    assert np.isfinite(pixels).all() and -2.2 < pixels.min() and pixels.max() < 2.7
    assert all(((0 <= y) & (y < 1000)).all() for _, y in batches)


def test_each_epochs_order_and_augmentation_follow_from_the_seed_and_the_epoch():
    """What makes a resumed ImageNet run exact: set_epoch(e) gives epoch e's batches,
    whatever was read before; another epoch, another order and other crops."""
    import tensorflow_datasets as tfds

    def epoch(pipeline, number):
        pipeline.set_epoch(number)
        return [(x.numpy(), y.numpy()) for x, y in pipeline]

    def same(a, b):
        return all(np.array_equal(x, u) and np.array_equal(y, v)
                   for (x, y), (u, v) in zip(a, b, strict=True))

    with tfds.testing.mock_data(num_examples=12):
        train = imagenet_train.pipeline("train", image_size=24, batch=4, training=True,
                                        scale=(28, 36), limit=12)
        first, second = epoch(train, 0), epoch(train, 1)
        again = epoch(train, 0)
        other_seed = imagenet_train.pipeline("train", image_size=24, batch=4, training=True,
                                             scale=(28, 36), limit=12, seed=1)
        seeded = epoch(other_seed, 0)
    assert same(first, again)
    assert not same(first, second) and not same(first, seeded)
    labels = [np.sort(np.concatenate([y for _, y in run])) for run in (first, second)]
    np.testing.assert_array_equal(*labels)  # every image once per epoch, in another order
    assert not np.array_equal(np.concatenate([y for _, y in first]),
                              np.concatenate([y for _, y in second]))


def test_no_imagenet_is_said_before_the_network_is_built(tmp_path, capsys):
    """Without the archives, tensorflow-datasets' AssertionError became a traceback, after
    the network was built and its recipe printed (both now come after the data)."""
    with pytest.raises(SystemExit) as stopped:
        imagenet_train.main(["--model", "resnet20", "--image-size", "32", "--devices", "one",
                             "--data-dir", str(tmp_path / "tfds")])
    assert stopped.value.code == 2
    said = capsys.readouterr()
    assert "Training on ImageNet itself" in said.err and "epochs, batch" not in said.out
