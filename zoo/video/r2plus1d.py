"""R(2+1)D: a ResNet whose 3x3x3 convolutions are each factorised into a 1x3x3 spatial convolution
to M channels, batch normalization and ReLU, then a 3x1x1 temporal convolution (Tran et al. 2018,
"A Closer Look at Spatiotemporal Convolutions for Action Recognition", section 3.5).

Clips [N,T,H,W,C] of raw pixels (0..255, uint8 or float) in, class probabilities out; the
rescaling to 0..1 is the first layer. The 18-layer shape (torchvision's `r2plus1d_18`): a (2+1)D
stem (1x7x7 spatial to 45 channels, stride 2 in space, then 3x1x1 temporal to 64), four stages of
[2, 2, 2, 2] basic blocks of widths 64, 128, 256, 512, the first block of stages 3-5 striding 2 in
time and space; M_i = floor(t d^2 N_{i-1} N_i / (d^2 N_{i-1} + t N_i)) with t = d = 3, the count
that matches the parameters of the 3D convolution it replaces. Layers are named as
keras.applications' resnet (`conv2_block1_1_spatial_conv`, `conv2_block1_1_temporal_bn`,
`conv2_block1_0_conv` for the projection shortcut, `conv2_block1_out`), so checkpoints map by
name; `widths`, `blocks` and `stem_width` make the small variants (`tiny`, the CPU recipe).
Every M here follows the paper's formula for its own conv (torchvision reuses the first conv's M
for the second conv of a block: 31.5M parameters at 400 classes where this one has 33.4M).
`batch_norm_momentum` (Keras' 0.99 by default) is set lower by CPU recipes of a few hundred steps,
whose moving statistics would otherwise still remember their initial values when scored.
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.vision._common import check_pooling

POOLINGS = (None, "avg", "max")


def midplanes(in_channels, out_channels, spatial=3, temporal=3):
    """The (2+1)D block's intermediate channels M that match a t x d x d 3D conv's parameters."""
    return (temporal * spatial**2 * in_channels * out_channels) // (
        spatial**2 * in_channels + temporal * out_channels
    )


def conv2plus1d(x, filters, mid, stride, name, spatial=3, temporal=3):
    """1 x d x d spatial conv to `mid` channels (stride in space), BN, ReLU, then t x 1 x 1
    temporal conv to `filters` (stride in time); no BN/ReLU after (the caller's)."""
    x = layers.Conv3D(
        mid, (1, spatial, spatial), strides=(1, stride, stride), padding="same", use_bias=False,
        name=f"{name}_spatial_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_spatial_bn")(x)
    x = layers.Activation("relu", name=f"{name}_spatial_relu")(x)
    return layers.Conv3D(
        filters, (temporal, 1, 1), strides=(stride, 1, 1), padding="same", use_bias=False,
        name=f"{name}_temporal_conv",
    )(x)  # fmt: skip


def basic_block(x, filters, stride, name):
    """Two (2+1)D convs with a shortcut (a strided 1x1x1 projection when the shape changes)."""
    in_channels = x.shape[-1]
    if stride != 1 or in_channels != filters:
        shortcut = layers.Conv3D(
            filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv"
        )(x)  # fmt: skip
        shortcut = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = conv2plus1d(x, filters, midplanes(in_channels, filters), stride, f"{name}_1")
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_1_temporal_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = conv2plus1d(x, filters, midplanes(filters, filters), 1, f"{name}_2")
    x = layers.BatchNormalization(epsilon=1e-5, name=f"{name}_2_temporal_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _r2plus1d(
    blocks, widths, stem_width, input_shape, include_top, pooling, num_classes, dropout,
    batch_norm_momentum, classifier_activation, name,
):  # fmt: skip
    check_pooling(pooling, POOLINGS)
    if len(blocks) != len(widths) or not blocks or min(blocks) < 1:
        raise ValueError(
            f"blocks {list(blocks)} and widths {list(widths)} must be lists of the same length "
            "(one entry per stage), each stage with at least one block"
        )
    if len(input_shape) != 4:
        raise ValueError(
            f"input_shape must be (frames, height, width, channels), got {input_shape}"
        )
    inputs = keras.Input(shape=input_shape, name="videos")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    # the stem: (2+1)D with a 1x7x7 spatial conv (stride 2 in space), no pooling
    x = layers.Conv3D(
        stem_width, (1, 7, 7), strides=(1, 2, 2), padding="same", use_bias=False,
        name="conv1_spatial_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=1e-5, name="conv1_spatial_bn")(x)
    x = layers.Activation("relu", name="conv1_spatial_relu")(x)
    x = layers.Conv3D(
        widths[0], (3, 1, 1), padding="same", use_bias=False, name="conv1_temporal_conv"
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=1e-5, name="conv1_temporal_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    for stage, (count, filters) in enumerate(zip(blocks, widths), start=2):
        for block in range(1, count + 1):
            stride = 2 if stage > 2 and block == 1 else 1
            x = basic_block(x, filters, stride, f"conv{stage}_block{block}")
    if pooling == "avg" or include_top:
        x = layers.GlobalAveragePooling3D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling3D(name="max_pool")(x)
    if include_top:
        if dropout:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(
            num_classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)  # fmt: skip
    model = keras.Model(inputs, x, name=name)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    return model


@register(
    "r2plus1d_18",
    task="video_classification",
    input_shape=(16, 112, 112, 3),
    citation="Tran et al. 2018, A Closer Look at Spatiotemporal Convolutions for Action "
    "Recognition (R(2+1)D)",
    tiny={
        "input_shape": (8, 32, 32, 1),
        "widths": (8, 16),
        "blocks": (1, 1),
        "stem_width": 8,
        "batch_norm_momentum": 0.9,
    },
)
def r2plus1d_18(
    input_shape=(16, 112, 112, 3),
    num_classes=400,
    include_top=True,
    pooling=None,
    widths=(64, 128, 256, 512),
    blocks=(2, 2, 2, 2),
    stem_width=45,
    dropout=0.0,
    batch_norm_momentum=0.99,
    classifier_activation="softmax",
    name="r2plus1d_18",
):
    """R(2+1)D-18: (2+1)D stem, [2, 2, 2, 2] basic (2+1)D blocks of widths 64-512, softmax head."""
    return _r2plus1d(
        blocks, widths, stem_width, input_shape, include_top, pooling, num_classes, dropout,
        batch_norm_momentum, classifier_activation, name,
    )  # fmt: skip
