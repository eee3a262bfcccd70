"""Vision Transformer (Dosovitskiy et al. 2021): ViT-Ti/16.

Raw pixels in (0..255), class probabilities out; the rescaling to -1..1 (the original ViT
preprocessing) is a layer of the graph. The image is cut into 16x16 patches (a strided conv),
a learned class token is prepended and learned position embeddings added, then `depth` pre-norm
encoder blocks (multi-head self-attention, GELU MLP), a final LayerNorm, and a classifier on the
class token. Layers are named `patch_embed`, `class_token`, `pos_embed`,
`encoder_block1_attn`, `encoder_block1_mlp_dense1`, ..., `encoder_norm`, `predictions`.

ViT-Ti/16 (width 192, depth 12, 3 heads, MLP 768; DeiT / timm `vit_tiny_patch16_224`) has
5,717,416 parameters at 224x224 / 1000 classes, the same as timm's.

There is no `cifar_stem`: a smaller `patch_size` (4 for 32x32) plays that part.
"""

import keras
from keras import layers, ops

from zoo.registry import register
from zoo.vision._common import check_pooling, classifier


@keras.saving.register_keras_serializable(package="zoo")
class ClassToken(layers.Layer):
    """Prepends one learned token to a (batch, tokens, width) sequence."""

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer="zeros", name="token"
        )

    def call(self, x):
        token = ops.cast(self.token, x.dtype)
        return ops.concatenate([ops.tile(token, (ops.shape(x)[0], 1, 1)), x], axis=1)

    def compute_output_shape(self, input_shape):
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], tokens, input_shape[2])


@keras.saving.register_keras_serializable(package="zoo")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding per position to a (batch, tokens, width) sequence."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)


def encoder_block(x, num_heads, mlp_dim, dropout, attention_dropout, name):
    """Pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""
    width = x.shape[-1]
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    y = layers.MultiHeadAttention(
        num_heads, width // num_heads, dropout=attention_dropout, name=f"{name}_attn"
    )(y, y)
    y = layers.Dropout(dropout, name=f"{name}_attn_dropout")(y)
    x = layers.Add(name=f"{name}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    y = layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp_dense1")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout1")(y)
    y = layers.Dense(width, name=f"{name}_mlp_dense2")(y)
    y = layers.Dropout(dropout, name=f"{name}_mlp_dropout2")(y)
    return layers.Add(name=f"{name}_add2")([x, y])


def _vit(
    patch_size,
    width,
    depth,
    num_heads,
    mlp_dim,
    dropout,
    attention_dropout,
    input_shape,
    num_classes,
    include_top,
    pooling,
    classifier_activation,
    name,
):
    check_pooling(pooling, (None, "avg", "max", "token"))
    channels_first = keras.config.image_data_format() == "channels_first"
    rows, cols = input_shape[1:] if channels_first else input_shape[:2]
    if rows % patch_size or cols % patch_size:
        raise ValueError(f"input {rows}x{cols} is not a whole number of {patch_size}px patches")
    num_patches = (rows // patch_size) * (cols // patch_size)

    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(width, patch_size, strides=patch_size, name="patch_embed")(x)
    if channels_first:
        x = layers.Reshape((width, num_patches), name="patch_flatten")(x)
        x = layers.Permute((2, 1), name="patch_transpose")(x)
    else:
        x = layers.Reshape((num_patches, width), name="patch_flatten")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="pos_embed")(x)
    x = layers.Dropout(dropout, name="pos_dropout")(x)
    for i in range(1, depth + 1):
        x = encoder_block(x, num_heads, mlp_dim, dropout, attention_dropout, f"encoder_block{i}")
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)

    # Token 0 is the class token; Cropping1D keeps it (or drops it, for pooling the patches).
    if include_top or pooling == "token":
        x = layers.Cropping1D((0, num_patches), name="class_token_select")(x)
        x = layers.Flatten(name="class_token_flatten")(x)
    elif pooling in ("avg", "max"):
        x = layers.Cropping1D((1, 0), name="patch_tokens_select")(x)
        pool = layers.GlobalAveragePooling1D if pooling == "avg" else layers.GlobalMaxPooling1D
        x = pool(name=f"{pooling}_pool")(x)
    if include_top:
        x = classifier(x, num_classes, classifier_activation)
    return keras.Model(inputs, x, name=name)


@register(
    "vit_tiny16",
    task="classification",
    input_shape=(224, 224, 3),
    citation=(
        "Dosovitskiy et al. An Image is Worth 16x16 Words: Transformers for Image Recognition at "
        "Scale. ICLR 2021; Ti size from Touvron et al. (DeiT), ICML 2021"
    ),
    tiny={
        "input_shape": (32, 32, 3),
        "num_classes": 10,
        "patch_size": 8,
        "width": 32,
        "depth": 2,
        "num_heads": 2,
        "mlp_dim": 64,
    },
)
def vit_tiny16(
    input_shape=(224, 224, 3),
    num_classes=1000,
    include_top=True,
    pooling=None,
    classifier_activation="softmax",
    patch_size=16,
    width=192,
    depth=12,
    num_heads=3,
    mlp_dim=768,
    dropout=0.0,
    attention_dropout=0.0,
    name="vit_tiny16",
):
    """ViT-Ti/16: width 192, 12 blocks, 3 heads, MLP 768; 5.7M parameters.

    The input sides must be multiples of `patch_size`. With `include_top=False`, `pooling` is
    None (all tokens, (batch, 1 + patches, width)), "token" (the class token), "avg" or "max"
    (over the patch tokens).
    """
    return _vit(
        patch_size, width, depth, num_heads, mlp_dim, dropout, attention_dropout, input_shape,
        num_classes, include_top, pooling, classifier_activation, name,
    )  # fmt: skip
