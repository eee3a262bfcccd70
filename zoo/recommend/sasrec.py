"""SASRec: self-attentive sequential recommendation (Kang & McAuley 2018), the next item from a
user's history.

A history of item ids [N,T] (1..num_items, left-padded with 0, the most recent last) is embedded
(the item table scaled by sqrt(width), plus learned positions), padded positions are zeroed, and
`blocks` causal self-attention blocks (pre-norm: LayerNorm -> attention -> residual, LayerNorm ->
ReLU MLP -> residual, as the paper's Figure 1) run over it, then a final LayerNorm. Position t
sees items 0..t only; its scores for the next item are its output dotted with the same item
table (the paper's shared embedding): `logits` [N,T,num_items+1], index 0 (padding) included,
which a task masks. The paper's ML-1M settings: T=200, width 50, 2 blocks, 1 head, dropout 0.2.
"""

import math

import keras
from keras import layers, ops

from zoo.registry import register
from zoo.sequence.layers import (
    PaddingMask,
    PositionalEncoding,
    ReversibleEmbedding,
    attention_sublayer,
    feed_forward_sublayer,
)

CITATION = "Kang & McAuley 2018, Self-Attentive Sequential Recommendation, arXiv:1808.09781"


@register(
    "sasrec",
    task="sequential_recommendation",
    input_shape=(50,),
    citation=CITATION,
    tiny={"num_items": 50, "embed_dim": 16, "blocks": 1, "heads": 1, "dropout": 0.0},
)
def sasrec(
    input_shape=(50,),
    num_items=1000,
    embed_dim=64,
    blocks=2,
    heads=1,
    dropout=0.2,
    name="sasrec",
):
    """SASRec: causal self-attention over a history of item ids -> next-item logits."""
    (length,) = input_shape
    history = keras.Input(shape=(length,), dtype="int32", name="history")
    embedding = ReversibleEmbedding(num_items + 1, embed_dim, name="item_embedding")
    mask = PaddingMask(name="padding_mask")(history)
    x = embedding(history)
    x = layers.Rescaling(math.sqrt(embed_dim), name="embedding_scale")(x)
    x = PositionalEncoding(length, name="position_embedding")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    keep = ops.expand_dims(ops.cast(mask, "float32"), -1)  # [N,T,1]: 0 at padding
    x = layers.Multiply(name="embedding_mask")([x, keep])
    for i in range(1, blocks + 1):
        x = attention_sublayer(
            x,
            name=f"block{i}_attention",
            num_heads=heads,
            norm="pre",
            causal=True,
            context_mask=mask,
            dropout=dropout,
            attention_dropout=dropout,
        )
        x = feed_forward_sublayer(
            x, name=f"block{i}_mlp", hidden_dim=embed_dim, norm="pre", dropout=dropout
        )
        x = layers.Multiply(name=f"block{i}_mask")([x, keep])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = embedding(x, reverse=True)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(history, logits, name=name)
