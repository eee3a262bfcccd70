"""Conformer: a small convolution-augmented Transformer encoder over the log-mels (Gulati et al.
2020), for audio classification and CTC speech recognition.

A waveform [N,samples] goes through the front end (log-mel or MFCC, normalized per utterance,
SpecAugment in training: frontend.py), a convolutional subsampling (two 3x3 convolutions with
stride 2: a quarter of the frames), a dense projection to `dim` plus sinusoidal positions, and
`blocks` Conformer blocks, each

    x + FFN/2 -> x + MHSA -> x + Conv -> x + FFN/2 -> LayerNorm

(FFN: LayerNorm, Dense 4*dim, swish, Dense dim; MHSA: LayerNorm, multi-head self-attention;
Conv: LayerNorm, pointwise to 2*dim, GLU, depthwise 1-D convolution of `kernel_size`, batch
normalization, swish, pointwise). The paper's relative positions are replaced by absolute
sinusoidal ones added once (Vaswani et al.): the input length is fixed, and absolute positions
convert to TFLite without gathers. Two heads, two registered names:

- `conformer` (audio_classification): the frames averaged, then the classifier;
- `conformer_ctc` (speech_recognition): per-frame logits [N,frames/4,K] for CTC, K the
  vocabulary plus the blank, the LAST class.
"""

import keras
import numpy as np
from keras import layers, ops

from zoo.audio.frontend import front_end
from zoo.registry import register
from zoo.vision._common import classifier

CITATION = (
    "Gulati et al. 2020, Conformer: Convolution-augmented Transformer for Speech Recognition, "
    "arXiv:2005.08100"
)
TINY = {"dim": 16, "blocks": 1, "heads": 2, "kernel_size": 7, "front": {"spec_augment": False}}


@keras.saving.register_keras_serializable(package="zoo")
class SinusoidalPositions(layers.Layer):
    """Adds the fixed sinusoidal position encoding of "Attention Is All You Need" to [N,T,D]."""

    def call(self, x):
        length, dim = x.shape[1], x.shape[2]
        position = np.arange(length)[:, None]
        rate = 1.0 / (10000.0 ** (np.arange(0, dim, 2) / dim))
        table = np.zeros((length, dim), "float32")
        table[:, 0::2] = np.sin(position * rate)
        table[:, 1::2] = np.cos(position * rate)[:, : dim // 2]
        return x + ops.cast(ops.convert_to_tensor(table)[None], x.dtype)


def _feed_forward(x, dim, dropout, name):
    y = layers.LayerNormalization(name=f"{name}_norm")(x)
    y = layers.Dense(4 * dim, activation="swish", name=f"{name}_dense1")(y)
    y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = layers.Dense(dim, name=f"{name}_dense2")(y)
    y = layers.Rescaling(0.5, name=f"{name}_half")(y)  # the macaron's half step
    return layers.Add(name=f"{name}_add")([x, y])


def _attention(x, dim, heads, dropout, name):
    y = layers.LayerNormalization(name=f"{name}_norm")(x)
    y = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name=f"{name}_mhsa")(y, y)
    y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _convolution(x, dim, kernel_size, momentum, dropout, name):
    y = layers.LayerNormalization(name=f"{name}_norm")(x)
    # pointwise to 2*dim then GLU, written as its two halves (no Lambda: .keras files load)
    value = layers.Dense(dim, name=f"{name}_pointwise1")(y)
    gate = layers.Dense(dim, activation="sigmoid", name=f"{name}_pointwise1_gate")(y)
    y = layers.Multiply(name=f"{name}_glu")([value, gate])
    y = layers.DepthwiseConv1D(kernel_size, padding="same", name=f"{name}_depthwise")(y)
    y = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(y)
    y = layers.Activation("swish", name=f"{name}_swish")(y)
    y = layers.Dense(dim, name=f"{name}_pointwise2")(y)
    y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return layers.Add(name=f"{name}_add")([x, y])


@register(
    "conformer",
    task="audio_classification",
    input_shape=(8000,),
    citation=CITATION,
    tiny={**TINY, "input_shape": (4000,)},
)
@register(
    "conformer_ctc",
    task="speech_recognition",
    input_shape=(32000,),
    citation=CITATION,
    tiny={**TINY, "input_shape": (8000,)},
    ctc=True,
    num_classes=11,
)
def conformer(
    input_shape=(8000,),
    num_classes=10,
    sampling_rate=8000,
    ctc=False,
    dim=96,
    blocks=4,
    heads=4,
    kernel_size=15,
    subsampling_filters=64,
    front=None,
    dropout=0.1,
    batch_norm_momentum=0.9,
    classifier_activation="softmax",
    name=None,
):
    """Conformer encoder (small): a classifier, or per-frame CTC logits.

    `front`: the front end's options (frontend.front_end: features, mfcc, normalize, hop_ms,
    vtlp, spec_augment, ...)."""
    waveform = keras.Input(shape=input_shape, name="waveform")
    x = front_end(waveform, sampling_rate, **(front or {}))
    for i in range(2):
        x = layers.Conv2D(
            subsampling_filters, 3, strides=2, padding="same", name=f"subsample{i + 1}_conv"
        )(x)
        x = layers.ReLU(name=f"subsample{i + 1}_relu")(x)
    frames, bins, channels = x.shape[1], x.shape[2], x.shape[3]
    x = layers.Reshape((frames, bins * channels), name="flatten")(x)
    x = layers.Dense(dim, name="projection")(x)
    x = SinusoidalPositions(name="positions")(x)
    x = layers.Dropout(dropout, name="projection_dropout")(x)
    for i in range(blocks):
        block = f"block{i + 1}"
        x = _feed_forward(x, dim, dropout, f"{block}_ffn1")
        x = _attention(x, dim, heads, dropout, f"{block}_attention")
        x = _convolution(x, dim, kernel_size, batch_norm_momentum, dropout, f"{block}_conv")
        x = _feed_forward(x, dim, dropout, f"{block}_ffn2")
        x = layers.LayerNormalization(name=f"{block}_norm")(x)
    if ctc:
        outputs = layers.Dense(num_classes, dtype="float32", name="ctc_logits")(x)
        return keras.Model(waveform, outputs, name=name or "conformer_ctc")
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, classifier_activation, dropout or None)
    return keras.Model(waveform, outputs, name=name or "conformer")
