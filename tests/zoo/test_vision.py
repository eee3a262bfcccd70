"""Image-classification models: architecture checks against keras.applications and the papers.

The shared table (test_models.py) runs every tiny variant through the common checks; this file
checks what is particular to the image family: ImageNet-size parameter counts and weight shapes,
the CIFAR stem, feature extraction (`include_top=False` + `pooling`) and the naming contract.
"""

import ast
import pathlib

import keras
import numpy as np
import pytest

import zoo

VISION = [
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg11",
    "vgg16",
    "inception_v3",
    "googlenet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "vit_tiny16",
]


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _shapes(weights):
    # A 1x1 conv kernel (1, 1, in, out) is compared as the Dense kernel (in, out) it equals on a
    # 1x1 map: keras' MobileNetV3 head is two 1x1 convs after pooling, the zoo's two Dense layers.
    def shape(w):
        s = tuple(w.shape)
        return s[2:] if len(s) == 4 and s[:2] == (1, 1) else s

    return sorted(shape(w) for w in weights)


def _images(model, batch=2, seed=0):
    shape = (batch, *model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


def test_every_family_model_is_registered_for_classification():
    for name in VISION:
        spec = zoo.get_spec(name)
        assert spec.task == "classification"
        assert spec.input_shape == ((299, 299, 3) if name == "inception_v3" else (224, 224, 3))
        assert spec.citation and spec.tiny


# ---- ImageNet configuration against keras.applications -----------------------------------


# Weights of the keras.applications model that the zoo's twin leaves out on purpose.
def _keras_conv_biases(model):
    # keras' ResNet50 convs carry a bias, each followed by BatchNormalization, which subtracts
    # the batch mean and so cancels it; the zoo's convs have none (as the original ResNet).
    # v1.5 (stride on the 3x3) vs keras' v1 (stride on the first 1x1) moves no weight.
    return [
        layer.bias
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.use_bias
    ]


def _keras_normalization_state(model):
    # keras' EfficientNet has an adaptable Normalization layer: mean, variance and count are
    # non-trainable weights (7 numbers). The zoo's normalizes by constant ImageNet mean/std.
    return [
        w
        for layer in model.layers
        if isinstance(layer, keras.layers.Normalization)
        for w in layer.weights
    ]


KERAS_TWINS = [
    ("resnet50", "ResNet50", 224, _keras_conv_biases),
    ("vgg16", "VGG16", 224, None),
    ("inception_v3", "InceptionV3", 299, None),
    ("mobilenet_v2", "MobileNetV2", 224, None),
    ("mobilenet_v3_small", "MobileNetV3Small", 224, None),
    ("efficientnet_b0", "EfficientNetB0", 224, _keras_normalization_state),
]


@pytest.mark.parametrize("name,app,size,left_out", KERAS_TWINS, ids=[t[0] for t in KERAS_TWINS])
def test_imagenet_configuration_matches_keras_applications(name, app, size, left_out):
    ours = zoo.build(name, input_shape=(size, size, 3), num_classes=1000)
    theirs = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3))
    dropped = {id(w) for w in (left_out(theirs) if left_out else [])}
    if left_out:
        assert dropped, "the weights said to differ must exist in the keras model"
    trainable = [w for w in theirs.trainable_weights if id(w) not in dropped]
    frozen = [w for w in theirs.non_trainable_weights if id(w) not in dropped]

    assert _count(ours.trainable_weights) == _count(trainable)
    assert _count(ours.non_trainable_weights) == _count(frozen)
    assert _shapes(ours.trainable_weights) == _shapes(trainable)
    assert _shapes(ours.non_trainable_weights) == _shapes(frozen)
    assert ours.output.shape == theirs.output.shape == (None, 1000)


# Parameter counts of the same nets elsewhere: torchvision's resnet18/34 and vgg11, timm's
# vit_tiny_patch16_224. Both count trainable parameters only, not BatchNorm running statistics.
# VGG-11 is built without its 123.6M-parameter classifier (slow to initialize; VGG-16's is
# checked above): torchvision's 132,863,336 minus fc 25088*4096 + 4096*4096 + 4096*1000 + biases.
# ViT-Ti/16: patch embedding 16*16*3*192 + 192, class token 192, positions 197*192, per block
# 2 LayerNorms 4*192, attention 4*(192*192 + 192), MLP 192*768 + 768 + 768*192 + 192; final
# LayerNorm 2*192, head 192*1000 + 1000.
_VIT = 147_648 + 192 + 197 * 192 + 12 * (768 + 4 * 37_056 + 147_456 + 768 + 147_456 + 192)
REFERENCE_COUNTS = [
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("vgg11", 132_863_336 - (102_764_544 + 16_781_312 + 4_097_000)),
    ("vit_tiny16", _VIT + 384 + 193_000),
]


@pytest.mark.parametrize("name,expected", REFERENCE_COUNTS, ids=[c[0] for c in REFERENCE_COUNTS])
def test_imagenet_parameter_count_matches_reference(name, expected):
    model = zoo.build(name, include_top=name != "vgg11")
    assert _count(model.trainable_weights) == expected


def test_vit_tiny16_is_the_timm_size():
    assert REFERENCE_COUNTS[-1][1] == 5_717_416


def test_vgg16_bn_is_torchvisions_less_the_conv_biases():
    model = zoo.build("vgg16", batch_norm=True)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    conv_biases = 64 * 2 + 128 * 2 + 256 * 3 + 512 * 6
    assert trainable == 138_365_992 - conv_biases  # torchvision.models.vgg16_bn
    assert model.get_layer("block5_conv3_bn").axis in (-1, 3)


