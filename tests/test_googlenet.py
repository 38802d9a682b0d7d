"""GoogLeNet (Szegedy et al. 2015): Table 1's network as bvlc_googlenet builds it."""

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table, shapes_only
from course_lib.models import build, googlenet

# bvlc_googlenet's network at 224 px, counted with biases: 6,998,552 parameters, as public
# dumps of its Caffe deploy network count them (Table 1's column sums to 6.8 million), and
# 1,582,671,872 multiply-adds (Section 1: a budget of "1.5 billion"). The two auxiliary
# heads add 3,188,840 (on 4a's 512 maps) and 3,190,888 (on 4d's 528).
TOTALS = (6_998_552, 1_582_671_872)
AUX_PARAMS = (65_664 + 2_098_176 + 1_025_000, 67_712 + 2_098_176 + 1_025_000)
# module -> (output side, output channels, parameters with biases, multiply-adds). Table 1
# gives the same sides, channels and multiply-adds ("ops": 128M, 304M, 73M, 88M, 100M,
# 119M, 170M, 54M, 71M; 5a's 54M is the one that differs, ours 51M).
MODULES = {
    "3a": (28, 256, 163_696, 128_049_152),
    "3b": (28, 480, 388_736, 304_267_264),
    "4a": (14, 512, 376_176, 73_608_192),
    "4b": (14, 512, 449_160, 87_908_352),
    "4c": (14, 512, 510_104, 99_850_240),
    "4d": (14, 528, 605_376, 118_515_712),
    "4e": (14, 832, 868_352, 169_996_288),
    "5a": (7, 832, 1_043_456, 51_079_168),
    "5b": (7, 1024, 1_444_080, 70_697_984),
}


@pytest.fixture(scope="module")
def table():
    with shapes_only():  # counted, never run
        return {row["name"]: row for row in layer_table(build("googlenet"))}


def test_totals(table):
    with shapes_only():
        model = build("googlenet")
    assert (model.count_params(), count_macs(model)) == TOTALS
    # a layer-by-layer dump of bvlc_googlenet's deploy network: 6,990,272 weights and
    # 8,280 biases
    biases = sum(layer.bias.shape[0] for layer in model.layers if getattr(layer, "bias", None)
                 is not None)
    assert (TOTALS[0] - biases, biases) == (6_990_272, 8_280)
    assert sum(row["params"] for row in table.values()) == TOTALS[0]


@pytest.mark.parametrize("module", MODULES)
def test_each_inception_module(table, module):
    side, channels, params, macs = MODULES[module]
    rows = [row for name, row in table.items() if name.startswith(f"inception_{module}_")]
    assert table[f"inception_{module}_output"]["output_shape"][1:] == (side, side, channels)
    assert sum(row["params"] for row in rows) == params
    assert sum(row["macs"] for row in rows) == macs


def test_stem_takes_224_px_to_28(table):
    sides = [table[name]["output_shape"][1:] for name in ("conv1", "pool1", "conv2", "pool2")]
    assert sides == [(112, 112, 64), (56, 56, 64), (56, 56, 192), (28, 28, 192)]
    assert table["conv1"]["params"] == 7 * 7 * 3 * 64 + 64  # Table 1: 2.7K
    assert table["global_pool"]["output_shape"][1:] == (1024,)
    assert table["classifier"]["params"] == 1_025_000  # Table 1: 1000K


def test_auxiliary_heads_and_the_inference_model():
    with shapes_only():  # counted at the paper's size
        model = build("googlenet", aux_logits=True)
    assert [output.shape for output in model.outputs] == [(None, 1000)] * 3
    assert model.count_params() == TOTALS[0] + sum(AUX_PARAMS)
    for n, params in enumerate(AUX_PARAMS, 1):
        head = [layer for layer in model.layers if layer.name.startswith(f"aux{n}_")]
        assert sum(layer.count_params() for layer in head) == params
    assert model.get_layer("aux1_pool").output.shape[1:] == (4, 4, 512)  # 14 -> 4
    assert model.get_layer("aux2_dropout").rate == 0.7
    assert googlenet.main_head(model).count_params() == TOTALS[0]
    small = build("googlenet", input_shape=(65, 65, 3), num_classes=10, width=0.125,
                  aux_logits=True)  # run for real: the main head alone gives the same
    main = googlenet.main_head(small)
    assert len(main.outputs) == 1 and main.count_params() < small.count_params()
    x = np.random.default_rng(0).uniform(size=(2, 65, 65, 3)).astype("float32")
    np.testing.assert_allclose(main.predict(x, verbose=0), small.predict(x, verbose=0)[2],
                               rtol=1e-5, atol=1e-7)


def test_naive_module_against_the_reduced_one():
    """Figure 2 (a) vs (b) on 3a's input, 28 x 28 x 192."""
    x = keras.Input((28, 28, 192))
    naive = keras.Model(x, googlenet.inception_module(x, googlenet.STAGES[3]["3a"],
                                                      name="naive", naive=True))
    reduced = keras.Model(x, googlenet.inception_module(x, googlenet.STAGES[3]["3a"],
                                                        name="reduced"))
    assert naive.output_shape == (None, 28, 28, 64 + 128 + 32 + 192)  # the pool adds 192
    assert reduced.output_shape == (None, 28, 28, 256)
    naive_weights = 192 * 64 + 9 * 192 * 128 + 25 * 192 * 32 + (64 + 128 + 32)
    assert naive.count_params() == naive_weights == 387_296
    assert reduced.count_params() == MODULES["3a"][2]
    assert count_macs(naive) == 28 * 28 * (naive_weights - 224) == 303_464_448
    assert count_macs(reduced) == MODULES["3a"][3]


def test_small_variants_and_refusals():
    small = build("googlenet", input_shape=(32, 32, 3), num_classes=10, width=0.25)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    assert small.predict(x, verbose=0).shape == (2, 10)
    assert small.get_layer("inception_3a_output").output.shape[-1] == 64  # 256 / 4
    with shapes_only():
        plain = build("googlenet", lrn=False, width=0.25)
    assert plain.get_layer("pool1").output.shape[1] == 56
    assert not {"norm1", "norm2"} & {layer.name for layer in plain.layers}
    with pytest.raises(ValueError, match="at least 65 x 65"):
        build("googlenet", input_shape=(64, 64, 3), aux_logits=True, width=0.25)
    with shapes_only():
        build("googlenet", input_shape=(65, 65, 3), aux_logits=True, width=0.25)
    with pytest.raises(ValueError, match="dropout"):
        build("googlenet", dropout=1.0)
