"""Every registered model, then AlexNet's and ZFNet's integers, their checks, the registry."""

import ast
import inspect
import re
import sys

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table, shapes_only
from course_lib.layers import LocalResponseNormalization
from course_lib.models import alexnet, available, build, register, registry, resnet, zfnet
from course_lib.models.common import InputTooSmall, smallest_input

SMALL_WIDTH = 0.125  # share of the paper's filters for the quick builds below


@pytest.fixture(scope="module")
def paper_model():
    """`paper_model(name)`: the model at its paper's defaults, built once for this module."""
    built = {}

    def get(name):
        if name not in built:
            with shapes_only():  # counted, never run: no random weights drawn
                built[name] = build(name)
        return built[name]

    yield get
    built.clear()


def build_smallest(name, **options):
    """`name` on the smallest square image it takes: the side its refusal of 1 px names."""
    try:
        return build(name, input_shape=(1, 1, 3), **options)
    except InputTooSmall as refused:
        side = refused.smallest
    with pytest.raises(InputTooSmall):  # one pixel less is refused, naming `side` again
        build(name, input_shape=(side - 1, side - 1, 3), **options)
    return build(name, input_shape=(side, side, 3), **options)


def auto_named(layer) -> bool:
    """Whether Keras numbered `layer`'s name: its class in snake_case and _N ("conv2d_3").

    The bare class name is allowed ("flatten", as in keras.applications); the paper's
    names such as VGG's conv3_1 are not Keras' and pass. Two builds that name their layers
    alike (`test_every_model`) catch the rest: Keras numbers each new layer anew.
    """
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    return re.fullmatch(rf"{snake}_\d+", layer.name) is not None


def check_layers(model):
    """Every layer named by the builder; the per-layer table adds up to count_params."""
    unnamed = [layer.name for layer in model.layers if auto_named(layer)]
    assert not unnamed, f"{model.name}: layers without a builder's name: {unnamed}"
    assert len({layer.name for layer in model.layers}) == len(model.layers)
    assert sum(row["params"] for row in layer_table(model)) == model.count_params()


def test_auto_named_spots_keras_names():
    keras.layers.Conv2D(1, 1), keras.layers.MaxPooling2D()  # later ones get numbers
    assert auto_named(keras.layers.Conv2D(1, 1)) and auto_named(keras.layers.MaxPooling2D())
    assert not auto_named(keras.layers.Conv2D(1, 1, name="conv3_1"))


def distinct_models() -> list[str]:
    """One name per (builder, fixed options): aliases such as vgg16 for vgg_d left out."""
    seen, names = [], []
    for name in available():
        if registry.REGISTRY[name] not in seen:
            seen.append(registry.REGISTRY[name])
            names.append(name)
    return names


def test_aliases_build_the_same_network():
    assert registry.REGISTRY["vgg16"] == registry.REGISTRY["vgg_d"]
    assert registry.REGISTRY["vgg11"] == registry.REGISTRY["vgg_a"]
    assert len({"vgg16", "vgg_d"} & set(distinct_models())) == 1


@pytest.mark.parametrize("name", distinct_models())
def test_every_model(name):
    """Builds at its defaults and on its smallest input; names, params, float32 output.

    The paper-size model gets shapes but no weight values (`shapes_only`): counting needs
    no more, and drawing six VGGs' weights would take most of a minute on JAX."""
    with shapes_only():
        paper = build(name)
    check_layers(paper)
    assert registry.default_input_shape(name) == tuple(paper.input_shape[1:])
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_smallest(name, width=SMALL_WIDTH)
    finally:
        keras.config.set_dtype_policy(policy)
    check_layers(model)
    assert [layer.name for layer in model.layers] == [layer.name for layer in paper.layers]
    dtypes = {keras.backend.standardize_dtype(layer.compute_dtype) for layer in model.layers}
    assert "bfloat16" in dtypes  # the policy took
    x = np.random.default_rng(0).uniform(size=(1, *model.input_shape[1:])).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    # train.fit compiles with XLA; one layer that does not support it (Keras's RandomCrop,
    # say) would silently turn it off for the whole network
    model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=True)
    assert model.jit_compile is True, f"{name} has a layer that turns XLA off"

