"""course_lib.bench on the active backend, and data/imagenet_accuracy.csv."""

import csv
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
