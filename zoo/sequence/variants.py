"""Variants of a trained sequence model, for serving and decoding: same weights, other graphs.

- `unrolled(model)`: every LSTM unrolled (a static graph: what TFLite converts to builtin ops);
- `step_model(model)`: a char-rnn with explicit LSTM state, to generate one character at a time;
- `call_on_tokens(model, tokens)`: run a model whose first input is token ids, zeros for the rest
  (BERT's segment ids).

Pure Keras, like the rest of the zoo: the serving signatures and the training tasks both use them.
"""

import keras

from zoo.sequence.char_rnn import char_rnn_step


def call_on_tokens(model, tokens, training=False):
    """Run a model whose first input is token ids; any further input (BERT's segment ids) gets
    zeros of the same shape."""
    if len(model.inputs) == 1:
        return model(tokens, training=training)
    zeros = keras.ops.zeros_like(tokens)
    return model([tokens] + [zeros] * (len(model.inputs) - 1), training=training)


def _lstms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def step_model(model):
    """For a recurrent language model (char_rnn: `embedding`, LSTMs, `logits`), the same network
    with explicit LSTM state (char_rnn_step) and its weights; None for any other model."""
    lstms = _lstms(model)
    if not lstms:
        return None
    embedding = model.get_layer("embedding")
    return char_rnn_step(
        vocab_size=embedding.input_dim,
        embed_dim=embedding.output_dim,
        units=lstms[0].units,
        num_layers=len(lstms),
        weights_from=model,
    )


def unrolled(model):
    """The model with every LSTM unrolled (same weights); the model itself when it has none."""
    if not _lstms(model):
        return model

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.LSTM):
            config["unroll"] = True
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin
