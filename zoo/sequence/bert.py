"""A small BERT (Devlin et al. 2019): a post-norm Transformer encoder with two heads.

`bert_mlm` pretrains it: token ids [B, T] (0 = [PAD]) and, if `num_segments`, segment ids
[B, T] in; masked-LM logits over the vocabulary at every position out (float32; the task scores
only the masked positions). The output projection is tied to the token embedding, plus a bias.
`bert_classifier` is the same encoder with the same layer names, then the pooled [CLS] state
(first position, Dense tanh) and a softmax classifier, so pretrained weights move across with
`zoo.sequence.layers.transfer_weights(mlm_model, classifier)`.

Defaults are BERT-Mini (Turc et al. 2019: 4 layers, width 256, 4 heads) on BERT's uncased
30,522-wordpiece vocabulary; padded positions are hidden from attention. Input length is free
by default (up to `max_length`, the rows of the learned position table).
"""

import keras
from keras import layers

from zoo.registry import register
from zoo.sequence.layers import (
    BiasAdd,
    PaddingMask,
    PositionalEncoding,
    ReversibleEmbedding,
    TokenSelect,
    attention_sublayer,
    feed_forward_sublayer,
)

CITATION = "Devlin et al. 2019, BERT; Turc et al. 2019, Well-Read Students Learn Better (BERT-Mini)"
TINY = {
    "vocab_size": 64,
    "max_length": 16,
    "seq_len": 16,
    "num_layers": 1,
    "d_model": 32,
    "num_heads": 2,
    "d_ff": 64,
    "dropout": 0.0,
}


def _bert_encoder(
    vocab_size, seq_len, max_length, num_segments, num_layers, d_model, num_heads, d_ff, dropout
):
    """Inputs, final hidden states [B, T, d_model], and the (tieable) token embedding layer."""
    init = keras.initializers.TruncatedNormal(stddev=0.02)
    common = dict(norm="post", dropout=dropout, epsilon=1e-12, kernel_initializer=init)

    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
    inputs = [tokens]
    token_embedding = ReversibleEmbedding(
        vocab_size, d_model, embeddings_initializer=init, name="token_embedding"
    )
    x = token_embedding(tokens)
    x = PositionalEncoding(max_length, initializer=init, name="position_embedding")(x)
    if num_segments:
        segment_ids = keras.Input(shape=(seq_len,), dtype="int32", name="segment_ids")
        inputs.append(segment_ids)
        s = layers.Embedding(
            num_segments, d_model, embeddings_initializer=init, name="segment_embedding"
        )(segment_ids)
        x = layers.Add(name="embedding_add")([x, s])
    x = layers.LayerNormalization(epsilon=1e-12, name="embedding_norm")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    padding_mask = PaddingMask(0, name="padding_mask")(tokens)
    for i in range(1, num_layers + 1):
        x = attention_sublayer(
            x,
            name=f"block{i}_attention",
            num_heads=num_heads,
            context_mask=padding_mask,
            attention_dropout=dropout,
            **common,
        )
        x = feed_forward_sublayer(
            x, name=f"block{i}_ffn", hidden_dim=d_ff, activation="gelu", **common
        )
    return inputs, x, token_embedding


@register(
    "bert_mlm", task="masked_language_model", input_shape=(128,), citation=CITATION, tiny=TINY
)
def bert_mlm(
    vocab_size=30522,
    seq_len=None,
    max_length=512,
    num_segments=2,
    num_layers=4,
    d_model=256,
    num_heads=4,
    d_ff=1024,
    dropout=0.1,
    name="bert_mlm",
):
    """BERT encoder -> Dense gelu -> LayerNorm -> tied vocabulary projection + bias."""
    inputs, x, token_embedding = _bert_encoder(
        vocab_size, seq_len, max_length, num_segments, num_layers, d_model, num_heads, d_ff, dropout
    )
    init = keras.initializers.TruncatedNormal(stddev=0.02)
    x = layers.Dense(d_model, activation="gelu", kernel_initializer=init, name="mlm_dense")(x)
    x = layers.LayerNormalization(epsilon=1e-12, name="mlm_norm")(x)
    x = token_embedding(x, reverse=True)
    logits = BiasAdd(dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


@register(
    "bert_classifier", task="text_classification", input_shape=(128,), citation=CITATION, tiny=TINY
)
def bert_classifier(
    vocab_size=30522,
    seq_len=None,
    max_length=512,
    num_segments=2,
    num_layers=4,
    d_model=256,
    num_heads=4,
    d_ff=1024,
    dropout=0.1,
    num_classes=2,
    classifier_activation="softmax",
    name="bert_classifier",
):
    """BERT encoder -> [CLS] state -> Dense tanh pooler -> dropout -> dense softmax."""
    inputs, x, _ = _bert_encoder(
        vocab_size, seq_len, max_length, num_segments, num_layers, d_model, num_heads, d_ff, dropout
    )
    init = keras.initializers.TruncatedNormal(stddev=0.02)
    x = TokenSelect(0, name="cls_token")(x)
    x = layers.Dense(d_model, activation="tanh", kernel_initializer=init, name="pooler")(x)
    x = layers.Dropout(dropout, name="classifier_dropout")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)
