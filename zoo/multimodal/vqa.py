"""Visual question answering as classification over a fixed answer set: image and question
features fused by attention (the question reads the image, as in the cross-attention fusion of
LXMERT / ViLBERT, Tan & Bansal 2019, Lu et al. 2019, cut down to one stream of question tokens).

- Image: any registered zoo convnet by name (`backbone`) without its top and unpooled
  (`include_top=False, pooling=None`, zoo/multimodal/clip.py `image_tower`): its last feature
  map [B, h, w, C] is projected to `d_model` per cell (`image_projection`) and becomes h*w image
  tokens with learnt positions (`image_position_embedding`), so "leftmost" can be read.
- Question: the zoo's Transformer encoder (clip.py `text_encoder`, `question_*` layers) over
  [CLS] wordpieces [SEP] (0 = [PAD]).
- Fusion: `fusion_layers` pre-norm blocks, each self-attention over the question (padded keys
  hidden), cross-attention from the question tokens to the image tokens, and a feed-forward
  sublayer (zoo/sequence/layers.py); then the [CLS] state -> LayerNorm -> Dense ReLU -> softmax
  over the `num_answers` answers (`probabilities`, float32 [B, A]).

Inputs: `images` float32 [B, H, W, C] (0..255) and `question_tokens` int32 [B, T].
"""

import keras
from keras import layers

from zoo.multimodal.clip import image_tower, text_encoder
from zoo.registry import register
from zoo.sequence.layers import (
    PaddingMask,
    PositionalEncoding,
    TokenSelect,
    attention_sublayer,
    feed_forward_sublayer,
)


@register(
    "vqa",
    task="vqa",
    input_shape=(128, 128, 1),
    citation="Antol et al. 2015, VQA: Visual Question Answering; Tan & Bansal 2019, LXMERT "
    "(cross-attention fusion)",
    tiny={
        "input_shape": (32, 32, 1),
        "backbone_overrides": {"width": 8, "cifar_stem": True},
        "vocab_size": 32,
        "seq_len": 8,
        "question_layers": 1,
        "fusion_layers": 1,
        "d_model": 16,
        "num_heads": 2,
        "d_ff": 32,
        "num_answers": 12,
    },
)
def vqa(
    input_shape=(128, 128, 1),
    backbone="resnet18",
    backbone_overrides=None,
    vocab_size=8000,
    seq_len=16,
    question_layers=1,
    fusion_layers=2,
    d_model=128,
    num_heads=4,
    d_ff=256,
    dropout=0.0,
    num_answers=12,
    classifier_activation="softmax",
    name="vqa",
):
    """Convnet feature map as image tokens, Transformer-encoded question, cross-attention
    fusion blocks, [CLS] -> answer probabilities."""
    images, feature_map = image_tower(backbone, input_shape, backbone_overrides, pooling=None)
    if len(feature_map.shape) != 4:
        raise ValueError(f"backbone {backbone!r}: its last output is not a feature map")
    _, h, w, channels = feature_map.shape
    v = layers.Reshape((h * w, channels), name="image_tokens")(feature_map)
    v = layers.Dense(d_model, name="image_projection")(v)
    v = PositionalEncoding(h * w, name="image_position_embedding")(v)
    v = layers.LayerNormalization(epsilon=1e-6, name="image_norm")(v)

    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="question_tokens")
    q = text_encoder(
        tokens, vocab_size, seq_len, question_layers, d_model, num_heads, d_ff, dropout,
        prefix="question",
    )  # fmt: skip
    mask = PaddingMask(0, name="fusion_padding_mask")(tokens)
    for i in range(1, fusion_layers + 1):
        common = dict(num_heads=num_heads, norm="pre", dropout=dropout)
        q = attention_sublayer(q, name=f"fusion{i}_self", context_mask=mask, **common)
        q = attention_sublayer(q, v, name=f"fusion{i}_cross", **common)
        q = feed_forward_sublayer(
            q, name=f"fusion{i}_ffn", hidden_dim=d_ff, activation="gelu", norm="pre",
            dropout=dropout,
        )  # fmt: skip
    x = TokenSelect(0, name="fusion_cls")(q)
    x = layers.LayerNormalization(epsilon=1e-6, name="fusion_norm")(x)
    x = layers.Dense(d_model, activation="relu", name="answer_hidden")(x)
    outputs = layers.Dense(
        num_answers, activation=classifier_activation, dtype="float32", name="probabilities"
    )(x)
    return keras.Model([images, tokens], outputs, name=name)
