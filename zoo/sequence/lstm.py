"""The LSTM text classifier (keras-io examples/nlp/bidirectional_lstm_imdb.py).

Token ids in (0 = padding), class probabilities out: Embedding(mask_zero) -> stacked (bi)LSTM ->
Dense softmax. The padding mask flows from the embedding into the LSTMs, so padded steps are
skipped. `unroll=True` (needs a fixed `seq_len`) computes the same function with the same weights
as a static graph, which is what converts to builtin TFLite ops; the default loop does not.
"""

import keras
from keras import layers

from zoo.registry import register


@register(
    "lstm",
    task="classification",
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
        rnn = layers.LSTM(units, return_sequences=i < num_layers, unroll=unroll, name=f"lstm{i}")
        if bidirectional:
            rnn = layers.Bidirectional(rnn, name=f"bilstm{i}")
        x = rnn(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(tokens, outputs, name=name)
