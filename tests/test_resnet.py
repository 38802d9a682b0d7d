"""ResNet (He et al. 2016): Table 1's ImageNet networks and Section 4.2's CIFAR-10 ones."""

import keras
import numpy as np
import pytest

from course_lib.analysis import count_macs, layer_table, shapes_only
from course_lib.models import WeightsUnavailable, build, copy_weights, pretrained, resnet

# Trainable parameters (batch norm's moving statistics are not: torchvision's counts) and
# multiply-adds at 224 px. Table 1's FLOPs row: 1.8, 3.6, 3.8, 7.6, 11.3 x 10^9.
IMAGENET = {
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 3_857_973_248),
    "resnet101": (44_549_160, 7_570_194_432),
    "resnet152": (60_192_808, 11_282_415_616),
    "plain18": (11_515_688, 1_794_805_760),  # no projection shortcuts
    "plain34": (21_623_848, 3_644_493_824),
}
# Section 4.2: 6n + 2 weight layers; Table 6 lists 0.27M, 0.46M, 0.66M, 0.85M and 1.7M.
CIFAR = {
    "resnet20": (20, 269_722, 0.27),
    "resnet32": (32, 464_154, 0.46),
    "resnet44": (44, 658_586, 0.66),
    "resnet56": (56, 853_018, 0.85),
    "resnet110": (110, 1_727_962, 1.7),
}


def trainable(model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_counts(name):
    with shapes_only():
        model = build(name)
    assert (trainable(model), count_macs(model)) == IMAGENET[name]
    assert model.get_layer("conv5_block2_out").output.shape[1:3] == (7, 7)


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_counts_and_depth(name):
    layers_, params, millions = CIFAR[name]
    with shapes_only():
        model, plain = build(name), build(name.replace("resnet", "plain"))
    weighted = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D,
                                                                      keras.layers.Dense))]
    assert len(weighted) == layers_
    assert trainable(model) == trainable(plain) == params  # option A adds no parameters
    assert round(params / 1e6, 2 if millions < 1 else 1) == millions
    sides = {row["name"]: row["output_shape"][1:] for row in layer_table(model)}
    assert sides["conv2_block1_out"] == (32, 32, 16) and sides["conv4_block1_out"] == (8, 8, 64)
    assert not any(layer.name.endswith("_add") for layer in plain.layers)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    model = build("resnet20", width=0.5)
    shortcut = keras.Model(model.inputs, model.get_layer("conv3_block1_0_pad").output)
    before = keras.Model(model.inputs, model.get_layer("conv2_block3_out").output)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    skip, source = shortcut.predict(x, verbose=0), before.predict(x, verbose=0)
    assert skip.shape == (2, 16, 16, 16) and source.shape == (2, 32, 32, 8)
    np.testing.assert_array_equal(skip[..., :8], source[:, ::2, ::2])
    assert not skip[..., 8:].any()


def test_bottleneck_stride_in_1x1_or_3x3():
    with shapes_only():
        v1, v15 = build("resnet50"), build("resnet50", stride_in_3x3=True)
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v1.get_layer("conv3_block1_2_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("conv3_block1_2_conv").strides == (2, 2)
    assert trainable(v1) == trainable(v15)
    assert count_macs(v15) > count_macs(v1)  # the 3x3 now runs on the larger map


def test_the_small_stem_is_the_cifar_resnet18_of_torchvision_based_references():
    """conv1 3x3/1 with no max-pool: 32-px maps in conv2_x, and the 11,173,962 trainable
    parameters of torchvision's resnet18(num_classes=10) with that stem."""
    with shapes_only():
        small = build("resnet18", input_shape=(32, 32, 3), num_classes=10, stem="small")
    assert trainable(small) == 11_689_512 - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3 - 513 * 990
    assert trainable(small) == 11_173_962
    assert small.get_layer("conv2_block2_out").output.shape[1:3] == (32, 32)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in small.layers)
    with pytest.raises(ValueError, match="unknown stem 'cifar'; choose one of imagenet, small"):
        build("resnet18", stem="cifar")
    with pytest.raises(ValueError, match="weights='imagenet' needs stem='imagenet'"):
        build("resnet50", stem="small", weights="imagenet")


def test_layers_line_up_with_keras_applications_resnet50():
    """Weight by weight, keras.applications' ResNet50 differs only by its convolutions'
    biases: what `copy_weights` will have to fold into batch norm."""
    with shapes_only():
        theirs, ours = keras.applications.ResNet50(weights=None), build("resnet50")
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in ours.layers if layer.weights]
    theirs_ = [[tuple(w.shape) for w in layer.weights] for layer in theirs.layers
               if layer.weights]
    without_bias = [s[:1] if len(s) == 2 and len(s[0]) == 4 else s for s in theirs_]
    assert without_bias == shapes
    assert theirs.count_params() - ours.count_params() == 26_560  # the conv biases


