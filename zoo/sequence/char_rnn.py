"""Karpathy's char-rnn: a character-level LSTM language model (2 layers of 128, sequences of 50).

`char_rnn` is the training model: character ids [B, seq_len] in, next-character logits
[B, seq_len, vocab_size] out (float32; the loss applies the softmax). Karpathy feeds one-hot
vectors; an Embedding is the same thing factored (a one-hot vector times a weight matrix picks a
row), and lets the input width be chosen.

`char_rnn_step` is the same network for generation: it also takes the LSTM states and returns
the new ones, so text is produced one character at a time without re-reading the prefix. Its
layers carry the training model's names, so `char_rnn_step(..., weights_from=model)` (or
`zoo.sequence.layers.transfer_weights`) gives it the trained weights:

    step = char_rnn_step(vocab_size=65, weights_from=model)
    state = {k: np.zeros((1, 128), "float32") for k in ("h1", "c1", "h2", "c2")}
    out = step({"tokens": prompt_ids[None], **state})   # any prompt length, then length 1
    state = {k: v for k, v in out.items() if k != "logits"}
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.sequence.layers import transfer_weights


@register(
    "char_rnn",
    task="language_model",
    input_shape=(50,),
    citation="Karpathy 2015, The Unreasonable Effectiveness of Recurrent Neural Networks "
    "(github.com/karpathy/char-rnn)",
    tiny={"vocab_size": 32, "seq_len": 16, "embed_dim": 16, "units": 32, "num_layers": 1},
)
def char_rnn(
    vocab_size=65,
    seq_len=50,
    embed_dim=64,
    units=128,
    num_layers=2,
    dropout=0.0,
    unroll=False,
    name="char_rnn",
):
    """Embedding -> LSTM x num_layers (all steps) -> next-character logits at every step.

    `unroll=True` (fixed seq_len) is the same function and weights as a static graph, the form
    that converts to builtin TFLite ops.
    """
    if unroll and seq_len is None:
        raise ValueError("unroll=True needs a fixed seq_len")
    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embed_dim, name="embedding")(tokens)
    for i in range(1, num_layers + 1):
        x = layers.LSTM(units, return_sequences=True, unroll=unroll, name=f"lstm{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    logits = layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(tokens, logits, name=name)


def char_rnn_step(
    vocab_size=65,
    embed_dim=64,
    units=128,
    num_layers=2,
    weights_from=None,
    name="char_rnn_step",
):
    """The char-rnn with explicit state, for generation.

    Inputs: `tokens` int32 [B, T] (any T) and `h{i}`, `c{i}` float32 [B, units] per layer (zeros
    to start). Outputs a dict: `logits` [B, T, vocab_size] and the states after the last step
    under the same `h{i}`/`c{i}` keys, ready to feed back.
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    states = {}
    for i in range(1, num_layers + 1):
        states[f"h{i}"] = keras.Input(shape=(units,), name=f"h{i}")
        states[f"c{i}"] = keras.Input(shape=(units,), name=f"c{i}")
    x = layers.Embedding(vocab_size, embed_dim, name="embedding")(tokens)
    outputs = {}
    for i in range(1, num_layers + 1):
        rnn = layers.LSTM(units, return_sequences=True, return_state=True, name=f"lstm{i}")
        x, outputs[f"h{i}"], outputs[f"c{i}"] = rnn(
            x, initial_state=[states[f"h{i}"], states[f"c{i}"]]
        )
    outputs = {"logits": layers.Dense(vocab_size, dtype="float32", name="logits")(x), **outputs}
    model = keras.Model({"tokens": tokens, **states}, outputs, name=name)
    if weights_from is not None:
        transfer_weights(weights_from, model)
    return model
