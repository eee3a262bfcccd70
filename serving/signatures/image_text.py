"""Signatures of image-text models: a CLIP dual encoder (`image_text`) and visual question
answering (`vqa`). The run's export_info.json carries the wordpiece vocabulary the task trained
with; textkit's WordpieceTokenizer rebuilds it as graph ops, so text goes in as strings.

- image_text: serving_default images float32 [N,H,W,C] (0..255) -> `image_embedding` [N,D];
  embed_image: image_bytes string [N] (PNG/JPEG, decoded and resized in the graph) -> `embedding`;
  embed_text: text string [N] -> `embedding`. Embeddings are L2-normalized: a dot product is the
  cosine, so a zero-shot classifier is the argmax of image . prompt embeddings.
- vqa: serving_default images float32 [N,H,W,C], question_tokens int32 [N,T] -> `probabilities`
  [N,A] over export_info's `answers`; answer: image_bytes string [N], question string [N] ->
  `answer` string [N] and `probabilities`.

The string signatures need tensorflow_text's ops at load time (`import tensorflow_text`).
"""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder
from textkit import CLS, SEP, WordpieceTokenizer, pack
from zoo.multimodal.clip import towers


def _decoder(shape):
    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=shape[-1], expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), shape[:2])

    def decode_all(image_bytes):
        spec = tf.TensorSpec(shape, tf.float32)
        return tf.map_fn(decode, image_bytes, fn_output_signature=spec)

    return decode_all


def _tokenizer(info):
    vocab = info["vocab"]
    tokenizer = WordpieceTokenizer(vocab, info.get("lower_case", True))
    length, cls, sep = int(info["seq_len"]), vocab.index(CLS), vocab.index(SEP)

    def encode(text):
        return pack(tokenizer.tokenize(text), length, cls, sep)

    return tokenizer, encode


@signature_builder("image_text")
def image_text(archive, model, info):
    """serving_default: images -> image_embedding; embed_image: bytes -> embedding; embed_text:
    strings -> embedding (see the module docstring)."""
    shape = list(info["image_shape"])
    image_model, text_model = towers(model)
    tokenizer, encode = _tokenizer(info)
    archive.track(tokenizer)
    decode = _decoder(shape)

    def serve(images):
        return {"image_embedding": tf.cast(image_model(images, training=False), tf.float32)}

    def embed_image(image_bytes):
        return {"embedding": serve(decode(image_bytes))["image_embedding"]}

    def embed_text(text):
        return {"embedding": tf.cast(text_model(encode(text), training=False), tf.float32)}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "embed_image",
        embed_image,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    archive.add_endpoint(
        "embed_text", embed_text, input_signature=[tf.TensorSpec([None], tf.string, name="text")]
    )
    return {"images": np.zeros([1, *shape], np.float32)}


@signature_builder("vqa")
def vqa(archive, model, info):
    """serving_default: images, question_tokens -> probabilities; answer: image bytes and a
    question string -> the answer string and probabilities."""
    shape, length = list(info["image_shape"]), int(info["seq_len"])
    tokenizer, encode = _tokenizer(info)
    archive.track(tokenizer)
    decode = _decoder(shape)
    answers = tf.constant([str(a) for a in info["answers"]])

    def serve(images, question_tokens):
        probabilities = model([images, question_tokens], training=False)
        return {"probabilities": tf.cast(probabilities, tf.float32)}

    def answer(image_bytes, question):
        probabilities = serve(decode(image_bytes), encode(question))["probabilities"]
        best = tf.argmax(probabilities, axis=-1)
        return {"answer": tf.gather(answers, best), "probabilities": probabilities}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            tf.TensorSpec([None, *shape], tf.float32, name="images"),
            tf.TensorSpec([None, length], tf.int32, name="question_tokens"),
        ],
    )
    archive.add_endpoint(
        "answer",
        answer,
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None], tf.string, name="question"),
        ],
    )
    return {
        "images": np.zeros([1, *shape], np.float32),
        "question_tokens": np.zeros([1, length], np.int32),
    }