# bvlc_alexnet on 227 x 227: layer -> (neurons, multiply-adds, receptive field).
ALEXNET = {
    "conv1": (290_400, 105_415_200, 11),  # 55 x 55 x 96, 11 * 11 * 3 per output
    "pool1": (69_984, 0, 19),  # 27 x 27 x 96
    "conv2": (186_624, 223_948_800, 51),  # 27 x 27 x 256, 5 * 5 * 48 per output
    "pool2": (43_264, 0, 67),  # 13 x 13 x 256
    "conv3": (64_896, 149_520_384, 99),  # 13 x 13 x 384, 3 * 3 * 256 per output
    "conv4": (64_896, 112_140_288, 131),  # 13 x 13 x 384, 3 * 3 * 192 per output
    "conv5": (43_264, 74_760_192, 163),  # 13 x 13 x 256, 3 * 3 * 192 per output
    "pool5": (9_216, 0, 195),  # 6 x 6 x 256
    "fc6": (4_096, 37_748_736, None),
    "fc7": (4_096, 16_777_216, None),
    "fc8": (1_000, 4_096_000, None),
}
ALEXNET_LAYERS = (
    "conv1 norm1 pool1 conv2 norm2 pool2 conv3 conv4 conv5 pool5 flatten "
    "fc6 drop6 fc7 drop7 fc8 predictions"
).split()
# ZFNet on 224 x 224, Figure 3: layer -> (map side, channels, multiply-adds, receptive field).
ZFNET = {
    "conv1": (110, 96, 170_755_200, 7),  # 7 * 7 * 3 per output
    "pool1": (55, 96, 0, 11),
    "norm1": (55, 96, 0, 11),
    "conv2": (26, 256, 415_334_400, 27),  # 5 * 5 * 96 per output
    "pool2": (13, 256, 0, 43),
    "norm2": (13, 256, 0, 43),
    "conv3": (13, 384, 149_520_384, 75),  # 3 * 3 * 256 per output
    "conv4": (13, 384, 224_280_576, 107),  # 3 * 3 * 384 per output
    "conv5": (13, 256, 149_520_384, 139),  # 3 * 3 * 384 per output
    "pool5": (6, 256, 0, 171),
}
# The larger ZFNet on 224 x 224, Table 2 (b) and Table 3 ("layers 3,4,5: 512,1024,512 maps"):
# layer -> (channels, parameters, multiply-adds). By hand, 13 x 13 = 169 positions:
#   conv3: 3*3*256*512 + 512 = 1,180,160 params; 169 * 512 * 2,304 = 199,360,512 MACs
#   conv4: 3*3*512*1024 + 1024 = 4,719,616;      169 * 1024 * 4,608 = 797,442,048
#   conv5: 3*3*1024*512 + 512 = 4,719,104;       169 * 512 * 9,216 = 797,442,048
#   fc6:   6*6*512 = 18,432 inputs: 18,432*4096 + 4096 = 75,501,568; 75,497,472 MACs
# conv1, conv2, fc7 and fc8 are ZFNet's (14,208 + 614,656 + 16,781,312 + 4,097,000 params;
# 170,755,200 + 415,334,400 + 16,777,216 + 4,096,000 MACs), so in all
#   107,627,624 parameters and 2,476,704,896 multiply-adds (x1.73 and x2.12 ZFNet's).
ZFNET_LARGE = {
    "conv3": (512, 1_180_160, 199_360_512),
    "conv4": (1024, 4_719_616, 797_442_048),
    "conv5": (512, 4_719_104, 797_442_048),
    "pool5": (512, 0, 0),
    "fc6": (4096, 75_501_568, 75_497_472),
}
ZFNET_LARGE_TOTALS = (107_627_624, 2_476_704_896)


