"""Signatures of image encoders (self-supervised: simclr, simsiam): the representation, not the
projection head the training loss saw."""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


@signature_builder("embedding")
def embedding(archive, model, info):
    """serving_default: float pixels [N,H,W,C] (0..255) -> `embedding` float32 [N,D], the
    encoder's output (a nearest-neighbour index or a linear classifier takes it from here).
    embed_image_bytes: encoded PNG/JPEG strings [N] -> the same; decoding and resizing to the
    model's input size happen inside the graph."""
    shape = list(info["image_shape"])

    def serve(images):
        outputs = model(images, training=False)
        return {"embedding": tf.cast(outputs["embedding"], tf.float32)}

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=shape[-1], expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), shape[:2])

    def embed_image_bytes(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
        )
        return serve(images)

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "embed_image_bytes",
        embed_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return {"images": np.zeros([1, *shape], np.float32)}