# ---- small inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,final_side",
    [("resnet18", 4), ("resnet50", 4), ("mobilenet_v2", 2), ("mobilenet_v3_small", 2),
     ("efficientnet_b0", 2)],
)  # fmt: skip
def test_cifar_stem_keeps_resolution_on_32x32(name, final_side):
    with_stem = zoo.build(
        name, tiny=True, input_shape=(32, 32, 3), cifar_stem=True, include_top=False
    )
    without = zoo.build(
        name, tiny=True, input_shape=(32, 32, 3), cifar_stem=False, include_top=False
    )
    assert with_stem.output.shape[1:3] == (final_side, final_side)
    assert without.output.shape[1:3] == (1, 1)
    assert tuple(with_stem(_images(with_stem)).shape[1:3]) == (final_side, final_side)
    stem = with_stem.get_layer("conv1_conv" if name.startswith("resnet") else "stem_conv")
    assert stem.strides == (1, 1)
    if name.startswith("resnet"):
        assert stem.kernel_size == (3, 3)
        assert "pool1_pool" not in [layer.name for layer in with_stem.layers]


@pytest.mark.parametrize(
    "name,final_side,plain_side", [("inception_v3", 7, 75), ("googlenet", 8, 32)]
)
def test_inception_cifar_stem_keeps_every_weight(name, final_side, plain_side):
    """The Inception CIFAR stems change strides and drop pools, nothing with weights."""
    with_stem = zoo.build(
        name, tiny=True, input_shape=(32, 32, 3), cifar_stem=True, include_top=False
    )
    plain = zoo.build(name, tiny=True, input_shape=(plain_side, plain_side, 3), include_top=False)
    assert with_stem.output.shape[1:3] == (final_side, final_side)
    assert tuple(with_stem(_images(with_stem)).shape[1:3]) == (final_side, final_side)
    assert [w.shape for w in with_stem.weights] == [w.shape for w in plain.weights]
    names = {layer.name for layer in with_stem.layers}
    assert not names & {"stem_pool1", "stem_pool2", "pool1", "pool2"}


# One module per family; both poolings where the build is cheap.
FEATURE_CASES = [
    ("resnet18", "avg"),
    ("resnet18", "max"),
    ("vgg11", "avg"),
    ("vgg11", "max"),
    ("googlenet", "max"),
    ("mobilenet_v3_small", "avg"),
    ("efficientnet_b0", "max"),
]


@pytest.mark.parametrize("name,pooling", FEATURE_CASES)
def test_feature_extractor_pooling(name, pooling):
    grid = zoo.build(name, tiny=True, include_top=False)
    pooled = zoo.build(name, tiny=True, include_top=False, pooling=pooling)
    pooled.set_weights(grid.get_weights())  # pooling adds no weights
    x = _images(grid)
    fmap = np.asarray(grid(x))
    assert fmap.ndim == 4
    reduce = np.mean if pooling == "avg" else np.max
    np.testing.assert_allclose(
        np.asarray(pooled(x)), reduce(fmap, axis=(1, 2)), rtol=1e-4, atol=1e-5
    )


def test_vit_feature_extractor_pooling():
    tokens = zoo.build("vit_tiny16", tiny=True, include_top=False)
    assert tokens.output.shape == (None, 1 + 16, 32)  # class token + (32 / 8)^2 patches
    x = _images(tokens)
    seq = np.asarray(tokens(x))
    for pooling, expected in (
        ("token", seq[:, 0]),
        ("avg", seq[:, 1:].mean(axis=1)),
        ("max", seq[:, 1:].max(axis=1)),
    ):
        pooled = zoo.build("vit_tiny16", tiny=True, include_top=False, pooling=pooling)
        pooled.set_weights(tokens.get_weights())
        np.testing.assert_allclose(np.asarray(pooled(x)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", VISION)
def test_unknown_pooling_is_refused(name):
    with pytest.raises(ValueError, match="pooling"):
        zoo.build(name, tiny=True, include_top=False, pooling="mean")


@pytest.mark.parametrize("name", VISION)
def test_tiny_variant_forward_names_and_mixed_precision(name):
    model = zoo.build(name, tiny=True)
    probs = np.asarray(model(_images(model), training=False))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)
    assert model.inputs[0].name == "images"
    assert model.layers[-1].name == "predictions"
    # Built again in the same session: an unnamed layer would now get a "_1" suffix.
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = zoo.build(name, tiny=True)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert [layer.name for layer in mixed.layers] == names
    assert mixed.output.dtype == "float32"  # the classifier computes in float32


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_tiny_variant_trains_one_step(name):
    model = zoo.build(name, tiny=True)
    x = _images(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, np.array([1, 7]))
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# ---- naming contract ------------------------------------------------------------------------


def test_resnet_names_follow_keras_applications():
    names = {layer.name for layer in zoo.build("resnet50", tiny=True, blocks=(1, 1, 2, 1)).layers}
    assert {"conv1_conv", "conv2_block1_1_conv", "conv2_block1_0_conv", "conv4_block2_3_bn",
            "conv5_block1_out", "predictions"} <= names  # fmt: skip
    assert "conv4_block2_0_conv" not in names  # identity shortcut inside a stage


def test_resnet50_is_v1_5():
    model = zoo.build("resnet50", tiny=True)
    assert model.get_layer("conv3_block1_1_conv").strides == (1, 1)
    assert model.get_layer("conv3_block1_2_conv").strides == (2, 2)


def test_vision_modules_do_not_import_tensorflow():
    root = pathlib.Path(zoo.__file__).parent / "vision"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] == "tensorflow" for m in modules), path