@pytest.fixture(scope="module")
def alexnet_table(paper_model):
    model = paper_model("alexnet")
    return model, {row["name"]: row for row in layer_table(model)}


@pytest.fixture(scope="module")
def zfnet_table(paper_model):
    model = paper_model("zfnet")
    return model, {row["name"]: row for row in layer_table(model)}


def test_alexnet_parameters_and_total_macs(alexnet_table):
    model, _ = alexnet_table
    assert model.input_shape == (None, 227, 227, 3)
    assert model.output_shape == (None, 1000)
    assert model.count_params() == 60_965_224
    assert count_macs(model) == 724_406_816


@pytest.mark.parametrize("name", ALEXNET)
def test_alexnet_layer_neurons_macs_receptive_field(alexnet_table, name):
    _, rows = alexnet_table
    row = rows[name]
    assert (row["neurons"], row["macs"], row["receptive_field"]) == ALEXNET[name]


def test_alexnet_layer_names_and_towers(alexnet_table):
    model, _ = alexnet_table
    assert [layer.name for layer in model.layers[1:]] == ALEXNET_LAYERS
    groups = [model.get_layer(f"conv{i}").groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]  # the towers talk at conv3 only
    assert isinstance(model.get_layer("norm1"), LocalResponseNormalization)
    assert model.get_layer("drop6").rate == model.get_layer("drop7").rate == 0.5
    assert keras.backend.standardize_dtype(model.get_layer("predictions").dtype) == "float32"


def test_caffenet_pools_before_normalizing():
    model = build("alexnet", caffenet=True)
    names = [layer.name for layer in model.layers[1:7]]
    assert names == ["conv1", "pool1", "norm1", "conv2", "pool2", "norm2"]
    assert model.get_layer("norm1").output.shape == (None, 27, 27, 96)
    assert model.count_params() == 60_965_224


def test_alexnet_without_lrn_or_towers():
    assert not any(layer.name.startswith("norm") for layer in build("alexnet", lrn=False).layers)
    # One tower: conv2, conv4 and conv5 see all channels, 307,200 + 663,552 + 442,368 more.
    assert build("alexnet", towers=1).count_params() == 62_378_344


def test_zfnet_parameters_and_total_macs(zfnet_table):
    model, _ = zfnet_table
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.count_params() == 62_357_608
    assert count_macs(model) == 1_168_032_896


@pytest.mark.parametrize("name", ZFNET)
def test_zfnet_map_sizes_macs_receptive_field(zfnet_table, name):
    _, rows = zfnet_table
    side, channels, macs, field = ZFNET[name]
    row = rows[name]
    assert row["output_shape"] == (None, side, side, channels)
    assert (row["macs"], row["receptive_field"]) == (macs, field)


def test_zfnet_dense_layers(zfnet_table):
    _, rows = zfnet_table
    dense = ("fc6", "fc7", "fc8")
    assert [rows[name]["params"] for name in dense] == [37_752_832, 16_781_312, 4_097_000]
    assert [rows[name]["macs"] for name in dense] == [37_748_736, 16_777_216, 4_096_000]


def test_zfnet_large_parameters_and_macs(paper_model):
    model = paper_model("zfnet_large")
    assert model.name == "zfnet_large" and model.input_shape == (None, 224, 224, 3)
    assert (model.count_params(), count_macs(model)) == ZFNET_LARGE_TOTALS
    rows = {row["name"]: row for row in layer_table(model)}
    for name, (channels, params, macs) in ZFNET_LARGE.items():
        assert (rows[name]["output_shape"][-1], rows[name]["params"], rows[name]["macs"]) == (
            channels, params, macs), name
    # Everything else is Figure 3's network: the same maps, fields and first two layers.
    for name, (side, _, macs, field) in ZFNET.items():
        assert rows[name]["output_shape"][1:3] == (side, side)
        assert rows[name]["receptive_field"] == field
        if name in ("conv1", "conv2"):
            assert rows[name]["macs"] == macs
    assert registry.REGISTRY["zfnet_large"] == (zfnet.ZFNet, {"large": True})


