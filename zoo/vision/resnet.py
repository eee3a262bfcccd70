"""ResNet-18/34 (basic blocks) and ResNet-50 v1.5 (bottleneck blocks), He et al. 2016.

Raw pixels in (0..255), class probabilities out: rescaling to 0..1 and the ImageNet mean/std
normalization are layers of the graph. Layer names follow keras.applications
(`conv1_conv`, `conv2_block1_1_conv`, `conv5_block3_out`), so checkpoints map by name.

ResNet-50 is v1.5 (torchvision, NVIDIA): a downsampling bottleneck strides on its 3x3 conv, not on
the first 1x1 (v1, keras.applications); same parameter count, about +0.5% top-1 on ImageNet.
Convolutions have no bias: each one feeds a BatchNormalization, whose mean subtraction cancels a
bias (the original ResNet has none either). So keras.applications.ResNet50, whose convs carry a
bias, has exactly the conv biases more parameters: 25,636,712 against 25,557,032 here.
"""

import functools

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import channel_axis, check_pooling, head, imagenet_normalize

BN = {"momentum": 0.9, "epsilon": 1e-5}
CITATION = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016"


# Search spaces for `python -m training search --space NAME` (format: zoo/vision/cnn.py): the
# stage widths are `width` * (1, 2, 4, 8), so the first stage's width sets them all.
SEARCH_SPACES = {
    "resnet-widths": {"model.overrides.width": {"choice": [16, 24, 32, 48, 64]}},
}


def shortcut(x, filters, stride, name):
    """The identity, or a 1x1 projection (conv + BN, `<name>_0_*`) where the shape changes."""
    axis = channel_axis()
    if stride == 1 and x.shape[axis] == filters:
        return x
    x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
    return layers.BatchNormalization(axis=axis, **BN, name=f"{name}_0_bn")(x)


def basic_block(x, filters, stride=1, name=None):
    """Two 3x3 convs; a 1x1 projection shortcut where the shape changes."""
    axis = channel_axis()
    residual = shortcut(x, filters, stride, name)
    x = layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_1_conv"
    )(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_2_bn")(x)
    x = layers.Add(name=f"{name}_add")([residual, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def bottleneck_block(x, filters, stride=1, name=None, version="1.5"):
    """1x1 reduce, 3x3, 1x1 expand to 4 * filters; the 3x3 carries the stride (v1.5), or the
    first 1x1 does (v1)."""
    axis = channel_axis()
    residual = shortcut(x, 4 * filters, stride, name)
    first, second = (1, stride) if version == "1.5" else (stride, 1)
    x = layers.Conv2D(filters, 1, strides=first, use_bias=False, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(
        filters, 3, strides=second, padding="same", use_bias=False, name=f"{name}_2_conv"
    )(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, use_bias=False, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([residual, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _resnet(
    block,
    blocks,
    width,
    cifar_stem,
    input_shape,
    num_classes,
    include_top,
    pooling,
    classifier_activation,
    name,
    preprocessing="torch",
    version=None,
):
    """Stem, four stages (conv2..conv5, `width` * 1, 2, 4, 8 filters), global pool, classifier."""
    check_pooling(pooling)
    axis = channel_axis()
    inputs = keras.Input(shape=input_shape, name="images")
    x = imagenet_normalize(inputs, preprocessing)
    if version is not None:
        version = str(version)  # `--set model.overrides.version=1` gives a number
        if version not in ("1", "1.5"):
            raise ValueError(f"version must be '1' or '1.5', got {version!r}")
        block = functools.partial(block, version=version)

    if cifar_stem:  # 32x32 inputs: one 3x3 stride-1 conv, no max-pool (He et al. 2016, sec. 4.2)
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(axis=axis, **BN, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    else:  # ImageNet: 7x7 stride-2 conv and 3x3 stride-2 max-pool, /4
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = layers.Conv2D(width, 7, strides=2, use_bias=False, name="conv1_conv")(x)
        x = layers.BatchNormalization(axis=axis, **BN, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)

    for stage, num_blocks in enumerate(blocks):
        for i in range(num_blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            x = block(x, width * 2**stage, stride, name=f"conv{stage + 2}_block{i + 1}")

    outputs = head(x, num_classes, include_top, pooling, classifier_activation)
    return keras.Model(inputs, outputs, name=name)


# `tiny`: 32x32 inputs through the CIFAR stem, 8 base filters, depth kept where it is cheap.
@register(
    "resnet18",
    task="classification",
    input_shape=(224, 224, 3),
    citation=CITATION,
    tiny={"input_shape": (32, 32, 3), "num_classes": 10, "cifar_stem": True, "width": 8},
)
def resnet18(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    cifar_stem=False,
    width=64,
    blocks=(2, 2, 2, 2),
    name="resnet18",
    preprocessing="torch",
):
    """ResNet-18: basic blocks (2, 2, 2, 2), 11.7M parameters at 224x224 / 1000 classes.

    `cifar_stem=True` replaces the 7x7/2 conv and the max-pool by one 3x3 stride-1 conv, so a
    32x32 image reaches the last stage at 4x4 instead of 1x1. `width` is the first stage's filter
    count (64); `blocks` the number of blocks per stage. `preprocessing`: the input scaling
    (zoo/vision/_common.py): "torch" (the zoo's), or "caffe" for keras.applications' weights.
    """
    return _resnet(
        basic_block, blocks, width, cifar_stem, input_shape, num_classes, include_top, pooling,
        classifier_activation, name, preprocessing,
    )  # fmt: skip


@register(
    "resnet34",
    task="classification",
    input_shape=(224, 224, 3),
    citation=CITATION,
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "cifar_stem": True,
        "width": 8,
        "blocks": (1, 1, 1, 1),
    },
)
def resnet34(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    cifar_stem=False,
    width=64,
    blocks=(3, 4, 6, 3),
    name="resnet34",
    preprocessing="torch",
):
    """ResNet-34: basic blocks (3, 4, 6, 3), 21.8M parameters. Arguments as for resnet18."""
    return _resnet(
        basic_block, blocks, width, cifar_stem, input_shape, num_classes, include_top, pooling,
        classifier_activation, name, preprocessing,
    )  # fmt: skip


@register(
    "resnet50",
    task="classification",
    input_shape=(224, 224, 3),
    citation=CITATION + "; v1.5 stride placement as in torchvision and NVIDIA DeepLearningExamples",
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "cifar_stem": True,
        "width": 8,
        "blocks": (1, 1, 1, 1),
    },
)
def resnet50(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    cifar_stem=False,
    width=64,
    blocks=(3, 4, 6, 3),
    name="resnet50",
    preprocessing="torch",
    version="1.5",
):
    """ResNet-50 v1.5: bottleneck blocks (3, 4, 6, 3), 25.6M parameters, 2048 features.

    Arguments as for resnet18; a stage's output has 4 * its `width` filters. keras.applications'
    ResNet50 is `version="1"`, `preprocessing="caffe"`: its weights files load into that by layer
    name (`--set model.init_from=...h5`), with the same outputs (training/transfer.py folds its
    conv biases into the BatchNormalizations).
    """
    return _resnet(
        bottleneck_block, blocks, width, cifar_stem, input_shape, num_classes, include_top,
        pooling, classifier_activation, name, preprocessing, version,
    )  # fmt: skip
