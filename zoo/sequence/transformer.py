"""The Transformer encoder-decoder of Vaswani et al. 2017, "Attention Is All You Need".

Source ids [B, S] and shifted target ids [B, T] in (0 = padding), next-target-token logits
[B, T, target_vocab_size] out (float32). Encoder blocks: self-attention + ReLU MLP; decoder
blocks: causal self-attention + attention over the encoder output + ReLU MLP; residual dropout
on every sublayer and on the embedding sums. Defaults are the paper's base model.

Masks: padded source positions are hidden from encoder self-attention and from the decoder's
cross-attention (so padding appended to a source changes no output); decoder self-attention is
causal, so target position t sees targets 0..t only, which also makes trailing target padding
harmless. Options: `positions` "sinusoidal" (paper) or "learned"; `norm` "post" (paper) or
"pre" (with a final LayerNorm on each stack); `share_embeddings` ties the source, target and
output embeddings as the paper does with a joint vocabulary (the two sizes must then match).
The input lengths are free by default (up to the max lengths for learned positions).
"""

import math

import keras
from keras import layers

from zoo.registry import register
from zoo.sequence.layers import (
    PaddingMask,
    PositionalEncoding,
    ReversibleEmbedding,
    attention_sublayer,
    feed_forward_sublayer,
)


@register(
    "transformer",
    task="seq2seq",
    input_shape=(128,),
    citation="Vaswani et al. 2017, Attention Is All You Need",
    tiny={
        "source_vocab_size": 64,
        "target_vocab_size": 64,
        "max_source_length": 16,
        "max_target_length": 16,
        "source_length": 12,
        "target_length": 10,
        "num_layers": 1,
        "d_model": 32,
        "num_heads": 2,
        "d_ff": 64,
        "dropout": 0.0,
    },
)
def transformer(
    source_vocab_size=8192,
    target_vocab_size=8192,
    max_source_length=128,
    max_target_length=128,
    source_length=None,
    target_length=None,
    num_layers=6,
    d_model=512,
    num_heads=8,
    d_ff=2048,
    dropout=0.1,
    positions="sinusoidal",
    norm="post",
    share_embeddings=False,
    pad_id=0,
    name="transformer",
):
    """Encoder stack over `encoder_tokens`, decoder stack over `decoder_tokens`, logits."""
    if share_embeddings and source_vocab_size != target_vocab_size:
        raise ValueError("share_embeddings needs source_vocab_size == target_vocab_size")
    common = dict(norm=norm, dropout=dropout, epsilon=1e-6)
    embed_init = keras.initializers.RandomNormal(stddev=d_model**-0.5)

    def embedding(vocab_size, layer_name):
        return ReversibleEmbedding(
            vocab_size, d_model, embeddings_initializer=embed_init, name=layer_name
        )

    def embed(tokens, embedding_layer, max_length, prefix):
        x = embedding_layer(tokens)
        x = layers.Rescaling(math.sqrt(d_model), name=f"{prefix}_embedding_scale")(x)
        x = PositionalEncoding(max_length, kind=positions, name=f"{prefix}_position_embedding")(x)
        return layers.Dropout(dropout, name=f"{prefix}_embedding_dropout")(x)

    encoder_tokens = keras.Input(shape=(source_length,), dtype="int32", name="encoder_tokens")
    decoder_tokens = keras.Input(shape=(target_length,), dtype="int32", name="decoder_tokens")
    if share_embeddings:
        source_embedding = target_embedding = embedding(source_vocab_size, "shared_embedding")
    else:
        source_embedding = embedding(source_vocab_size, "encoder_token_embedding")
        target_embedding = embedding(target_vocab_size, "decoder_token_embedding")
    source_mask = PaddingMask(pad_id, name="encoder_padding_mask")(encoder_tokens)

    x = embed(encoder_tokens, source_embedding, max_source_length, "encoder")
    for i in range(1, num_layers + 1):
        x = attention_sublayer(
            x,
            name=f"encoder_block{i}_self_attention",
            num_heads=num_heads,
            context_mask=source_mask,
            **common,
        )
        x = feed_forward_sublayer(x, name=f"encoder_block{i}_ffn", hidden_dim=d_ff, **common)
    if norm == "pre":
        x = layers.LayerNormalization(epsilon=1e-6, name="encoder_final_norm")(x)
    encoded = x

    y = embed(decoder_tokens, target_embedding, max_target_length, "decoder")
    for i in range(1, num_layers + 1):
        y = attention_sublayer(
            y, name=f"decoder_block{i}_self_attention", num_heads=num_heads, causal=True, **common
        )
        y = attention_sublayer(
            y,
            encoded,
            name=f"decoder_block{i}_cross_attention",
            num_heads=num_heads,
            context_mask=source_mask,
            **common,
        )
        y = feed_forward_sublayer(y, name=f"decoder_block{i}_ffn", hidden_dim=d_ff, **common)
    if norm == "pre":
        y = layers.LayerNormalization(epsilon=1e-6, name="decoder_final_norm")(y)

    if share_embeddings:
        y = target_embedding(y, reverse=True)
        logits = layers.Activation("linear", dtype="float32", name="logits")(y)
    else:
        logits = layers.Dense(target_vocab_size, dtype="float32", name="logits")(y)
    return keras.Model([encoder_tokens, decoder_tokens], logits, name=name)
