"""CRNN: convolutions over the log-mels, then bidirectional recurrent layers over time.

A waveform [N,samples] goes through the front end (log-mel or MFCC, normalized per utterance,
SpecAugment in training: frontend.py), `len(filters)` convolution blocks (3x3 convolution, batch
normalization, ReLU, 2x2 max pooling: time and frequency both halve), the frequency bins and
channels flattened per frame, a dense projection, and `rnn_layers` bidirectional GRU (or LSTM)
layers. Two heads, two registered names (keras.applications' `include_top` idea, one builder):

- `crnn` (audio_classification): the recurrent states averaged over time, then the classifier;
- `crnn_ctc` (speech_recognition): per-frame logits [N,frames/2**blocks,K] for CTC, K the
  vocabulary plus the blank, which is the LAST class (TensorFlow's CTC convention).

`unroll=True` unrolls the recurrent layers (the same weights), which TFLite needs to convert
them to builtin ops (DESIGN.md, Known ground); the frames are fixed by the input length.
"""

import keras
from keras import layers

from zoo.audio.frontend import front_end
from zoo.registry import register
from zoo.vision._common import classifier

CITATION = (
    "Choi et al. 2017, Convolutional Recurrent Neural Networks for Music Classification, "
    "arXiv:1609.04243; Amodei et al. 2016, Deep Speech 2, arXiv:1512.02595 (conv + BiRNN + CTC)"
)
TINY = {
    "filters": (8, 16),
    "rnn_units": 16,
    "rnn_layers": 1,
    "projection": 32,
    "front": {"spec_augment": False},
    "batch_norm_momentum": 0.9,
}


def _conv_block(x, filters, momentum, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)


def _recurrent(kind, units, unroll, name):
    if kind not in ("gru", "lstm"):
        raise ValueError(f"unknown recurrent layer {kind!r} (known: gru, lstm)")
    cell = layers.GRU if kind == "gru" else layers.LSTM
    return cell(units, return_sequences=True, unroll=unroll, name=name)


@register(
    "crnn",
    task="audio_classification",
    input_shape=(8000,),
    citation=CITATION,
    tiny={**TINY, "input_shape": (4000,)},
)
@register(
    "crnn_ctc",
    task="speech_recognition",
    input_shape=(32000,),
    citation=CITATION,
    tiny={**TINY, "input_shape": (8000,)},
    ctc=True,
    num_classes=11,
    dropout=0.1,
)
def crnn(
    input_shape=(8000,),
    num_classes=10,
    sampling_rate=8000,
    ctc=False,
    filters=(32, 64),
    projection=128,
    rnn="gru",
    rnn_units=96,
    rnn_layers=2,
    unroll=False,
    front=None,
    dropout=0.2,
    batch_norm_momentum=0.9,
    classifier_activation="softmax",
    name=None,
):
    """CRNN (conv blocks + bidirectional GRU/LSTM): a classifier, or per-frame CTC logits.

    `front`: the front end's options (frontend.front_end: features, mfcc, normalize, hop_ms,
    vtlp, spec_augment, ...)."""
    waveform = keras.Input(shape=input_shape, name="waveform")
    x = front_end(waveform, sampling_rate, **(front or {}))
    for i, f in enumerate(filters):
        x = _conv_block(x, f, batch_norm_momentum, f"block{i + 1}")
    frames, bins, channels = x.shape[1], x.shape[2], x.shape[3]
    x = layers.Reshape((frames if frames is not None else -1, bins * channels), name="flatten")(x)
    x = layers.Dense(projection, name="projection")(x)
    x = layers.ReLU(name="projection_relu")(x)
    for i in range(rnn_layers):
        rnn_layer = _recurrent(rnn, rnn_units, unroll, f"rnn{i + 1}_{rnn}")
        x = layers.Bidirectional(rnn_layer, name=f"rnn{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"rnn{i + 1}_dropout")(x)
    if ctc:
        outputs = layers.Dense(num_classes, dtype="float32", name="ctc_logits")(x)
        return keras.Model(waveform, outputs, name=name or "crnn_ctc")
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = classifier(x, num_classes, classifier_activation, None)
    return keras.Model(waveform, outputs, name=name or "crnn")
