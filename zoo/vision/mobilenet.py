"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-Small (Howard et al. 2019).

Raw pixels in (0..255), class probabilities out; the rescaling to -1..1 that both references use
is a layer of the graph. Inverted residual blocks are named `block<i>_expand_conv`,
`block<i>_dw_conv`, `block<i>_se_reduce`, `block<i>_project_conv`, ...; the stem `stem_*`, the last
1x1 conv `top_*`. Parameter counts and weight shapes equal keras.applications.MobileNetV2 and
MobileNetV3Small at the same `alpha` (MobileNetV3's 1x1 "conv_2"/"logits" on a 1x1 map are Dense
layers here: the same weights). The classifier dropout (0.2) is the papers' / torchvision's.

`cifar_stem=True` makes the stem conv stride 1 (the rest unchanged), so a 32x32 image ends at 2x2
instead of 1x1.
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import channel_axis, check_pooling, classifier, head, make_divisible, pool

BN = {"momentum": 0.99, "epsilon": 1e-3}


def inverted_residual(
    x, expanded, filters, kernel_size, stride, activation, se_filters, se_gate, name
):
    """1x1 expand (skipped when `expanded` equals the input width), depthwise, optional
    squeeze-excite, linear 1x1 projection; a residual add when shapes allow."""
    axis = channel_axis()
    shortcut, in_filters = x, x.shape[axis]
    if expanded != in_filters:
        x = layers.Conv2D(expanded, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}_expand_act")(x)
    x = layers.DepthwiseConv2D(
        kernel_size, strides=stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
    )(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_dw_bn")(x)
    x = layers.Activation(activation, name=f"{name}_dw_act")(x)
    if se_filters:
        se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
        se = layers.Conv2D(se_filters, 1, activation="relu", name=f"{name}_se_reduce")(se)
        se = layers.Conv2D(expanded, 1, activation=se_gate, name=f"{name}_se_expand")(se)
        x = layers.Multiply(name=f"{name}_se_excite")([x, se])
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = layers.BatchNormalization(axis=axis, **BN, name=f"{name}_project_bn")(x)
    if stride == 1 and in_filters == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def _stem(inputs, filters, activation, cifar_stem):
    axis = channel_axis()
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(
        filters, 3, strides=1 if cifar_stem else 2, padding="same", use_bias=False,
        name="stem_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(axis=axis, **BN, name="stem_bn")(x)
    return layers.Activation(activation, name="stem_act")(x)


def _top_conv(x, filters, activation):
    x = layers.Conv2D(filters, 1, use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(axis=channel_axis(), **BN, name="top_bn")(x)
    return layers.Activation(activation, name="top_act")(x)


# MobileNetV2, table 2: expansion t, output channels c, repeats n, first stride s.
V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip


@register(
    "mobilenet_v2",
    task="classification",
    input_shape=(224, 224, 3),
    citation="Sandler et al. MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018",
    tiny={"input_shape": (32, 32, 3), "num_classes": 10, "alpha": 0.25, "cifar_stem": True},
)
def mobilenet_v2(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    alpha=1.0,
    dropout=0.2,
    cifar_stem=False,
    name="mobilenet_v2",
):
    """MobileNetV2: 17 inverted residual blocks (ReLU6), 3.5M parameters at alpha 1.0.

    `alpha` scales every width (the last 1x1 conv keeps 1280 for alpha <= 1); `cifar_stem=True`
    makes the stem stride 1 for 32x32 inputs.
    """
    check_pooling(pooling)
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, make_divisible(32 * alpha), "relu6", cifar_stem)
    i = 0
    for t, c, n, s in V2_BLOCKS:
        for j in range(n):
            i += 1
            in_filters = x.shape[channel_axis()]
            x = inverted_residual(
                x, in_filters * t, make_divisible(int(c * alpha)), 3, s if j == 0 else 1, "relu6",
                None, None, name=f"block{i}",
            )  # fmt: skip
    x = _top_conv(x, make_divisible(1280 * max(alpha, 1.0)), "relu6")

    outputs = head(x, num_classes, include_top, pooling, classifier_activation, dropout)
    return keras.Model(inputs, outputs, name=name)


# MobileNetV3-Small, table 2: kernel, expanded size, output channels, squeeze-excite,
# activation, stride.
V3_SMALL_BLOCKS = [
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1),
    (5, 144, 48, True, "hard_swish", 1),
    (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1),
    (5, 576, 96, True, "hard_swish", 1),
]


@register(
    "mobilenet_v3_small",
    task="classification",
    input_shape=(224, 224, 3),
    citation="Howard et al. Searching for MobileNetV3. ICCV 2019",
    tiny={"input_shape": (32, 32, 3), "num_classes": 10, "alpha": 0.25, "cifar_stem": True},
)
def mobilenet_v3_small(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    alpha=1.0,
    dropout=0.2,
    cifar_stem=False,
    name="mobilenet_v3_small",
):
    """MobileNetV3-Small: 11 blocks, hard-swish and squeeze-excite, 2.6M parameters.

    `alpha` scales the block widths as keras.applications does (the stem's 16 filters, the
    expansion ratios and, for alpha <= 1, the 1024-unit last hidden layer are kept);
    `cifar_stem=True` makes the stem stride 1. With `include_top=False` the output is the last
    conv (576 channels at alpha 1), as in keras.
    """
    check_pooling(pooling)
    axis = channel_axis()
    inputs = keras.Input(shape=input_shape, name="images")
    x = _stem(inputs, 16, "hard_swish", cifar_stem)
    in_alpha1 = 16  # a block's input width at alpha 1: the expansion ratio is exp / in_alpha1
    for i, (k, exp, c, se, act, s) in enumerate(V3_SMALL_BLOCKS, start=1):
        expanded = make_divisible(x.shape[axis] * exp / in_alpha1)
        x = inverted_residual(
            x, expanded, make_divisible(c * alpha), k, s, act,
            make_divisible(expanded / 4) if se else None, "hard_sigmoid", name=f"block{i}",
        )  # fmt: skip
        in_alpha1 = c
    x = _top_conv(x, make_divisible(x.shape[axis] * 6), "hard_swish")

    if include_top:  # the usual head with one more hidden layer between pooling and classifier
        x = pool(x, "avg")
        x = layers.Dense(make_divisible(1024 * max(alpha, 1.0)), name="top_dense")(x)
        x = layers.Activation("hard_swish", name="top_dense_act")(x)
        x = classifier(x, num_classes, classifier_activation, dropout)
    else:
        x = pool(x, pooling)
    return keras.Model(inputs, x, name=name)
