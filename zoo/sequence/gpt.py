"""GPT: a decoder-only Transformer language model, after Karpathy's nanoGPT (GPT-2 blocks).

Token ids [B, T] in, next-token logits [B, T, vocab_size] out (float32). Learned positions,
pre-norm blocks (LayerNorm -> causal self-attention -> residual; LayerNorm -> GELU MLP ->
residual), a final LayerNorm, and an output projection tied to the token embedding by default.
Defaults are nanoGPT's `config/train_shakespeare_char.py` (6 layers, 6 heads, width 384,
context 256, dropout 0.2, 65 characters, no biases).

Position t sees tokens 0..t only. The input length is free by default (`seq_len=None`): any
T <= block_size works with the same weights, as a prompt grows during generation.
As in nanoGPT, weights start from N(0, 0.02) and the MLP output projection from
N(0, 0.02 / sqrt(2 * num_layers)); Keras' MultiHeadAttention takes one initializer for all four
of its projections, so its output projection keeps N(0, 0.02).
"""

import math

import keras
from keras import layers

from zoo.registry import register
from zoo.sequence.layers import (
    PositionalEncoding,
    ReversibleEmbedding,
    attention_sublayer,
    feed_forward_sublayer,
)


@register(
    "gpt",
    task="language_model",
    input_shape=(256,),
    citation="Radford et al. 2019 (GPT-2); Karpathy, nanoGPT (github.com/karpathy/nanoGPT)",
    tiny={
        "vocab_size": 64,
        "block_size": 16,
        "seq_len": 16,
        "num_layers": 1,
        "num_heads": 2,
        "d_model": 32,
        "dropout": 0.0,
    },
)
def gpt(
    vocab_size=65,
    block_size=256,
    seq_len=None,
    num_layers=6,
    num_heads=6,
    d_model=384,
    d_ff=None,
    dropout=0.2,
    bias=False,
    tie_weights=True,
    name="gpt",
):
    """Token + learned position embedding -> pre-norm causal blocks -> LayerNorm -> logits.

    `block_size` is the longest context (rows of the position table); `seq_len` fixes the input
    length (None: any length up to block_size); `d_ff` defaults to 4 * d_model.
    """
    if seq_len is not None and seq_len > block_size:
        raise ValueError(f"seq_len {seq_len} exceeds block_size {block_size}")
    init = keras.initializers.RandomNormal(stddev=0.02)
    proj_init = keras.initializers.RandomNormal(stddev=0.02 / math.sqrt(2 * num_layers))
    common = dict(norm="pre", dropout=dropout, epsilon=1e-5, use_bias=bias, kernel_initializer=init)

    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
    embedding = ReversibleEmbedding(
        vocab_size, d_model, embeddings_initializer=init, name="token_embedding"
    )
    x = embedding(tokens)
    x = PositionalEncoding(block_size, initializer=init, name="position_embedding")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(1, num_layers + 1):
        x = attention_sublayer(
            x,
            name=f"block{i}_attention",
            num_heads=num_heads,
            causal=True,
            attention_dropout=dropout,
            **common,
        )
        x = feed_forward_sublayer(
            x,
            name=f"block{i}_mlp",
            hidden_dim=d_ff or 4 * d_model,
            activation="gelu",
            output_initializer=proj_init,
            **common,
        )
    x = layers.LayerNormalization(epsilon=1e-5, center=bias, name="final_norm")(x)
    if tie_weights:
        x = embedding(x, reverse=True)
        logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    else:
        logits = layers.Dense(
            vocab_size, use_bias=False, kernel_initializer=init, dtype="float32", name="logits"
        )(x)
    return keras.Model(tokens, logits, name=name)