def test_zfnet_large_scales_with_width():
    # The shapes `test_every_model` builds too: on JAX their initializers are compiled once.
    model = build("zfnet_large", input_shape=(47, 47, 3), width=SMALL_WIDTH)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 6)] == [12, 32, 64, 128, 64]
    with pytest.raises(ValueError, match="fixes large"):
        build("zfnet_large", large=False)


# The recommended small setting for 32 px images (both models).
SMALL_OPTIONS = dict(num_classes=10, width=0.25, dense=512, stem="small")
# (model, input shape, options) of small variants the course trains on a CPU. They share
# most weight shapes: on JAX each new shape costs a compilation of the initializer.
SMALL = [
    ("alexnet", (32, 32, 3), dict(stem="small")),
    ("alexnet", (32, 32, 1), dict(stem="small", caffenet=True)),  # Fashion-MNIST
    ("alexnet", (67, 67, 3), dict(stem="imagenet")),  # the paper's stem, smallest input
    ("alexnet", (64, 64, 3), dict(stem="small", lrn=False)),
    ("zfnet", (32, 32, 3), dict(stem="small")),
    ("zfnet", (64, 64, 3), dict(stem="imagenet")),
]


@pytest.mark.parametrize("name, input_shape, options", SMALL)
def test_small_variants_run(name, input_shape, options):
    model = build(name, input_shape=input_shape, **{**SMALL_OPTIONS, **options})
    x = np.random.default_rng(0).uniform(size=(2, *input_shape)).astype("float32")
    y = model.predict(x, verbose=0)  # one compiled graph: much faster than eager on JAX
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_recommended_small_alexnet_shape():
    model = build("alexnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    sides = {row["name"]: row["output_shape"][1:] for row in layer_table(model)}
    assert sides["conv1"] == (32, 32, 24)
    assert sides["pool1"] == (15, 15, 24)
    assert sides["conv5"] == (7, 7, 64)
    assert sides["pool5"] == (3, 3, 64)
    assert model.count_params() == 707_818
    assert [model.get_layer(n).groups for n in ("conv2", "conv4", "conv5")] == [2, 2, 2]


def test_recommended_small_zfnet_shape():
    model = build("zfnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    names = ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")
    sides = [model.get_layer(name).output.shape[1] for name in names]
    assert sides == [32, 16, 6, 3, 3, 1]
    assert model.count_params() == 533_994


def test_save_and_reload_gives_identical_outputs(tmp_path):
    model = build("alexnet", input_shape=(32, 32, 3), **SMALL_OPTIONS)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.get_layer("norm2"), LocalResponseNormalization)
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reloaded.predict(x, verbose=0))


# The smallest side of each (model, stem): one pixel left after pool5.
SMALLEST = {
    ("alexnet", "imagenet"): 67,  # 67 -> 15 -> 7 -> 3 -> 1
    ("alexnet", "small"): 15,  # 15 -> 7 -> 3 -> 1
    ("zfnet", "imagenet"): 47,  # 47 -> 22 -> 11 -> 4 -> 2 -> 1
    ("zfnet", "small"): 22,  # 22 -> 11 -> 4 -> 2 -> 1
}
FAMILIES = {"alexnet": alexnet, "zfnet": zfnet}


@pytest.mark.parametrize(("name", "stem"), SMALLEST)
def test_smallest_input_is_what_keras_builds(monkeypatch, name, stem):
    """The arithmetic agrees with Keras: with the check off, one pixel less fails in a pool."""
    module = FAMILIES[name]
    side = SMALLEST[name, stem]
    assert module.SMALLEST_INPUT[stem] == side
    monkeypatch.setitem(module.SMALLEST_INPUT, stem, 1)  # let Keras try
    try:  # Keras 3.13 and later refuse an empty map; 3.12 (Python 3.10) builds one
        short = build(name, input_shape=(side - 1, side - 1, 3), stem=stem, width=SMALL_WIDTH)
    except ValueError as error:
        assert "zero or negative" in str(error)
    else:
        assert min(short.get_layer("pool5").output.shape[1:3]) < 1
    model = build(name, input_shape=(side, side, 3), stem=stem, width=SMALL_WIDTH)
    assert model.get_layer("pool5").output.shape[1:3] == (1, 1)


