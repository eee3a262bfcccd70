"""Shared pieces of the sequence models: small custom layers and the two Transformer sublayers.

Custom layers are registered as `zoo>Name` so a `.keras` file loads without `custom_objects`
(importing `zoo` registers them). The sublayer functions build named standard Keras layers into a
functional graph (`block1_attention`, `block1_attention_norm`, ...), so weights map by layer name.
`transfer_weights` copies weights between two models by layer name (pretrained encoder into a
classifier, a trained char-rnn into its step model).
"""

import math

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="zoo")
class PaddingMask(layers.Layer):
    """Token ids [B, T] -> bool [B, T], True where the token is not `pad_id`."""

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = pad_id

    def call(self, tokens):
        return ops.not_equal(tokens, self.pad_id)

    def compute_output_spec(self, tokens):
        return keras.KerasTensor(tokens.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package="zoo")
class PositionalEncoding(layers.Layer):
    """Adds a position signal to [B, T, D] embeddings: "learned" (a table of `max_length` rows,
    as in GPT/BERT) or "sinusoidal" (Vaswani et al. sec. 3.5: sin on even, cos on odd channels;
    no weights, any length). Any T <= max_length works, so one set of weights serves all lengths.
    """

    def __init__(self, max_length, kind="learned", initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("learned", "sinusoidal"):
            raise ValueError(f"kind must be 'learned' or 'sinusoidal', got {kind!r}")
        self.max_length = int(max_length)
        self.kind = kind
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.kind == "sinusoidal" and dim % 2:
            raise ValueError(f"sinusoidal positions need an even width, got {dim}")
        if self.kind == "learned":
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=(self.max_length, dim),
                initializer=self.initializer,
            )

    def call(self, x):
        length, dim = ops.shape(x)[1], x.shape[-1]
        if self.kind == "learned":
            table = ops.convert_to_tensor(self.position_embeddings)  # jax.jit: no Variables in lax
            positions = ops.slice(table, (0, 0), (length, dim))
        else:
            position = ops.expand_dims(ops.cast(ops.arange(length), "float32"), 1)
            frequency = ops.exp(ops.arange(0, dim, 2, dtype="float32") * (-math.log(1e4) / dim))
            angles = position * ops.expand_dims(frequency, 0)  # [T, D/2]
            positions = ops.reshape(ops.stack([ops.sin(angles), ops.cos(angles)], -1), (-1, dim))
        return x + ops.cast(ops.expand_dims(positions, 0), x.dtype)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds max_length {self.max_length}")
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_length": self.max_length,
            "kind": self.kind,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="zoo")
class ReversibleEmbedding(layers.Embedding):
    """An Embedding that also maps back to the vocabulary: `layer(h, reverse=True)` is
    `h @ embeddings.T`, the tied output projection (Press & Wolf 2017) of GPT-2/nanoGPT and BERT.
    """

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        kernel = ops.cast(ops.transpose(self.embeddings), self.compute_dtype)
        return ops.matmul(inputs, kernel)

    def compute_output_spec(self, inputs, reverse=False):
        if not reverse:
            return super().compute_output_spec(inputs)
        return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="zoo")
class BiasAdd(layers.Layer):
    """Adds a learned bias over the last axis (BERT's output bias on top of tied MLM logits)."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x + ops.cast(self.bias, x.dtype)


@keras.saving.register_keras_serializable(package="zoo")
class TokenSelect(layers.Layer):
    """[B, T, D] -> [B, D]: the hidden state at one position (BERT's [CLS] at index 0)."""

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, self.index, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="zoo")
class TimeReverse(layers.Layer):
    """Flips [B, T, ...] along time; the padding mask passes through unchanged. Puts the outputs of
    an RNN run with `go_backwards=True` back in input order."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x):
        return ops.flip(x, axis=1)


def _check_norm(norm):
    if norm not in ("post", "pre"):
        raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")


def attention_sublayer(
    x,
    context=None,
    *,
    name,
    num_heads,
    norm="post",
    causal=False,
    context_mask=None,
    dropout=0.0,
    attention_dropout=0.0,
    epsilon=1e-6,
    use_bias=True,
    kernel_initializer="glorot_uniform",
):
    """Residual multi-head attention: `x + Dropout(MHA(x, context))`, with the LayerNorm after
    the sum ("post", Vaswani/BERT) or on the sublayer input ("pre", GPT-2). `context` defaults to
    `x` (self-attention); `context_mask` [B, S] hides padded keys; `causal` hides later keys.
    """
    _check_norm(norm)
    width = x.shape[-1]
    norm_layer = layers.LayerNormalization(epsilon=epsilon, center=use_bias, name=f"{name}_norm")
    h = norm_layer(x) if norm == "pre" else x
    kv = h if context is None else context
    h = layers.MultiHeadAttention(
        num_heads,
        key_dim=width // num_heads,
        dropout=attention_dropout,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=name,
    )(h, kv, value_mask=context_mask, use_causal_mask=causal)
    h = layers.Dropout(dropout, name=f"{name}_dropout")(h)
    x = layers.Add(name=f"{name}_add")([x, h])
    if norm == "post":
        x = norm_layer(x)
    return x


def feed_forward_sublayer(
    x,
    *,
    name,
    hidden_dim,
    activation="relu",
    norm="post",
    dropout=0.0,
    epsilon=1e-6,
    use_bias=True,
    kernel_initializer="glorot_uniform",
    output_initializer=None,
):
    """Residual position-wise MLP: `x + Dropout(Dense(act(Dense(x))))`, norm placed as above."""
    _check_norm(norm)
    width = x.shape[-1]
    norm_layer = layers.LayerNormalization(epsilon=epsilon, center=use_bias, name=f"{name}_norm")
    h = norm_layer(x) if norm == "pre" else x
    h = layers.Dense(
        hidden_dim,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=f"{name}_dense1",
    )(h)
    h = layers.Dense(
        width,
        use_bias=use_bias,
        kernel_initializer=output_initializer or kernel_initializer,
        name=f"{name}_dense2",
    )(h)
    h = layers.Dropout(dropout, name=f"{name}_dropout")(h)
    x = layers.Add(name=f"{name}_add")([x, h])
    if norm == "post":
        x = norm_layer(x)
    return x


def transfer_weights(source, target):
    """Copy weights from `source` into every layer of `target` with the same name; returns the
    names copied. Layers found in only one model are left alone; a shared name whose weights
    differ in shape raises, since that is a different architecture rather than a missing head.
    """
    copied = []
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        src = by_name.get(layer.name)
        if src is None or not layer.weights:
            continue
        src_shapes = [tuple(w.shape) for w in src.weights]
        dst_shapes = [tuple(w.shape) for w in layer.weights]
        if src_shapes != dst_shapes:
            raise ValueError(f"layer {layer.name!r}: shapes {src_shapes} != {dst_shapes}")
        layer.set_weights(src.get_weights())
        copied.append(layer.name)
    return copied
