"""Signatures of video classifiers: uint8 clips in, as a camera or a decoder hands them over."""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


@signature_builder("video_classification")
def video_classification(archive, model, info):
    """serving_default: videos uint8 [N,T,H,W,C] (the model's frames and size) -> probabilities
    (the signature TFLite converts). predict_video: the same clips -> classes, labels (the class
    names) and probabilities."""
    shape = list(info["video_shape"])
    names = tf.constant([str(n) for n in info["class_names"]])

    def serve(videos):
        probabilities = model(tf.cast(videos, tf.float32), training=False)
        return {"probabilities": tf.cast(probabilities, tf.float32)}

    def predict_video(videos):
        probabilities = serve(videos)["probabilities"]
        classes = tf.argmax(probabilities, axis=-1)
        return {
            "classes": classes,
            "labels": tf.gather(names, classes),
            "probabilities": probabilities,
        }

    spec = [tf.TensorSpec([None, *shape], tf.uint8, name="videos")]
    archive.add_endpoint("serving_default", serve, input_signature=spec)
    archive.add_endpoint("predict_video", predict_video, input_signature=spec)
    return {"videos": np.zeros([1, *shape], np.uint8)}
