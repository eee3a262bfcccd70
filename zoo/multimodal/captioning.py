"""Image captioning: a zoo convnet encoder and a language decoder, images and the caption so far
in, next-token logits out.

- `caption_transformer`: Show, Attend and Tell's idea (Xu et al. 2015: the decoder attends over
  the convnet's spatial features, one vector per location) with a Transformer decoder (Vaswani
  et al. 2017) in place of the LSTM: the backbone's feature map at `feature_level` (stride
  2^level, zoo.vision.backbones.feature_levels: any zoo convnet by name; a list of levels
  attends over all of their maps, a fine and a coarse one) is flattened into h*w vectors,
  projected to `d_model` (a projection per level) with a learned position each, and every decoder
  block runs causal self-attention over the caption, cross-attention over those vectors, and an
  MLP.
- `neuraltalk`: the NeuralTalk / Show and Tell shape (Karpathy & Fei-Fei 2015; Vinyals et al.
  2015): the convnet's pooled feature, projected to the word-embedding width, is the LSTM's first
  input; then the caption's words; the output after word t predicts word t+1.

Both take `images` [N,H,W,C] (0..255; the backbone rescales inside) and `decoder_tokens` int32
[N,T] ([START] then the caption; 0 = padding) and return float32 logits [N,T,vocab_size], the
interface of the zoo's seq2seq Transformer, so textkit's decoders serve all of them. Each model is
two named sub-models, `image_encoder` (images -> features [N,S,D]) and `caption_decoder`
([features, decoder_tokens] -> logits), so a decoder reads the image once and then only runs the
decoder per step.
"""

import math

import keras
from keras import layers

from zoo.registry import build, register
from zoo.sequence.layers import PositionalEncoding, attention_sublayer, feed_forward_sublayer
from zoo.vision.backbones import feature_levels

CITATION_SAT = (
    "Xu et al. 2015, Show, Attend and Tell: Neural Image Caption Generation with Visual "
    "Attention; Vaswani et al. 2017, Attention Is All You Need"
)
CITATION_NEURALTALK = (
    "Karpathy & Fei-Fei 2015, Deep Visual-Semantic Alignments for Generating Image "
    "Descriptions; Vinyals et al. 2015, Show and Tell"
)
TINY_BACKBONE = {"backbone": "resnet18", "backbone_overrides": {"width": 4, "blocks": (1, 1, 1, 1)}}


def _joined(encoder, decoder, input_shape, caption_length, name):
    images = keras.Input(shape=tuple(input_shape), name="images")
    decoder_tokens = keras.Input(shape=(caption_length,), dtype="int32", name="decoder_tokens")
    logits = decoder([encoder(images), decoder_tokens])
    return keras.Model([images, decoder_tokens], logits, name=name)


@register(
    "caption_transformer",
    task="captioning",
    input_shape=(224, 224, 3),
    citation=CITATION_SAT,
    tiny={
        "input_shape": (32, 32, 1),
        **TINY_BACKBONE,
        "feature_level": 3,
        "vocab_size": 32,
        "max_length": 8,
        "num_layers": 1,
        "d_model": 16,
        "num_heads": 2,
        "d_ff": 32,
        "dropout": 0.0,
    },
)
def caption_transformer(
    input_shape=(224, 224, 3),
    backbone="resnet50",
    backbone_overrides=None,
    feature_level=5,
    vocab_size=8192,
    max_length=32,
    caption_length=None,
    num_layers=2,
    d_model=256,
    num_heads=4,
    d_ff=1024,
    dropout=0.1,
    name="caption_transformer",
):
    """A zoo convnet's feature map at `feature_level`, attended by a Transformer decoder.

    `backbone`: any zoo convnet classifier by name, with `backbone_overrides` for its builder;
    `feature_level`: a level, or a list of levels whose maps' vectors are attended together;
    `max_length`: the longest caption (decoder positions); `caption_length`: the decoder input's
    fixed length (None: any length up to max_length)."""
    if d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of num_heads ({num_heads})")
    levels = list(feature_level) if isinstance(feature_level, (list, tuple)) else [feature_level]
    trunk = feature_levels(backbone, input_shape, levels, **(backbone_overrides or {}))
    images = keras.Input(shape=tuple(input_shape), name="images")
    maps = trunk(images)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    vectors = []
    for level, x in zip(levels, maps):
        h, w, channels = x.shape[1:]
        # one level keeps the names of the single-level model (its runs load by name)
        suffix = "" if len(levels) == 1 else f"_level{level}"
        x = layers.Reshape((h * w, channels), name=f"feature_vectors{suffix}")(x)
        vectors.append(layers.Dense(d_model, name=f"feature_projection{suffix}")(x))
    x = vectors[0] if len(vectors) == 1 else layers.Concatenate(1, name="feature_levels")(vectors)
    locations = x.shape[1]
    x = PositionalEncoding(locations, kind="learned", name="feature_position_embedding")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="feature_norm")(x)
    encoder = keras.Model(images, x, name="image_encoder")

    features = keras.Input(shape=(locations, d_model), name="features")
    tokens = keras.Input(shape=(caption_length,), dtype="int32", name="decoder_tokens")
    y = layers.Embedding(vocab_size, d_model, name="token_embedding")(tokens)
    y = layers.Rescaling(math.sqrt(d_model), name="token_embedding_scale")(y)
    y = PositionalEncoding(max_length, kind="learned", name="token_position_embedding")(y)
    y = layers.Dropout(dropout, name="token_embedding_dropout")(y)
    common = dict(num_heads=num_heads, dropout=dropout, norm="post")
    for i in range(1, num_layers + 1):
        y = attention_sublayer(y, name=f"decoder_block{i}_self_attention", causal=True, **common)
        y = attention_sublayer(y, features, name=f"decoder_block{i}_cross_attention", **common)
        y = feed_forward_sublayer(
            y, name=f"decoder_block{i}_ffn", hidden_dim=d_ff, dropout=dropout, norm="post"
        )
    logits = layers.Dense(vocab_size, dtype="float32", name="logits")(y)
    decoder = keras.Model([features, tokens], logits, name="caption_decoder")
    return _joined(encoder, decoder, input_shape, caption_length, name)