@pytest.mark.parametrize(("name", "stem"), SMALLEST)
def test_refuses_an_input_smaller_than_the_stem(name, stem):
    side = SMALLEST[name, stem]
    for shape in ((side - 1, side - 1, 3), (side, side - 1, 3)):  # also one side short
        with pytest.raises(InputTooSmall, match=f"at least {side} x {side} px") as refused:
            build(name, input_shape=shape, stem=stem, width=SMALL_WIDTH)
        assert refused.value.smallest == side


def test_smallest_input_arithmetic():
    assert smallest_input([]) == 1
    assert smallest_input([(2, 2, "valid")] * 5) == 32  # VGG's five 2x2 pools
    assert smallest_input([(3, 2, "same")] * 3) == 1  # "same" never runs out of pixels
    assert smallest_input([(3, 2, "same"), (2, 2, "valid")]) == 3  # 3 -> 2 -> 1
    assert smallest_input([(7, 2, 6)]) == 1  # padding larger than the kernel's reach


def test_non_square_inputs_build():
    model = build("zfnet", input_shape=(47, 80, 1), width=SMALL_WIDTH)
    assert model.get_layer("pool5").output.shape[1:3] == (1, 2)  # 80 -> 38 -> 19 -> 8 -> 4 -> 2


# Each wrong argument -> the word its error must name. All were accepted, or failed deep
# inside Keras with an error about something else, before the builders checked them.
FAULTS = {
    "width_zero": ("alexnet", dict(width=0), "width"),
    "width_negative": ("zfnet", dict(width=-0.5), "width"),
    "width_nan": ("alexnet", dict(width=float("nan")), "width"),
    "width_infinite": ("zfnet", dict(width=float("inf")), "width"),
    "num_classes_zero": ("alexnet", dict(num_classes=0), "num_classes"),
    "num_classes_fraction": ("zfnet", dict(num_classes=2.5), "num_classes"),
    "dense_zero": ("alexnet", dict(dense=0), "dense must"),
    "dense_fraction": ("zfnet", dict(dense=100.5), "dense must"),
    "dropout_one": ("alexnet", dict(dropout=1.0), "dropout"),
    "dropout_negative": ("zfnet", dict(dropout=-0.1), "dropout"),
    "towers_zero": ("alexnet", dict(towers=0), "towers"),
    "towers_fraction": ("alexnet", dict(towers=1.5), "towers"),
    "stem_unknown": ("zfnet", dict(stem="tiny"), "stem"),
    "input_shape_two_entries": ("alexnet", dict(input_shape=(227, 227)), "input_shape"),
    "input_shape_no_channels": ("zfnet", dict(input_shape=(224, 224, 0)), "input_shape"),
    "input_shape_unknown_sides": ("alexnet", dict(input_shape=(None, None, 3)), "input_shape"),
    # Found by a review (2026-11-28): accepted before, and meant something else.
    "lrn_a_string": ("alexnet", dict(lrn="False"), "lrn must be True or False"),
    "caffenet_a_string": ("alexnet", dict(caffenet="no"), "caffenet must be True or False"),
    "large_a_number": ("zfnet", dict(large=1), "large must be True or False"),
    "aux_logits_a_string": ("googlenet", dict(aux_logits="False"), "aux_logits must be True"),
    "shortcuts_a_string": ("resnet18", dict(shortcuts="no"), "shortcuts must be True"),
    "cifar_shortcuts_a_string": ("resnet20", dict(shortcuts="no"), "shortcuts must be True"),
    "channels_first": ("resnet18", dict(input_shape=(3, 224, 224)),
                       r"\(3, 224, 224\) looks channels-first.*\(224, 224, 3\)"),
    "cifar_channels_first": ("resnet20", dict(input_shape=(3, 32, 32)), "channels-first"),
    "grey_channels_first": ("googlenet", dict(input_shape=(1, 224, 224)), "channels-first"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_refuses_wrong_arguments(fault):
    name, options, word = FAULTS[fault]
    with pytest.raises(ValueError, match=word):
        build(name, **{"width": SMALL_WIDTH, **options})


def test_each_name_is_a_module_and_builders_are_named_like_keras_applications():
    assert inspect.ismodule(alexnet) and inspect.ismodule(zfnet)
    assert registry.REGISTRY["alexnet"] == (alexnet.AlexNet, {})
    assert registry.REGISTRY["zfnet"] == (zfnet.ZFNet, {})
    for name in available():
        builder, _ = registry.REGISTRY[name]
        module = builder.__module__.rsplit(".", 1)[-1]
        assert builder.__name__ != module  # a variant never shares its module's name


@pytest.mark.parametrize("name", available())
def test_families_import_only_the_shared_modules(name):
    builder, _ = registry.REGISTRY[name]
    tree = ast.parse(inspect.getsource(sys.modules[builder.__module__]))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    ours = {module for module in imported if module.startswith("course_lib.models")}
    shared = {"course_lib.models.common", "course_lib.models.registry",
              "course_lib.models.pretrained"}
    assert ours <= shared


def test_registry_lists_names_and_refuses_unknown_ones():
    assert {"alexnet", "zfnet"} <= set(available())
    assert available() == sorted(available())
    with pytest.raises(ValueError, match="alexnet"):
        build("lenet-9000")
    for name in (None, 3):
        with pytest.raises(ValueError, match="unknown model"):
            build(name)
    with pytest.raises(ValueError, match="depth must be one of"):
        resnet.ResNet(depth=50.0)
    # labels.max() + 1 is a NumPy integer, which Keras's Dense refused obscurely
    assert build("resnet20", num_classes=np.int64(7), width=0.25).output_shape == (None, 7)
    with pytest.raises(ValueError, match="num_classes must be a Python int.*int\\(num_classes\\)"):
        resnet.CifarResNet(num_classes=np.int64(7))
    assert build("ZFNet", input_shape=(22, 22, 1), stem="small", width=SMALL_WIDTH).name == "zfnet"


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that the test may add to; the real one is left as it was."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    return registry.REGISTRY


def fake_net(input_shape=(8, 8, 3), num_classes=2, *, config="A"):
    """Stands for a builder: returns what it was called with."""
    return input_shape, num_classes, config


def test_one_builder_under_several_names_with_fixed_options(scratch_registry):
    builder = register("fake-b", config="B")(register("fake-a", config="A")(fake_net))
    assert builder is fake_net
    assert {"fake-a", "fake-b"} <= set(available())
    assert build("fake-a") == ((8, 8, 3), 2, "A")
    assert build("FAKE-B", num_classes=5) == ((8, 8, 3), 5, "B")
    with pytest.raises(ValueError, match="fixes config"):
        build("fake-b", config="A")


def define_fake_net():
    """A new function object from the same definition, as a reloaded module makes."""

    def fake_net_again(input_shape=(8, 8, 3), num_classes=2):
        return input_shape, num_classes

    return fake_net_again


def test_registering_a_taken_name_is_an_error(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register("alexnet")(fake_net)
    with pytest.raises(ValueError, match="already registered"):
        register("AlexNet", width=0.5)(zfnet.ZFNet)
    with pytest.raises(ValueError, match="already registered"):  # stacked twice by mistake
        register("alexnet", towers=1)(alexnet.AlexNet)
    first, again = define_fake_net(), define_fake_net()
    register("fake")(first)
    register("fake")(again)  # the same definition run again (a reload) replaces it
    assert scratch_registry["fake"] == (again, {})
    assert scratch_registry["alexnet"] == (alexnet.AlexNet, {})
