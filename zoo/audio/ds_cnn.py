"""DS-CNN: the depthwise-separable keyword spotter of "Hello Edge" (Zhang et al. 2017).

A waveform [N,samples] goes through the front end (log-mel or MFCC, optionally normalized per
utterance, SpecAugment in training: frontend.py), then a 10x4 convolution with stride 2 and `blocks`
depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, each with batch normalization and
ReLU), global average pooling and the classifier. The paper's sizes: S is 64 filters and 4
blocks, M 172 and 4, L 276 and 5 (with a stride 2 in the first block).
"""

import keras
from keras import layers

from zoo.audio.frontend import front_end
from zoo.registry import register
from zoo.vision._common import classifier

CITATION = "Zhang et al. 2017, Hello Edge: Keyword Spotting on Microcontrollers, arXiv:1711.07128"
# Hello Edge's features unless `front` says otherwise: 10 MFCCs when asked for, not normalized
FRONT = {"mfcc": 10, "normalize": False}


def _ds_block(x, filters, stride, momentum, name):
    x = layers.DepthwiseConv2D(
        3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw"
    )(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


@register(
    "ds_cnn",
    task="audio_classification",
    input_shape=(16000,),
    citation=CITATION,
    tiny={"filters": 16, "blocks": 2, "front": {"spec_augment": False}, "batch_norm_momentum": 0.9},
)
def ds_cnn(
    input_shape=(16000,),
    num_classes=12,
    sampling_rate=16000,
    filters=64,
    blocks=4,
    first_stride=(2, 2),
    front=None,
    dropout=0.2,
    batch_norm_momentum=0.99,
    classifier_activation="softmax",
    name="ds_cnn",
):
    """DS-CNN keyword spotter (Hello Edge), S size by default.

    `front`: the front end's options (frontend.front_end: features, mfcc, normalize, hop_ms,
    vtlp, spec_augment, ...)."""
    waveform = keras.Input(shape=input_shape, name="waveform")
    x = front_end(waveform, sampling_rate, **{**FRONT, **(front or {})})
    x = layers.Conv2D(
        filters, (10, 4), strides=first_stride, padding="same", use_bias=False, name="conv1"
    )(x)
    x = layers.BatchNormalization(momentum=batch_norm_momentum, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    for i in range(blocks):
        x = _ds_block(x, filters, 1, batch_norm_momentum, f"block{i + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, classifier_activation, dropout or None)
    return keras.Model(waveform, outputs, name=name)
