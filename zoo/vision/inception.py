"""Inception-v3 (Szegedy et al. 2016) and GoogLeNet (Inception-v1, Szegedy et al. 2015).

Raw pixels in (0..255), class probabilities out; the rescaling to -1..1 (the TF-slim Inception
preprocessing) is a layer of the graph. Every conv is conv -> BatchNormalization(scale=False) ->
ReLU, named `<name>_conv`, `<name>_bn`, `<name>_relu`; the modules are named as in
keras.applications (`mixed0` .. `mixed10`), their branches `mixed0_branch5x5_2` and so on.

Inception-v3 equals keras.applications.InceptionV3 in parameter count and weight shapes; like it,
it has no auxiliary classifier (training with one is a recipe matter, not a different net). The
paper's dropout (0.2, keep 0.8) before the classifier is here. The smallest input is 75x75.

GoogLeNet follows the paper's table 1 (5x5 convs in the 5x5 branch) with BatchNormalization in
place of local response normalization, as in torchvision, and without its auxiliary classifiers.

`cifar_stem=True` (32x32 inputs) keeps every weight and changes only strides and pooling: in
Inception-v3 the five stem convs run at stride 1 with "same" padding and both stem max-pools go,
so the modules see 32x32, 15x15 and 7x7 (ImageNet: 35, 17, 8; without it the smallest input is
75x75); in GoogLeNet conv1 runs at stride 1 and pool1/pool2 go, so the stages see 32, 16 and 8
(ImageNet: 28, 14, 7).
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import channel_axis, check_pooling, head


def conv_bn(x, filters, kernel_size, strides=1, padding="same", name=None):
    """Conv (no bias) -> BatchNormalization without scale (a ReLU and a conv follow) -> ReLU."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(
        axis=channel_axis(), scale=False, epsilon=1e-3, name=f"{name}_bn"
    )(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


# ---- Inception-v3 ---------------------------------------------------------------------------


def inception_a(x, pool_filters, f, name):
    """35x35 module (figure 5): 1x1, 5x5, double 3x3 and pooled branches."""
    b1 = conv_bn(x, f(64), 1, name=f"{name}_branch1x1")
    b5 = conv_bn(x, f(48), 1, name=f"{name}_branch5x5_1")
    b5 = conv_bn(b5, f(64), 5, name=f"{name}_branch5x5_2")
    b3 = conv_bn(x, f(64), 1, name=f"{name}_branch3x3dbl_1")
    b3 = conv_bn(b3, f(96), 3, name=f"{name}_branch3x3dbl_2")
    b3 = conv_bn(b3, f(96), 3, name=f"{name}_branch3x3dbl_3")
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_branch_pool")(x)
    bp = conv_bn(bp, f(pool_filters), 1, name=f"{name}_branch_pool_proj")
    return layers.Concatenate(axis=channel_axis(), name=name)([b1, b5, b3, bp])


def reduction_a(x, f, name):
    """35x35 -> 17x17: strided 3x3, strided double 3x3 and max-pool branches."""
    b3 = conv_bn(x, f(384), 3, strides=2, padding="valid", name=f"{name}_branch3x3")
    bd = conv_bn(x, f(64), 1, name=f"{name}_branch3x3dbl_1")
    bd = conv_bn(bd, f(96), 3, name=f"{name}_branch3x3dbl_2")
    bd = conv_bn(bd, f(96), 3, strides=2, padding="valid", name=f"{name}_branch3x3dbl_3")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{name}_branch_pool")(x)
    return layers.Concatenate(axis=channel_axis(), name=name)([b3, bd, bp])


def inception_b(x, c7, f, name):
    """17x17 module (figure 6): 7x7 convs factorized into 1x7 and 7x1, `c7` inner filters."""
    b1 = conv_bn(x, f(192), 1, name=f"{name}_branch1x1")
    b7 = conv_bn(x, f(c7), 1, name=f"{name}_branch7x7_1")
    b7 = conv_bn(b7, f(c7), (1, 7), name=f"{name}_branch7x7_2")
    b7 = conv_bn(b7, f(192), (7, 1), name=f"{name}_branch7x7_3")
    bd = conv_bn(x, f(c7), 1, name=f"{name}_branch7x7dbl_1")
    bd = conv_bn(bd, f(c7), (7, 1), name=f"{name}_branch7x7dbl_2")
    bd = conv_bn(bd, f(c7), (1, 7), name=f"{name}_branch7x7dbl_3")
    bd = conv_bn(bd, f(c7), (7, 1), name=f"{name}_branch7x7dbl_4")
    bd = conv_bn(bd, f(192), (1, 7), name=f"{name}_branch7x7dbl_5")
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_branch_pool")(x)
    bp = conv_bn(bp, f(192), 1, name=f"{name}_branch_pool_proj")
    return layers.Concatenate(axis=channel_axis(), name=name)([b1, b7, bd, bp])


def reduction_b(x, f, name):
    """17x17 -> 8x8: strided 3x3, strided 7x7-then-3x3 and max-pool branches."""
    b3 = conv_bn(x, f(192), 1, name=f"{name}_branch3x3_1")
    b3 = conv_bn(b3, f(320), 3, strides=2, padding="valid", name=f"{name}_branch3x3_2")
    b7 = conv_bn(x, f(192), 1, name=f"{name}_branch7x7x3_1")
    b7 = conv_bn(b7, f(192), (1, 7), name=f"{name}_branch7x7x3_2")
    b7 = conv_bn(b7, f(192), (7, 1), name=f"{name}_branch7x7x3_3")
    b7 = conv_bn(b7, f(192), 3, strides=2, padding="valid", name=f"{name}_branch7x7x3_4")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{name}_branch_pool")(x)
    return layers.Concatenate(axis=channel_axis(), name=name)([b3, b7, bp])


def inception_c(x, f, name):
    """8x8 module (figure 7): the 3x3 branches end in parallel 1x3 and 3x1 convs."""
    axis = channel_axis()
    b1 = conv_bn(x, f(320), 1, name=f"{name}_branch1x1")
    b3 = conv_bn(x, f(384), 1, name=f"{name}_branch3x3_1")
    b3 = layers.Concatenate(axis=axis, name=f"{name}_branch3x3")(
        [
            conv_bn(b3, f(384), (1, 3), name=f"{name}_branch3x3_2a"),
            conv_bn(b3, f(384), (3, 1), name=f"{name}_branch3x3_2b"),
        ]
    )
    bd = conv_bn(x, f(448), 1, name=f"{name}_branch3x3dbl_1")
    bd = conv_bn(bd, f(384), 3, name=f"{name}_branch3x3dbl_2")
    bd = layers.Concatenate(axis=axis, name=f"{name}_branch3x3dbl")(
        [
            conv_bn(bd, f(384), (1, 3), name=f"{name}_branch3x3dbl_3a"),
            conv_bn(bd, f(384), (3, 1), name=f"{name}_branch3x3dbl_3b"),
        ]
    )
    bp = layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_branch_pool")(x)
    bp = conv_bn(bp, f(192), 1, name=f"{name}_branch_pool_proj")
    return layers.Concatenate(axis=axis, name=name)([b1, b3, bd, bp])


@register(
    "inception_v3",
    task="classification",
    input_shape=(299, 299, 3),
    citation=(
        "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna. Rethinking the Inception Architecture for "
        "Computer Vision. CVPR 2016"
    ),
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "width_multiplier": 0.0625,
        "cifar_stem": True,
    },
)
def inception_v3(
    input_shape=(299, 299, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    width_multiplier=1.0,
    dropout=0.2,
    cifar_stem=False,
    name="inception_v3",
):
    """Inception-v3: 23.9M parameters at 299x299 / 1000 classes, 2048 features at 8x8.

    `width_multiplier` scales every conv's filters (TF-slim's depth_multiplier, at least 4);
    `cifar_stem=True` runs the stem at stride 1 without its max-pools, for 32x32 inputs.
    """
    check_pooling(pooling)

    def f(filters):
        return max(4, int(filters * width_multiplier))

    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    stride, padding = (1, "same") if cifar_stem else (2, "valid")
    x = conv_bn(x, f(32), 3, strides=stride, padding=padding, name="stem_conv1")  # 149 | 32
    x = conv_bn(x, f(32), 3, padding=padding, name="stem_conv2")  # 147
    x = conv_bn(x, f(64), 3, name="stem_conv3")
    if not cifar_stem:
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool1")(x)  # 73
    x = conv_bn(x, f(80), 1, padding="valid", name="stem_conv4")
    x = conv_bn(x, f(192), 3, padding=padding, name="stem_conv5")  # 71
    if not cifar_stem:
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool2")(x)  # 35 | 32

    x = inception_a(x, 32, f, name="mixed0")
    x = inception_a(x, 64, f, name="mixed1")
    x = inception_a(x, 64, f, name="mixed2")
    x = reduction_a(x, f, name="mixed3")  # 17
    x = inception_b(x, 128, f, name="mixed4")
    x = inception_b(x, 160, f, name="mixed5")
    x = inception_b(x, 160, f, name="mixed6")
    x = inception_b(x, 192, f, name="mixed7")
    x = reduction_b(x, f, name="mixed8")  # 8
    x = inception_c(x, f, name="mixed9")
    x = inception_c(x, f, name="mixed10")

    outputs = head(x, num_classes, include_top, pooling, classifier_activation, dropout)
    return keras.Model(inputs, outputs, name=name)


# ---- GoogLeNet ------------------------------------------------------------------------------

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def inception_v1(x, filters, f, name):
    """Four parallel branches: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1."""
    n1, n3r, n3, n5r, n5, npool = (f(n) for n in filters)
    b1 = conv_bn(x, n1, 1, name=f"{name}_branch1x1")
    b3 = conv_bn(x, n3r, 1, name=f"{name}_branch3x3_reduce")
    b3 = conv_bn(b3, n3, 3, name=f"{name}_branch3x3")
    b5 = conv_bn(x, n5r, 1, name=f"{name}_branch5x5_reduce")
    b5 = conv_bn(b5, n5, 5, name=f"{name}_branch5x5")
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_branch_pool")(x)
    bp = conv_bn(bp, npool, 1, name=f"{name}_branch_pool_proj")
    return layers.Concatenate(axis=channel_axis(), name=name)([b1, b3, b5, bp])


@register(
    "googlenet",
    task="classification",
    input_shape=(224, 224, 3),
    citation="Szegedy et al. Going Deeper with Convolutions. CVPR 2015",
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "width_multiplier": 0.0625,
        "cifar_stem": True,
    },
)
def googlenet(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    width_multiplier=1.0,
    dropout=0.4,
    cifar_stem=False,
    name="googlenet",
):
    """GoogLeNet (Inception-v1) with BatchNormalization: 7.0M parameters, 1024 features at 7x7.

    `width_multiplier` scales every conv's filters (at least 4); `cifar_stem=True` runs conv1 at
    stride 1 without pool1 and pool2, for 32x32 inputs.
    """
    check_pooling(pooling)

    def f(filters):
        return max(4, int(filters * width_multiplier))

    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = conv_bn(x, f(64), 7, strides=1 if cifar_stem else 2, name="conv1")  # 112 | 32
    if not cifar_stem:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)  # 56
    x = conv_bn(x, f(64), 1, name="conv2_reduce")
    x = conv_bn(x, f(192), 3, name="conv2")
    if not cifar_stem:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)  # 28
    for stage, modules in ((3, "ab"), (4, "abcde"), (5, "ab")):
        if stage > 3:  # 14, then 7
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage - 1}")(x)
        for m in modules:
            key = f"{stage}{m}"
            x = inception_v1(x, GOOGLENET_MODULES[key], f, name=f"inception{key}")

    outputs = head(x, num_classes, include_top, pooling, classifier_activation, dropout)
    return keras.Model(inputs, outputs, name=name)
