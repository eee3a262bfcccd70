"""The LSTM text classifier (keras-io examples/nlp/bidirectional_lstm_imdb.py).

Token ids in (0 = padding), class probabilities out: Embedding(mask_zero) -> stacked (bi)LSTM ->
Dense softmax. The padding mask flows from the embedding into the LSTMs, so padded steps are
skipped. `unroll=True` (needs a fixed `seq_len`) computes the same function with the same weights
as a static graph, which is what converts to builtin TFLite ops; the default loop does not.

A bidirectional layer is spelled out as two LSTMs, `bilstm{i}_forward` and `bilstm{i}_backward`
(reading the sequence end to start, its outputs flipped back into input order), concatenated as
`bilstm{i}`. `layers.Bidirectional` computes the same, but unrolled with a mask it zeroes the wrong
steps of the backward outputs it returns to the next layer (Keras 3.15: the time-major mask is not
reversed with them), so the unrolled model would disagree with the looped one.
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.sequence.layers import TimeReverse


@register(
    "lstm",
    task="text_classification",
    input_shape=(200,),
    citation="Hochreiter & Schmidhuber 1997; keras-io examples/nlp/bidirectional_lstm_imdb.py",
    tiny={"vocab_size": 64, "seq_len": 12, "embed_dim": 16, "units": 16, "num_layers": 1},
)
def lstm(
    vocab_size=20000,
    seq_len=200,
    embed_dim=128,
    units=64,
    num_layers=2,
    bidirectional=True,
    dropout=0.0,
    num_classes=2,
    unroll=False,
    classifier_activation="softmax",
    name="lstm",
):
    """Embedding -> (bi)LSTM x num_layers -> dense softmax over `num_classes`."""
    if unroll and seq_len is None:
        raise ValueError("unroll=True needs a fixed seq_len")
    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True, name="embedding")(tokens)
    for i in range(1, num_layers + 1):
        sequences = i < num_layers  # all steps feed the next layer; the last gives its final state
        if not bidirectional:
            x = layers.LSTM(units, return_sequences=sequences, unroll=unroll, name=f"lstm{i}")(x)
        else:
            forward = layers.LSTM(
                units, return_sequences=sequences, unroll=unroll, name=f"bilstm{i}_forward"
            )(x)
            backward = layers.LSTM(
                units,
                return_sequences=sequences,
                go_backwards=True,
                unroll=unroll,
                name=f"bilstm{i}_backward",
            )(x)
            if sequences:
                backward = TimeReverse(name=f"bilstm{i}_reverse")(backward)
            x = layers.Concatenate(name=f"bilstm{i}")([forward, backward])
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(tokens, outputs, name=name)