def encoder_decoder(model):
    """A captioner's (`image_encoder`, `caption_decoder`) sub-models, for decoding that reads the
    image once."""
    names = {layer.name for layer in model.layers}
    if not {"image_encoder", "caption_decoder"} <= names:
        raise ValueError(f"model {model.name!r} has no image_encoder and caption_decoder")
    return model.get_layer("image_encoder"), model.get_layer("caption_decoder")


@register(
    "neuraltalk",
    task="captioning",
    input_shape=(224, 224, 3),
    citation=CITATION_NEURALTALK,
    tiny={
        "input_shape": (32, 32, 1),
        **TINY_BACKBONE,
        "vocab_size": 32,
        "embed_dim": 16,
        "units": 16,
        "dropout": 0.0,
    },
)
def neuraltalk(
    input_shape=(224, 224, 3),
    backbone="resnet50",
    backbone_overrides=None,
    vocab_size=8192,
    max_length=None,
    caption_length=None,
    embed_dim=256,
    units=512,
    dropout=0.3,
    unroll=False,
    name="neuraltalk",
):
    """A zoo convnet's pooled feature as the first input of an LSTM over the caption.

    `backbone`: any zoo convnet classifier by name (built without its top, average-pooled);
    `max_length`: unused (the LSTM reads any length; the family's uniform argument);
    `unroll`: the LSTM unrolled (needs a fixed `caption_length`), which TFLite converts."""
    trunk = build(
        backbone,
        input_shape=tuple(input_shape),
        include_top=False,
        pooling="avg",
        **(backbone_overrides or {}),
    )
    images = keras.Input(shape=tuple(input_shape), name="images")
    x = trunk(images)
    x = layers.Dropout(dropout, name="feature_dropout")(x)
    x = layers.Dense(embed_dim, name="feature_projection")(x)
    x = layers.Reshape((1, embed_dim), name="feature_as_word")(x)
    encoder = keras.Model(images, x, name="image_encoder")

    features = keras.Input(shape=(1, embed_dim), name="features")
    tokens = keras.Input(shape=(caption_length,), dtype="int32", name="decoder_tokens")
    y = layers.Embedding(vocab_size, embed_dim, name="token_embedding")(tokens)
    y = layers.Concatenate(axis=1, name="feature_then_words")([features, y])
    y = layers.Dropout(dropout, name="input_dropout")(y)
    y = layers.LSTM(units, return_sequences=True, unroll=unroll, name="lstm")(y)
    y = layers.Cropping1D((1, 0), name="after_each_word")(y)  # the output after the feature
    y = layers.Dropout(dropout, name="output_dropout")(y)
    logits = layers.Dense(vocab_size, dtype="float32", name="logits")(y)
    decoder = keras.Model([features, tokens], logits, name="caption_decoder")
    return _joined(encoder, decoder, input_shape, caption_length, name)
