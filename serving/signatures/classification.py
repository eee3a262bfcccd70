"""Signatures of image classifiers."""

import numpy as np
import tensorflow as tf

import saliency
from serving.signatures import signature_builder


@signature_builder("classification")
def classification(archive, model, info):
    """serving_default: float pixels [N,H,W,C] (0..255) -> probabilities.
    predict_image_bytes: encoded PNG/JPEG strings [N] -> classes, labels, probabilities; decoding
    and resizing to the model's input size happen inside the graph.
    explain_image_bytes: the same images -> heatmap [N,H,W] (Grad-CAM of the predicted class on
    the target layer saliency finds, 0..1 at the model's input size) with classes, labels and
    probabilities. One input, as predict_image_bytes: TF Serving signatures have no optional
    inputs, so the method is fixed (the other methods take 16-50 passes an image; the
    `python -m training explain` tool runs them)."""
    shape = list(info["image_shape"])
    names = tf.constant([str(n) for n in info["class_names"]])

    def serve(images):
        return {"probabilities": tf.cast(model(images, training=False), tf.float32)}

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=shape[-1], expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), shape[:2])

    def predict_image_bytes(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
        )
        probabilities = serve(images)["probabilities"]
        classes = tf.argmax(probabilities, axis=-1)
        return {
            "classes": classes,
            "labels": tf.gather(names, classes),
            "probabilities": probabilities,
        }

    def explain_image_bytes(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
        )
        # the split model is built when the signature is traced (only if it is exported)
        explained = saliency.gradcam(saliency.Explainer(model), images)
        return {
            "heatmap": explained.heatmaps,
            "classes": explained.classes,
            "labels": tf.gather(names, explained.classes),
            "probabilities": explained.probabilities,
        }

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "predict_image_bytes",
        predict_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    archive.add_endpoint(
        "explain_image_bytes",
        explain_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return {"images": np.zeros([1, *shape], np.float32)}
