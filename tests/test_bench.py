"""course_lib.bench on the active backend, and data/imagenet_accuracy.csv."""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest

from course_lib import analysis, bench, models
from course_lib.config import DATA_DIR


def tiny(seed=0):
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_measure_gives_every_key_positive_and_finite():
    result = bench.check(bench.measure(tiny(), batch=4, steps=2, warmup=1))
    assert set(result) == set(bench.KEYS)
    assert result["backend"] == keras.backend.backend() and result["batch"] == 4
    for key in ("inference_batch1", "inference", "training"):
        assert 0 < result[key] < math.inf, key
    if result["device"] == "cpu":
        assert result["memory_per_image"] is None and "no GPU" in result["memory"]


def test_activations_are_every_layer_output_at_the_compute_dtype():
    # conv: 10 x 10 x 4, pooled: 4, fc and its softmax: 3; the input is not counted
    assert bench.activations_per_image(tiny()) == (400 + 4 + 3) * 4


def test_inference_only():
    result = bench.measure(tiny(), batch=2, steps=1, training=False)
    assert result["training"] is None and result["inference"] > 0


@pytest.mark.parametrize("option, value", [("batch", 0), ("batch", 2.5), ("steps", 0),
                                           ("steps", -1), ("warmup", 0), ("batch", "8")])
def test_bad_arguments_are_refused(option, value):
    with pytest.raises(ValueError, match=option):
        bench.measure(tiny(), **{option: value})


