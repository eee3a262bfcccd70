"""Signatures of object detectors, with the outputs the TF Object Detection API names."""

import numpy as np
import tensorflow as tf

from boxkit import per_class_nms
from serving.signatures import signature_builder
from zoo.vision.fcos import DecodeDetections, levels_of


@signature_builder("detection")
def detection(archive, model, info):
    """serving_default: uint8 images [N,H,W,C] of any size -> `detection_boxes` [N,D,4] (ymin,
    xmin, ymax, xmax, normalized to the image), `detection_scores` [N,D], `detection_classes`
    int64 [N,D] (the index in labels.txt; no background class), `num_detections` int32 [N]:
    the images are resized (bilinear) to the model's input size, the raw outputs decoded
    (zoo.vision.fcos.DecodeDetections, for the model's own pyramid levels) and suppressed per
    class (boxkit.per_class_nms) with the export's `nms` settings from export_info.json
    (`max_detections` D, `iou_threshold`, `score_threshold`). Every op converts to builtin
    TFLite ops, the NMS included.
    detect_image_bytes: PNG/JPEG strings [N] (any sizes) -> the same, and `detection_labels`
    string [N,D] (the class names, "" past num_detections)."""
    shape = list(info["image_shape"])
    nms = info["nms"]
    names = tf.constant([str(n) for n in info["class_names"]])
    decode = DecodeDetections(shape, levels_of(model), name="decode_detections")

    def detect(images):
        decoded = decode(model(images, training=False))
        return per_class_nms(
            decoded["boxes"],
            decoded["scores"],
            max_detections=int(nms["max_detections"]),
            iou_threshold=float(nms["iou_threshold"]),
            score_threshold=float(nms["score_threshold"]),
        )

    def serve(images):
        return detect(tf.image.resize(tf.cast(images, tf.float32), shape[:2]))

    def decode_image(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=shape[-1], expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), shape[:2])

    def detect_image_bytes(image_bytes):
        images = tf.map_fn(
            decode_image, image_bytes, fn_output_signature=tf.TensorSpec(shape, tf.float32)
        )
        found = detect(images)
        count = tf.shape(found["detection_scores"])[1]
        valid = tf.range(count)[None, :] < found["num_detections"][:, None]
        labels = tf.gather(names, found["detection_classes"])
        return {**found, "detection_labels": tf.where(valid, labels, "")}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, None, None, shape[-1]], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "detect_image_bytes",
        detect_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    return {"images": np.zeros([1, *shape], np.uint8)}
