"""A small video transformer with factorised self-attention (ViViT, Arnab et al. 2021, model 3):
the clip is cut into tubelets (t x p x p, a strided Conv3D: `tubelet_embed`), a learned position
embedding is added to each token (`pos_embed`), and every block attends first across space within
each frame, then across time at each spatial position, then an MLP (pre-norm, residual).

Tokens stay a [N, T', S, D] grid (T' tubelets in time, S = H' x W' in space); the two attentions
are Keras MultiHeadAttention over axis 2 (space) and axis 1 (time) of that grid (`attention_axes`),
so no reshapes or transposes between them. Clips of raw pixels (0..255) in, rescaled to -1..1
(`rescale`) as the zoo's ViT; the tokens are averaged (`avg_pool`) and classified. Layers are named
`block<i>_spatial_ln`, `block<i>_spatial_attn`, `block<i>_temporal_attn`, `block<i>_mlp_dense1`...
"""

import keras
from keras import layers, ops

from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
class GridPositionEmbedding(layers.Layer):
    """Adds a learned embedding per position to a (batch, time, space, width) token grid."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, *input_shape[1:]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)


def factorised_block(x, num_heads, mlp_dim, dropout, name):
    """x + SpatialMHSA(LN(x)), x + TemporalMHSA(LN(x)), x + MLP(LN(x))."""
    width = x.shape[-1]
    for part, axis in (("spatial", 2), ("temporal", 1)):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_{part}_ln")(x)
        y = layers.MultiHeadAttention(
            num_heads, width // num_heads, attention_axes=(axis,), dropout=dropout,
            name=f"{name}_{part}_attn",
        )(y, y)  # fmt: skip
        x = layers.Add(name=f"{name}_{part}_add")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_mlp_ln")(x)
    y = layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_dense1")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout")(y)
    y = layers.Dense(width, name=f"{name}_mlp_dense2")(y)
    return layers.Add(name=f"{name}_mlp_add")([x, y])


@register(
    "vivit",
    task="video_classification",
    input_shape=(16, 64, 64, 1),
    citation="Arnab et al. 2021, ViViT: A Video Vision Transformer (factorised self-attention)",
    tiny={
        "input_shape": (8, 32, 32, 1),
        "tubelet": (4, 8, 8),
        "width": 32,
        "depth": 1,
        "num_heads": 2,
        "mlp_dim": 64,
    },
)
def vivit(
    input_shape=(16, 64, 64, 1),
    num_classes=8,
    tubelet=(2, 8, 8),
    width=64,
    depth=4,
    num_heads=4,
    mlp_dim=128,
    dropout=0.0,
    classifier_activation="softmax",
    name="vivit",
):
    """Tubelet embedding, `depth` factorised space-then-time attention blocks, mean of the tokens
    and a softmax classifier."""
    if len(input_shape) != 4 or len(tubelet) != 3:
        raise ValueError(
            f"input_shape must be (frames, height, width, channels) and tubelet (t, h, w), got "
            f"{input_shape} and {tubelet}"
        )
    if any(n % t for n, t in zip(input_shape[:3], tubelet)):
        raise ValueError(f"tubelet {tuple(tubelet)} must divide the clip's {input_shape[:3]}")
    if width % num_heads:
        raise ValueError(f"width {width} must be a multiple of num_heads {num_heads}")
    frames, height, size = (n // t for n, t in zip(input_shape[:3], tubelet))
    inputs = keras.Input(shape=input_shape, name="videos")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv3D(width, tubelet, strides=tubelet, name="tubelet_embed")(x)
    x = layers.Reshape((frames, height * size, width), name="tubelet_grid")(x)
    x = GridPositionEmbedding(name="pos_embed")(x)
    for i in range(1, depth + 1):
        x = factorised_block(x, num_heads, mlp_dim, dropout, f"block{i}")
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    x = layers.Reshape((frames * height * size, width), name="tokens")(x)
    x = layers.GlobalAveragePooling1D(name="avg_pool")(x)
    outputs = layers.Dense(
        num_classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)  # fmt: skip
    return keras.Model(inputs, outputs, name=name)
