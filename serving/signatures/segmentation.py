"""Signatures of semantic segmentation models."""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


@signature_builder("segmentation")
def segmentation(archive, model, info):
    """serving_default: uint8 images [N,H,W,C] of any size -> `segmentation` int32 [N,H,W] (the
    most probable class of each pixel) and `probabilities` float32 [N,H,W,K], at the input's
    resolution: the images are resized (bilinear) to the model's input size, and its
    probabilities resized back before the argmax.
    segment_image_bytes: PNG/JPEG strings [N] -> the same; the images of one request share a
    size (400 otherwise, as a batch of tensors would)."""
    shape = list(info["image_shape"])

    def serve(images):
        size = tf.shape(images)[1:3]
        x = tf.image.resize(tf.cast(images, tf.float32), shape[:2])
        probabilities = tf.cast(model(x, training=False), tf.float32)
        probabilities = tf.image.resize(probabilities, size)
        return {
            "segmentation": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
            "probabilities": probabilities,
        }

    def decode(image_bytes):
        return tf.io.decode_image(image_bytes, channels=shape[-1], expand_animations=False)

    def segment_image_bytes(image_bytes):
        size = tf.shape(decode(image_bytes[0]))[:2]

        def one(data):
            image = decode(data)
            same = tf.debugging.assert_equal(
                tf.shape(image)[:2], size, message="the images of one request must share a size"
            )
            with tf.control_dependencies([same]):
                return tf.identity(image)

        images = tf.map_fn(
            one, image_bytes, fn_output_signature=tf.TensorSpec([None, None, shape[-1]], tf.uint8)
        )
        return serve(images)

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, None, None, shape[-1]], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "segment_image_bytes",
        segment_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return {"images": np.zeros([1, *shape], np.uint8)}
