"""A ConvLSTM video classifier: each frame through a small strided conv stem, then stacked
convolutional LSTMs over time (Shi et al. 2015, "Convolutional LSTM Network"), the last state
pooled and classified.

Clips [N,T,H,W,C] of raw pixels (0..255) in, class probabilities out; the rescaling to 0..1 is the
first layer. The per-frame stem is a Conv3D with a 1 x k x k kernel (a 2D conv of every frame,
`stem_conv`, `stem_bn`, `stem_relu`); then `convlstm<i>` (with `convlstm<i>_bn`), the last
returning only its final state; `avg_pool`, `top_dropout`, `predictions`. `unroll=True` (the
default) unrolls the recurrence over the clip's fixed frames, as the zoo's LSTMs do for TFLite,
whose converter does not take the Keras recurrent loop's TensorList ops. `batch_norm_momentum`:
Keras' 0.99 by default, lower for runs of a few hundred steps (their moving statistics would still
remember their initial values when scored).
"""

import keras
from keras import layers

from zoo.registry import register


@register(
    "convlstm",
    task="video_classification",
    input_shape=(16, 64, 64, 1),
    citation="Shi et al. 2015, Convolutional LSTM Network: A Machine Learning Approach for "
    "Precipitation Nowcasting",
    tiny={
        "input_shape": (8, 32, 32, 1),
        "stem_filters": 8,
        "filters": (16,),
        "batch_norm_momentum": 0.9,
    },
)
def convlstm(
    input_shape=(16, 64, 64, 1),
    num_classes=8,
    stem_filters=16,
    stem_kernel=5,
    stem_stride=2,
    filters=(32, 32),
    kernel_size=3,
    pool_stride=2,
    dropout=0.0,
    batch_norm_momentum=0.99,
    unroll=True,
    classifier_activation="softmax",
    name="convlstm",
):
    """A strided per-frame conv stem, stacked ConvLSTM2D layers (2x2 spatial pooling between
    them), global average pooling of the last state and a softmax classifier."""
    if len(input_shape) != 4:
        raise ValueError(
            f"input_shape must be (frames, height, width, channels), got {input_shape}"
        )
    if not filters:
        raise ValueError("filters must list at least one ConvLSTM layer's channels")
    inputs = keras.Input(shape=input_shape, name="videos")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Conv3D(
        stem_filters, (1, stem_kernel, stem_kernel), strides=(1, stem_stride, stem_stride),
        padding="same", use_bias=False, name="stem_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    for i, f in enumerate(filters, start=1):
        last = i == len(filters)
        if i > 1 and pool_stride > 1:
            x = layers.MaxPooling3D(
                (1, pool_stride, pool_stride), name=f"convlstm{i}_pool"
            )(x)  # fmt: skip
        x = layers.ConvLSTM2D(
            f, kernel_size, padding="same", return_sequences=not last, unroll=unroll,
            name=f"convlstm{i}",
        )(x)  # fmt: skip
        x = layers.BatchNormalization(name=f"convlstm{i}_bn")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)  # fmt: skip
    model = keras.Model(inputs, outputs, name=name)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    return model