def test_small_networks_run_and_refusals():
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    for name in ("resnet20", "plain20"):
        assert build(name, width=0.25).predict(x, verbose=0).shape == (2, 10)
    assert build("resnet18", input_shape=(32, 32, 3), num_classes=10, width=0.125).predict(
        x, verbose=0).shape == (2, 10)
    with pytest.raises(ValueError, match="depth"):
        resnet.ResNet(depth=20)
    with pytest.raises(ValueError, match="n must"):
        resnet.CifarResNet(n=0)


def randomised(model: keras.Model, seed: int = 0) -> keras.Model:
    """`model` with random biases and batch-norm statistics (Keras starts them at 0 and 1,
    which would hide a wrong fold) and a confident last layer."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.5, bias.shape).astype("float32")])
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.5, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2, variance.shape).astype("float32")])
    last = model.layers[-1]
    last.set_weights([w * 30 for w in last.get_weights()])
    return model


def test_keras_applications_resnet50_copied_with_its_biases_folded():
    source = randomised(keras.applications.ResNet50(weights=None))
    ours = build("resnet50")
    copy_weights(source, ours)
    x = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    x = keras.ops.convert_to_numpy(pretrained.caffe_preprocess(x))
    theirs, mine = source.predict(x, verbose=0), ours.predict(x, verbose=0)
    assert theirs.max() > 0.5  # confident: a wrong fold would show
    np.testing.assert_allclose(np.log(mine + 1e-30), np.log(theirs + 1e-30), atol=1e-3)
    conv, bn = source.get_layer("conv1_conv"), source.get_layer("conv1_bn")
    np.testing.assert_allclose(ours.get_layer("conv1_bn").moving_mean,
                               keras.ops.convert_to_numpy(bn.moving_mean)
                               - keras.ops.convert_to_numpy(conv.bias), rtol=1e-6)


def test_a_bias_without_a_batch_norm_after_it_is_refused():
    def net(bias):
        x = inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, use_bias=bias, name="conv")(x)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))

    with pytest.raises(ValueError, match="'conv'.*'conv'"):
        copy_weights(net(True), net(False))


def test_resnet_imagenet_weights_and_preprocessing(monkeypatch):
    assert pretrained.caffe_preprocess is not None
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pretrained.caffe_preprocess(pixels)),
        keras.applications.resnet.preprocess_input(pixels.copy()), rtol=1e-6, atol=1e-4)
    for options, word in ((dict(depth=34), "depth"), (dict(width=0.5), "width"),
                          (dict(stride_in_3x3=True), "stride_in_3x3")):
        with pytest.raises(ValueError, match=word):
            resnet.ResNet(weights="imagenet", **options)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "cached", lambda filename: False)
    with pytest.raises(WeightsUnavailable, match="resnet101_weights"):
        build("resnet101", weights="imagenet")


def test_a_block_alone_and_the_small_depths_notebook_07_builds():
    x = keras.Input((32, 32, 16))
    block = keras.Model(x, resnet.basic_block(x, 32, 2, name="block", shortcut="zeros"))
    assert block.get_layer("block_0_pad").output.shape[1:] == (16, 16, 32)
    assert block.output.shape[1:] == (16, 16, 32)
    for n, depth in ((1, 8), (2, 14)):  # the smoke profile's 8 and 14 layers
        plain = resnet.CifarResNet((32, 32, 1), n=n, width=0.25, shortcuts=False)
        assert plain.name == f"plain{depth}"
        assert len([layer for layer in plain.layers if layer.weights and not isinstance(
            layer, keras.layers.BatchNormalization)]) == depth


def test_keras_weight_decay_is_decoupled_from_momentum():
    """Keras's SGD takes lr * weight_decay * w off each step, outside momentum, unlike the
    paper's L2 (added to the gradient, under momentum 0.9): why train.SGD exists, and what
    notebook 07 (section 5) shows. If Keras changes its rule, this fails."""
    weight = keras.Variable(np.ones(1, "float32"))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(3):
        optimizer.apply_gradients([(keras.ops.zeros(1), weight)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), (1 - 0.1 * 1e-4) ** 3,
                               rtol=1e-7)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet18"])
def test_every_convolution_starts_as_the_paper_says(name):
    """Section 3.4: "We initialize the weights as in [13]": He et al.'s normal
    initialisation (variance 2 / fan-in), in the CIFAR networks too (Section 4.2)."""
    with shapes_only():
        model = build(name)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(
        isinstance(layer.kernel_initializer, keras.initializers.HeNormal)
        for layer in convolutions)
