"""CLIP (Radford et al. 2021): a dual encoder of images and text in one embedding space.

The image tower is any registered zoo convnet by name (`backbone`), built without its top and
globally average-pooled (`include_top=False, pooling="avg"`, the keras.applications way), then a
linear projection (`image_projection`). Its layers keep the backbone's names in one flat graph.
The text tower is the zoo's Transformer encoder (zoo/sequence/layers.py: token embedding, learned
positions, pre-norm `attention_sublayer` / `feed_forward_sublayer` blocks with padded keys hidden,
a final LayerNorm), pooled at its first token ([CLS]), then a linear projection
(`text_projection`). Both embeddings are L2-normalized (`image_embedding`, `text_embedding`,
float32 [B, D]).

The temperature is learnt as CLIP's: a trainable log-scale weight of the layer `logit_scale`,
initialized at log(1/0.07), its exp clipped at 100 (`LogitScale`); the model outputs the scale
(float32 [B, 1], the same value in every row) so that the task scales the global batch's
similarities with it. Inputs: `images` float32 [B, H, W, C] (0..255) and `text_tokens` int32
[B, T] ([CLS] wordpieces [SEP], 0 = [PAD]). `towers(model)` gives the image-only and text-only
models (the same layers) that embed one side alone: the exports and the zero-shot scoring use them.

`image_tower` and `text_encoder` are shared with the VQA model (zoo/multimodal/vqa.py).
"""

import math

import keras
from keras import layers, ops

from zoo.registry import build, get_spec, register
from zoo.sequence.layers import (
    PaddingMask,
    PositionalEncoding,
    TokenSelect,
    attention_sublayer,
    feed_forward_sublayer,
)


@keras.saving.register_keras_serializable(package="zoo")
class LogitScale(layers.Layer):
    """Any [B, ...] -> float32 [B, 1]: exp of a trainable log scale (init log(`initial`)), the
    exp clipped at `maximum` (CLIP: 1/0.07 and 100)."""

    def __init__(self, initial=1 / 0.07, maximum=100.0, **kwargs):
        super().__init__(**kwargs)
        self.initial, self.maximum = float(initial), float(maximum)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.initial)),
            name="log_scale",
            dtype="float32",
        )

    def call(self, x):
        scale = ops.exp(ops.minimum(self.log_scale, math.log(self.maximum)))
        return ops.ones_like(ops.cast(x[:, :1], "float32")) * scale

    def compute_output_spec(self, x):
        return keras.KerasTensor((x.shape[0], 1), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "initial": self.initial, "maximum": self.maximum}


def image_tower(backbone, input_shape, backbone_overrides=None, pooling="avg"):
    """(images input, features) of the zoo convnet `backbone` built with include_top=False and
    `pooling` ("avg": a vector [B, C]; None: the last feature map [B, h, w, C])."""
    spec = get_spec(backbone)
    if spec.task != "classification" or "include_top" not in spec.arguments():
        raise ValueError(
            f"backbone {backbone!r} is not a zoo convnet classifier with include_top/pooling"
        )
    trunk = build(
        backbone,
        input_shape=tuple(input_shape),
        include_top=False,
        pooling=pooling,
        **dict(backbone_overrides or {}),
    )
    return trunk.inputs[0], trunk.outputs[0]


def text_encoder(
    tokens, vocab_size, max_length, num_layers, d_model, num_heads, d_ff, dropout, prefix="text"
):
    """Token ids [B, T] (0 = pad) -> hidden states [B, T, d_model] of a pre-norm Transformer
    encoder (named `<prefix>_token_embedding`, `<prefix>_block<i>_attention`, ...)."""
    x = layers.Embedding(vocab_size, d_model, name=f"{prefix}_token_embedding")(tokens)
    x = PositionalEncoding(max_length, name=f"{prefix}_position_embedding")(x)
    x = layers.Dropout(dropout, name=f"{prefix}_embedding_dropout")(x)
    mask = PaddingMask(0, name=f"{prefix}_padding_mask")(tokens)
    for i in range(1, num_layers + 1):
        common = dict(norm="pre", dropout=dropout)
        x = attention_sublayer(
            x, name=f"{prefix}_block{i}_attention", num_heads=num_heads, context_mask=mask,
            **common,
        )  # fmt: skip
        x = feed_forward_sublayer(
            x, name=f"{prefix}_block{i}_ffn", hidden_dim=d_ff, activation="gelu", **common
        )
    return layers.LayerNormalization(epsilon=1e-6, name=f"{prefix}_final_norm")(x)


@register(
    "clip",
    task="image_text",
    input_shape=(128, 128, 1),
    citation="Radford et al. 2021, Learning Transferable Visual Models From Natural Language "
    "Supervision (CLIP)",
    tiny={
        "input_shape": (32, 32, 1),
        "backbone_overrides": {"width": 8, "cifar_stem": True},
        "vocab_size": 32,
        "seq_len": 8,
        "num_layers": 1,
        "d_model": 16,
        "num_heads": 2,
        "d_ff": 32,
        "embed_dim": 8,
    },
)
def clip(
    input_shape=(128, 128, 1),
    backbone="resnet18",
    backbone_overrides=None,
    vocab_size=8000,
    seq_len=16,
    num_layers=2,
    d_model=128,
    num_heads=4,
    d_ff=512,
    dropout=0.0,
    embed_dim=64,
    initial_temperature=0.07,
    max_logit_scale=100.0,
    name="clip",
):
    """Image tower (zoo convnet, pooled, projected) and text tower (Transformer encoder, [CLS],
    projected), both L2-normalized, and the learnt logit scale."""
    images, features = image_tower(backbone, input_shape, backbone_overrides)
    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="text_tokens")
    x = text_encoder(tokens, vocab_size, seq_len, num_layers, d_model, num_heads, d_ff, dropout)
    pooled = TokenSelect(0, name="text_cls")(x)

    image = layers.Dense(embed_dim, use_bias=False, name="image_projection")(features)
    image = layers.UnitNormalization(axis=-1, dtype="float32", name="image_embedding")(image)
    text = layers.Dense(embed_dim, use_bias=False, name="text_projection")(pooled)
    text = layers.UnitNormalization(axis=-1, dtype="float32", name="text_embedding")(text)
    scale = LogitScale(1 / initial_temperature, max_logit_scale, name="logit_scale")(image)
    outputs = {"image_embedding": image, "text_embedding": text, "logit_scale": scale}
    return keras.Model([images, tokens], outputs, name=name)


def towers(model):
    """(image model: images -> image_embedding, text model: text_tokens -> text_embedding) of a
    clip model, sharing its layers and weights."""
    images, tokens = model.inputs
    image = keras.Model(images, model.get_layer("image_embedding").output, name="image_tower")
    text = keras.Model(tokens, model.get_layer("text_embedding").output, name="text_tower")
    return image, text