def test_a_model_of_unknown_size_is_refused():
    inputs = keras.Input((None, None, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="known size"):
        bench.measure(keras.Model(inputs, outputs), batch=2, steps=1)


def test_check_refuses_a_broken_result():
    result = bench.measure(tiny(), batch=2, steps=1, training=False)
    with pytest.raises(ValueError, match="inference"):
        bench.check({**result, "inference": float("nan")})
    with pytest.raises(ValueError, match="keys"):
        bench.check({k: v for k, v in result.items() if k != "memory"})


def test_images_per_second_times_only_the_timed_calls():
    calls = []
    rate = bench.images_per_second(lambda: calls.append(1), images=8, steps=3, warmup=2)
    assert len(calls) == 5 and rate > 0


# --------------------------------------------------------------------------- the data file

ACCURACY = os.path.join(DATA_DIR, "imagenet_accuracy.csv")


def accuracy_rows():
    with open(ACCURACY, newline="") as f:
        return list(csv.DictReader(f))


def test_accuracy_file_rows_are_complete_and_in_range():
    rows = accuracy_rows()
    assert list(rows[0]) == ["model", "network", "metric", "error", "evaluation", "split",
                             "chart", "source", "note"]
    for row in rows:
        assert row["metric"] in ("top1", "top5") and row["split"] in ("val", "test"), row
        assert 0 < float(row["error"]) < 100, row
        assert row["source"].strip() and row["network"].strip() and row["evaluation"], row
        assert row["chart"] in ("", "yes"), row
    # top-5 error is below top-1 error for the same network and evaluation
    top1 = {(r["network"], r["evaluation"], r["split"]): float(r["error"])
            for r in rows if r["metric"] == "top1"}
    for r in rows:
        key = (r["network"], r["evaluation"], r["split"])
        if r["metric"] == "top5" and key in top1:
            assert float(r["error"]) < top1[key], r


def test_accuracy_file_models_build_and_one_chart_row_each():
    rows = accuracy_rows()
    named = {row["model"] for row in rows if row["model"]}
    assert named <= set(models.available())
    with analysis.shapes_only():
        for name in sorted(named):
            assert models.build(name).count_params() > 0, name
    unbuilt = {row["network"].split(" (")[0] for row in rows if not row["model"]}
    assert unbuilt == {"All-CNN", "BN-Inception"}
    charted = [(row["model"], row["metric"]) for row in rows if row["chart"]]
    assert len(charted) == len(set(charted)) and all(m for m, _ in charted)


def test_accuracy_file_holds_the_papers_key_figures():
    figures = {(r["model"], r["metric"], r["evaluation"]): float(r["error"])
               for r in accuracy_rows() if r["split"] == "val"}
    assert figures[("alexnet", "top1", "10 crops (corners, centre, flips)")] == 40.7
    assert figures[("googlenet", "top5", "1 crop")] == 10.07
    assert figures[("resnet50", "top1", "10 crops")] == 22.85
    assert figures[("vgg16", "top1", "dense, 1 scale (Q = 256), flips averaged")] == 27.0
    assert np.isclose(figures[("", "top1", "1 crop")], 25.2)  # BN-Inception, single crop


# --------------------------------------------------------------------------- the command


def test_the_command_measures_a_course_network_and_prints_json(capsys):
    assert bench.main(["--model", "resnet20", "--batch", "4", "--steps", "1", "--pipeline",
                       "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # ResNet-20 at 32 px: conv1 442,368; three stages of 14,155,776, 12,976,128 and
    # 12,976,128 (option A shortcuts cost nothing); the classifier 640
    assert result["macs"] == 40_551_040 and result["image_size"] == 32
    for key in ("inference_batch1", "inference", "training", "pipeline"):
        assert 0 < result[key] < math.inf, key
    assert result["training_flops"] == pytest.approx(6 * 40_551_040 * result["training"])
    assert result["mfu"] is None  # no GPU here: no peak to compare with


def test_the_command_takes_another_image_size_and_prints_a_table(capsys):
    assert bench.main(["--model", "allcnn_c", "--image-size", "40", "--batch", "2",
                       "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "allcnn_c at 40 px, batch 2" in out and "GFLOP/s achieved" in out


def test_the_command_passes_options_to_the_builder(capsys):
    """ResNet-18 with the CIFAR stem, as the PyTorch reference trains it."""
    assert bench.main(["--model", "resnet18", "--image-size", "32", "--batch", "2",
                       "--steps", "1", "--option", "stem=small", "--option",
                       "num_classes=10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["trainable_parameters"] == 11_173_962  # torchvision's, with that stem
    assert result["options"] == ["stem=small", "num_classes=10"]


@pytest.mark.parametrize("argv, said", [
    (["--model", "resnet21"], "unknown model 'resnet21'"),
    (["--model", "resnet20", "--option", "stem"], "--option takes KEY=VALUE"),
    (["--model", "resnet20", "--option", "input_shape=(8, 8, 3)"], "the size is --image-size"),
    (["--model", "resnet18", "--option", "stem=cifar"], "unknown stem 'cifar'"),
    (["--model", "resnet20", "--option", "colour=1"], "unexpected keyword argument 'colour'"),
    (["--model", "resnet20", "--batch", "0"], "--batch must be at least 1"),
    (["--model", "alexnet", "--image-size", "16"], "at least 67 x 67 px"),
    (["--model", "resnet20", "--precision", "half"], "invalid choice"),
])
def test_the_command_refuses_bad_arguments_saying_why(argv, said, capsys):
    with pytest.raises(SystemExit) as stopped:
        bench.main(argv)
    assert stopped.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("device, precision, peak", [
    ("NVIDIA H100 80GB HBM3", "mixed", 989.4), ("NVIDIA H100 PCIe", "mixed", 756.0),
    ("NVIDIA H200", "float32", 494.7), ("Tesla T4", "mixed", None),
    ("NVIDIA A100-SXM4-80GB", "mixed", 312.0), ("NVIDIA L4", "float32", 60.0),
    ("NVIDIA L40S", "mixed", None), ("NVIDIA L40", "mixed", None),
    ("NVIDIA H100 NVL", "mixed", None)])  # not the L4's or the H100 SXM's peaks
def test_peaks_of_known_gpus(device, precision, peak):
    assert bench.peak_tflops(device, precision) == peak
