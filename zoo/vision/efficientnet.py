"""EfficientNet-B0 (Tan & Le 2019): MBConv blocks with squeeze-excite, scaled by two coefficients.

Raw pixels in (0..255), class probabilities out; rescaling and the ImageNet mean/std normalization
are layers of the graph (constants, so they have no weights). Layer names, initializers and the
stochastic depth ("drop connect", a Dropout that drops whole samples) are keras.applications':
`stem_conv`, `block2a_expand_conv`, `block2a_se_reduce`, `block2a_project_bn`, `top_conv`.
Trainable parameters and weight shapes equal keras.applications.EfficientNetB0's; keras' total
has 7 more, the non-trainable mean/variance/count of its (adaptable) Normalization layer.

`cifar_stem=True` makes the stem conv stride 1 (the rest unchanged), so a 32x32 image ends at 2x2
instead of 1x1.
"""

import math

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import channel_axis, check_pooling, head, imagenet_normalize, make_divisible

CONV_INIT = keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")
DENSE_INIT = keras.initializers.VarianceScaling(1 / 3, mode="fan_out", distribution="uniform")

# Table 1 (stages 2-8): kernel, repeats, filters in, filters out, expansion, first stride.
B0_STAGES = [
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
]


def mb_conv(x, filters_in, filters_out, kernel_size, stride, expand_ratio, drop_rate, name):
    """Inverted residual: 1x1 expand, depthwise, squeeze-excite (1/4 of the input width), 1x1
    project; stochastic depth on the residual branch when there is a residual."""
    axis = channel_axis()
    inputs, expanded = x, filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(
            expanded, 1, use_bias=False, kernel_initializer=CONV_INIT, name=f"{name}expand_conv"
        )(x)
        x = layers.BatchNormalization(axis=axis, name=f"{name}expand_bn")(x)
        x = layers.Activation("swish", name=f"{name}expand_activation")(x)
    x = layers.DepthwiseConv2D(
        kernel_size, strides=stride, padding="same", use_bias=False,
        depthwise_initializer=CONV_INIT, name=f"{name}dwconv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(axis=axis, name=f"{name}bn")(x)
    x = layers.Activation("swish", name=f"{name}activation")(x)

    se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}se_squeeze")(x)
    se = layers.Conv2D(
        max(1, filters_in // 4), 1, activation="swish", kernel_initializer=CONV_INIT,
        name=f"{name}se_reduce",
    )(se)  # fmt: skip
    se = layers.Conv2D(
        expanded, 1, activation="sigmoid", kernel_initializer=CONV_INIT, name=f"{name}se_expand"
    )(se)
    x = layers.Multiply(name=f"{name}se_excite")([x, se])

    x = layers.Conv2D(
        filters_out, 1, use_bias=False, kernel_initializer=CONV_INIT, name=f"{name}project_conv"
    )(x)
    x = layers.BatchNormalization(axis=axis, name=f"{name}project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x


def _efficientnet(
    width_coefficient,
    depth_coefficient,
    dropout,
    drop_connect_rate,
    cifar_stem,
    input_shape,
    num_classes,
    include_top,
    pooling,
    classifier_activation,
    name,
):
    """Stem, the seven stages of B0 (widths and repeats scaled), 1x1 top conv, classifier."""
    check_pooling(pooling)
    axis = channel_axis()

    def width(filters):  # scale, round to a multiple of 8, never lose more than 10%
        return make_divisible(filters * width_coefficient)

    def depth(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    inputs = keras.Input(shape=input_shape, name="images")
    x = imagenet_normalize(inputs)
    x = layers.Conv2D(
        width(32), 3, strides=1 if cifar_stem else 2, padding="same", use_bias=False,
        kernel_initializer=CONV_INIT, name="stem_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(axis=axis, name="stem_bn")(x)
    x = layers.Activation("swish", name="stem_activation")(x)

    total_blocks = sum(depth(stage[1]) for stage in B0_STAGES)
    b = 0
    for s, (kernel, repeats, f_in, f_out, expand, stride) in enumerate(B0_STAGES, start=1):
        f_in, f_out = width(f_in), width(f_out)
        for j in range(depth(repeats)):
            x = mb_conv(
                x, f_in if j == 0 else f_out, f_out, kernel, stride if j == 0 else 1, expand,
                drop_connect_rate * b / total_blocks, name=f"block{s}{chr(ord('a') + j)}_",
            )  # fmt: skip
            b += 1

    x = layers.Conv2D(
        width(1280), 1, use_bias=False, kernel_initializer=CONV_INIT, name="top_conv"
    )(x)
    x = layers.BatchNormalization(axis=axis, name="top_bn")(x)
    x = layers.Activation("swish", name="top_activation")(x)

    outputs = head(
        x, num_classes, include_top, pooling, classifier_activation, dropout,
        kernel_initializer=DENSE_INIT,
    )  # fmt: skip
    return keras.Model(inputs, outputs, name=name)


@register(
    "efficientnet_b0",
    task="classification",
    input_shape=(224, 224, 3),
    citation=(
        "Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks. "
        "ICML 2019"
    ),
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "width_coefficient": 0.25,
        "depth_coefficient": 0.25,
        "cifar_stem": True,
    },
)
def efficientnet_b0(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    width_coefficient=1.0,
    depth_coefficient=1.0,
    dropout=0.2,
    drop_connect_rate=0.2,
    cifar_stem=False,
    name="efficientnet_b0",
):
    """EfficientNet-B0: 16 MBConv blocks, 5.3M parameters at 224x224 / 1000 classes.

    `width_coefficient` / `depth_coefficient` scale filters and repeats as the compound scaling
    does (B1..B7 are other coefficients); `cifar_stem=True` makes the stem stride 1.
    """
    return _efficientnet(
        width_coefficient, depth_coefficient, dropout, drop_connect_rate, cifar_stem, input_shape,
        num_classes, include_top, pooling, classifier_activation, name,
    )  # fmt: skip
