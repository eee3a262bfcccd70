"""DeepLabV3+ (Chen et al. 2018): atrous spatial pyramid pooling on a backbone's stride-16 map,
and a decoder that joins it, upsampled 4x, with the backbone's stride-4 features.

The backbone is any zoo convnet, taken by name (`backbone="mobilenet_v2"`, `"resnet50"`, ...)
through zoo.vision.backbones.feature_levels, with its own arguments in `backbone_overrides`
(`{"alpha": 0.35}`); its preprocessing (rescaling, normalization) stays in the graph, so the model
takes raw pixels (0..255). The encoder's map is C4 (stride 16, the paper's output stride 16) and
the decoder's low-level features C2 (stride 4). The paper reaches output stride 16 by making the
last stage atrous instead of strided; the zoo's backbones stride as published, so the stride-16
map here is the last one before the fifth stage, as in keras-io's DeepLabV3+ example on ResNet-50.

ASPP: a 1x1 conv, three 3x3 convs dilated by `atrous_rates` (the paper's 6, 12, 18 are for
513x513 inputs, a 33x33 map; on a 128x128 input the map is 8x8 and rates past 8 see only its
centre tap, so small inputs want small rates), and image pooling (global average, 1x1 conv, spread
back over the map); concatenated and projected to `aspp_filters`. Decoder: the low-level features
reduced to `low_level_filters` (48) by a 1x1 conv, two 3x3 convs of `decoder_filters`, a 1x1
classifier, upsampled 4x (bilinear) to the input's resolution; softmax per pixel. Every conv is
followed by batch normalization (momentum 0.9, as the U-Net's) and ReLU; `output_bias` starts the
classifier at given biases (e.g. log class frequencies), as the U-Net's.
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.vision.backbones import feature_levels


def _conv_bn(x, filters, kernel, name, dilation=1):
    x = layers.Conv2D(
        filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=name
    )(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def aspp(x, filters, rates, dropout=0.1):
    """Atrous spatial pyramid pooling: 1x1, 3x3 at each rate, image pooling; then a 1x1."""
    height, width = x.shape[1], x.shape[2]
    branches = [_conv_bn(x, filters, 1, "aspp_1x1")]
    for rate in rates:
        branches.append(_conv_bn(x, filters, 3, f"aspp_rate{rate}", dilation=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = _conv_bn(pooled, filters, 1, "aspp_pool_conv")
    branches.append(layers.UpSampling2D((height, width), name="aspp_pool_spread")(pooled))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn(x, filters, 1, "aspp_project")
    return layers.Dropout(dropout, name="aspp_dropout")(x) if dropout else x


@register(
    "deeplabv3_plus",
    task="segmentation",
    input_shape=(512, 512, 3),
    citation="Chen, Zhu, Papandreou, Schroff & Adam 2018, Encoder-Decoder with Atrous Separable "
    "Convolution for Semantic Image Segmentation (DeepLabV3+)",
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 3,
        "backbone": "mobilenet_v2",
        "backbone_overrides": {"alpha": 0.25},
        "atrous_rates": (1, 2),
        "aspp_filters": 8,
        "low_level_filters": 4,
        "decoder_filters": 8,
    },
)
def deeplabv3_plus(
    input_shape=(512, 512, 3),
    num_classes=21,
    backbone="resnet50",
    backbone_overrides=None,
    atrous_rates=(6, 12, 18),
    aspp_filters=256,
    low_level_filters=48,
    decoder_filters=256,
    dropout=0.1,
    output_bias=None,
    name="deeplabv3_plus",
):
    """ASPP on a zoo backbone's stride-16 map, a decoder on its stride-4 map; per-pixel softmax."""
    if input_shape[0] % 16 or input_shape[1] % 16:
        raise ValueError(
            f"deeplabv3_plus: input height and width {input_shape[:2]} must be divisible by 16"
        )
    trunk = feature_levels(backbone, input_shape, (2, 4), **dict(backbone_overrides or {}))
    inputs, (low, high) = trunk.inputs[0], trunk.outputs  # one flat graph, the backbone's names
    x = aspp(high, aspp_filters, atrous_rates, dropout)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="decoder_upsample")(x)
    low = _conv_bn(low, low_level_filters, 1, "decoder_low_level")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn(x, decoder_filters, 3, "decoder_conv1")
    x = _conv_bn(x, decoder_filters, 3, "decoder_conv2")
    bias = "zeros" if output_bias is None else keras.initializers.Constant(list(output_bias))
    x = layers.Conv2D(num_classes, 1, bias_initializer=bias, name="logits")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="upsample")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
