"""Per-class non-max suppression of a detector's decoded boxes, inside the graph, in outputs named
as the TF Object Detection API names them.

`tf.image.combined_non_max_suppression` is the usual per-class NMS, but it converts to TFLite
only through Flex (select TF) ops, which ai_edge_litert cannot run. Here each image's boxes go
through TensorFlow's NonMaxSuppressionV5 once per class (padded to `max_detections`), and the
best `max_detections` of all the classes' survivors are kept: NonMaxSuppressionV5 is the builtin
TFLite op NON_MAX_SUPPRESSION_V5, and the images are mapped over with `tf.map_fn` (a builtin
WHILE once converted), so the TFLite file holds its NMS. The builtin has only a float kernel: in
a full-integer (int8) TFLite file the network runs in int8 and the NMS in float32 on the
dequantized boxes and scores. (Suppressing every class at once by shifting each class's boxes
apart, or with `tf.image.non_max_suppression_padded`'s tiled loop of plain ops, converts too,
but int8 quantization then reaches the shifted boxes and the IoU divisions: it fails or
suppresses the wrong boxes.)
"""

import tensorflow as tf


def per_class_nms(
    boxes, scores, *, max_detections=100, iou_threshold=0.6, score_threshold=0.05
) -> dict:
    """boxes [N,P,4] (ymin, xmin, ymax, xmax), scores [N,P,K] -> `detection_boxes` [N,D,4],
    `detection_scores` [N,D], `detection_classes` int64 [N,D], `num_detections` int32 [N]
    (D = max_detections; best first, zeros past num_detections). A box is kept for a class when
    its score is above `score_threshold` and no better box kept for that class overlaps it by
    IoU more than `iou_threshold`; of those, the `max_detections` best of an image."""
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    num_classes, d = scores.shape[-1], int(max_detections)

    def one_image(args):
        image_boxes, image_scores = args
        kept_scores, kept_boxes, kept_classes = [], [], []
        for k in range(num_classes):
            selected, selected_scores, count = tf.raw_ops.NonMaxSuppressionV5(
                boxes=image_boxes,
                scores=image_scores[:, k],
                max_output_size=d,
                iou_threshold=float(iou_threshold),
                score_threshold=float(score_threshold),
                soft_nms_sigma=0.0,
                pad_to_max_output_size=True,
            )
            valid = tf.range(d) < count
            kept_scores.append(tf.where(valid, selected_scores, -1.0))
            kept_boxes.append(tf.gather(image_boxes, selected))
            kept_classes.append(tf.fill([d], k))
        best, order = tf.math.top_k(tf.concat(kept_scores, 0), k=d)
        found = best >= 0.0
        return (
            tf.gather(tf.concat(kept_boxes, 0), order) * tf.cast(found, tf.float32)[:, None],
            tf.maximum(best, 0.0),
            tf.gather(tf.concat(kept_classes, 0), order) * tf.cast(found, tf.int32),
            tf.reduce_sum(tf.cast(found, tf.int32)),
        )

    found = tf.map_fn(
        one_image,
        (boxes, scores),
        fn_output_signature=(
            tf.TensorSpec([d, 4], tf.float32),
            tf.TensorSpec([d], tf.float32),
            tf.TensorSpec([d], tf.int32),
            tf.TensorSpec([], tf.int32),
        ),
    )
    return {
        "detection_boxes": found[0],
        "detection_scores": found[1],
        "detection_classes": tf.cast(found[2], tf.int64),
        "num_detections": found[3],
    }
