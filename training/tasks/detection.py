"""Object detection with FCOS (zoo/vision/fcos.py): targets assigned to the pyramid's locations
inside the step, sigmoid focal loss for the classes, GIoU loss for the boxes, binary
cross-entropy for the centerness; COCO mAP@[.5:.95], mAP@.5 and recall (AR@100) of the whole
validation split each epoch by pycocotools (evaluation/detection.py), after the same decoding and
per-class NMS as the exports (zoo's DecodeDetections, boxkit.per_class_nms); predicted boxes
with labels and scores drawn over validation images in TensorBoard.

Elements: (image float32 [H,W,C] 0..255, boxes float32 [M,4] (ymin, xmin, ymax, xmax)
normalized, classes int32 [M], -1 past the image's objects), M = `max_objects`.

Target assignment (Tian et al. 2019, with the centre sampling of their later version), for the
locations of every level at once: a location is a positive of a box when it lies inside the box,
within `center_radius` strides of its centre, and the largest of its four distances to the box's
sides is in its level's range (level L takes (b[L-1], b[L]] of the boundaries `size_ranges`,
default 8 x 2^L pixels: FCOS's 64, 128, 256, 512 for P3-P7); of several boxes, the smallest.
A box that gets no location so (narrower than a stride, e.g. a thin "1") takes the location
nearest its centre on the level its size belongs to; that location may lie outside the box, so
a distance may be negative (the head's distances are linear, not exp). Losses, per replica: the
focal loss (alpha 0.25, gamma 2) summed over locations and classes, the GIoU loss and the
centerness cross-entropy over the positives, each divided by the count of positives in the
whole batch, over every replica (as FCOS does across GPUs), so N replicas train as one device.

Task config (the recipe's `task` section):
- `classes`: class names (default: the data set's `objects` label names); background is none;
- `image_size`: [H, W] to resize images to (data sets of mixed sizes; boxes are normalized, so
  they follow); by default the data's own fixed size;
- `max_objects`: boxes kept per image (default 100);
- `augment`: "none", "scale" or "flip_scale": a scale jitter of 1 +- `scale` (resize, then a
  random crop or a random placement on black) and, with flip_scale, a horizontal flip half the
  time; boxes move with the pixels, clipped to the image, and a box left with less than half of
  its area is dropped. (Mirrored digits are not digits: the digit recipe does not flip.)
- `size_ranges`, `center_radius` (1.5), `focal_alpha` (0.25), `focal_gamma` (2.0): assignment
  and loss as above;
- `nms`: `max_detections` (100), `iou_threshold` (0.6), `score_threshold` (0.05), used for the
  validation metrics and recorded in export_info.json for the exports.
"""

import numpy as np
import tensorflow as tf

from boxkit import per_class_nms, pictures
from evaluation import detection as metrics_lib
from training import summaries
from training.tasks.base import (
    EXAMPLES,
    Task,
    apply_gradients,
    image_shape,
    regularization_loss,
)
from zoo.vision import fcos

AUGMENTATIONS = ("none", "scale", "flip_scale")
NMS = {"max_detections": 100, "iou_threshold": 0.6, "score_threshold": 0.05}
LOSSES = ("class_loss", "box_loss", "centerness_loss")


def sigmoid_focal_loss(labels, logits, alpha=0.25, gamma=2.0):
    """Lin et al. 2017, elementwise: -alpha_t (1 - p_t)^gamma log(p_t), p = sigmoid(logits)."""
    labels = tf.cast(labels, tf.float32)
    p = tf.sigmoid(logits)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    p_t = p * labels + (1.0 - p) * (1.0 - labels)
    alpha_t = alpha * labels + (1.0 - alpha) * (1.0 - labels)
    return alpha_t * tf.pow(1.0 - p_t, gamma) * ce


def giou_loss(predicted, true):
    """1 - GIoU (Rezatofighi et al. 2019) of boxes (ymin, xmin, ymax, xmax) [..., 4]."""
    area_p = (predicted[..., 2] - predicted[..., 0]) * (predicted[..., 3] - predicted[..., 1])
    area_t = (true[..., 2] - true[..., 0]) * (true[..., 3] - true[..., 1])
    low, high = (
        tf.maximum(predicted[..., :2], true[..., :2]),
        tf.minimum(predicted[..., 2:], true[..., 2:]),
    )
    inter = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)
    union = area_p + area_t - inter
    iou = inter / tf.maximum(union, 1e-9)
    hull = tf.reduce_prod(
        tf.maximum(predicted[..., 2:], true[..., 2:])
        - tf.minimum(predicted[..., :2], true[..., :2]),
        axis=-1,
    )
    return 1.0 - (iou - (hull - union) / tf.maximum(hull, 1e-9))


def centerness(distances):
    """FCOS's centerness of a location from its distances (top, left, bottom, right) to its box:
    sqrt(min(l, r) / max(l, r) x min(t, b) / max(t, b)); distances under 1 pixel count as 1 (a
    location outside a thin box still gets a low, not a zero, target)."""
    d = tf.maximum(distances, 1.0)
    vertical = tf.minimum(d[..., 0], d[..., 2]) / tf.maximum(d[..., 0], d[..., 2])
    horizontal = tf.minimum(d[..., 1], d[..., 3]) / tf.maximum(d[..., 1], d[..., 3])
    return tf.sqrt(vertical * horizontal)


class Detection(Task):
    name = "detection"
    image_key = "image"
    calibration_bytes = 32 * 2**20  # cap on the test images kept for the TFLite report
    shown = 8  # validation images drawn with their predicted and true boxes each epoch

    def __init__(self, config, source):
        super().__init__(config, source)
        features = source.features
        objects = features["objects"] if "objects" in features.keys() else None
        if objects is None or "bbox" not in objects.feature.keys():
            raise ValueError(f"data set {source.name} has no objects/bbox feature to detect")
        names = config.get("classes")
        if not names:
            if "label" not in objects.feature.keys():
                raise ValueError("name the classes: --set task.classes='[\"cat\", ...]'")
            names = objects.feature["label"].names
        self.class_names = [str(c) for c in names]
        self.num_classes = len(self.class_names)
        size = config.get("image_size")
        self.image_shape, self.resize = image_shape(source, self.image_key, size), bool(size)
        self.max_objects = int(config.get("max_objects", 100))
        self.augmentation = config.get("augment", "none")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augmentation!r} (known: {', '.join(AUGMENTATIONS)})"
            )
        self.scale = float(config.get("scale", 0.2))
        self.size_ranges = config.get("size_ranges")
        self.center_radius = float(config.get("center_radius", 1.5))
        self.alpha = float(config.get("focal_alpha", 0.25))
        self.gamma = float(config.get("focal_gamma", 2.0))
        self.nms = {**NMS, **(config.get("nms") or {})}
        unknown = sorted(set(self.nms) - set(NMS))
        if unknown:
            raise ValueError(f"unknown task.nms setting(s) {unknown} (known: {sorted(NMS)})")
        self._levels = None

    def model_overrides(self):
        return {"input_shape": self.image_shape, "num_classes": self.num_classes}

    # -- inputs --------------------------------------------------------------------------------
    def preprocess(self, example):
        image = tf.cast(example[self.image_key], tf.float32)
        if self.resize:
            image = tf.image.resize(image, self.image_shape[:2])
        objects = example["objects"]
        boxes = tf.reshape(tf.cast(objects["bbox"], tf.float32), [-1, 4])[: self.max_objects]
        classes = tf.cast(objects["label"], tf.int32)[: self.max_objects]
        missing = self.max_objects - tf.shape(classes)[0]
        boxes = tf.pad(boxes, [[0, missing], [0, 0]])
        classes = tf.pad(classes, [[0, missing]], constant_values=-1)
        return (
            tf.ensure_shape(image, self.image_shape),
            tf.ensure_shape(boxes, [self.max_objects, 4]),
            tf.ensure_shape(classes, [self.max_objects]),
        )

    @property
    def augment(self):
        return None if self.augmentation == "none" else self._scale_flip

    def _scale_flip(self, image, boxes, classes, seed):
        height, width, channels = self.image_shape
        u = tf.random.stateless_uniform([5], seed=seed)
        zoom = 1.0 + (2.0 * u[0] - 1.0) * self.scale
        h = tf.cast(tf.round(height * zoom), tf.int32)
        w = tf.cast(tf.round(width * zoom), tf.int32)
        image = tf.image.resize(image, [h, w])
        big_h, big_w = tf.maximum(h, height), tf.maximum(w, width)
        top = tf.cast(u[1] * tf.cast(big_h - h + 1, tf.float32), tf.int32)  # placement, if smaller
        left = tf.cast(u[2] * tf.cast(big_w - w + 1, tf.float32), tf.int32)
        image = tf.image.pad_to_bounding_box(image, top, left, big_h, big_w)
        crop_y = tf.cast(
            u[3] * tf.cast(big_h - height + 1, tf.float32), tf.int32
        )  # crop, if larger
        crop_x = tf.cast(u[4] * tf.cast(big_w - width + 1, tf.float32), tf.int32)
        image = tf.slice(image, [crop_y, crop_x, 0], [height, width, channels])
        size = tf.cast(tf.stack([h, w, h, w]), tf.float32)
        shift = tf.cast(tf.stack([top - crop_y, left - crop_x] * 2), tf.float32)
        moved = boxes * size + shift
        limit = tf.constant([height, width, height, width], tf.float32)
        clipped = tf.clip_by_value(moved, 0.0, limit)
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        seen = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = (classes >= 0) & (seen > 0.0) & (seen >= 0.5 * area)
        boxes = clipped / limit
        if self.augmentation == "flip_scale":
            flip = tf.random.stateless_uniform([], seed=seed + 1) < 0.5
            image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
            mirrored = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], 1)
            boxes = tf.where(flip, mirrored, boxes)
        boxes = tf.where(keep[:, None], boxes, 0.0)
        classes = tf.where(keep, classes, -1)
        return tf.ensure_shape(image, self.image_shape), boxes, classes

    # -- targets -------------------------------------------------------------------------------
    def _constants(self, model):
        """Locations, strides and size ranges of the model's levels (numpy, traced as constants)."""
        levels = fcos.levels_of(model)
        self._levels = levels
        yx, strides = fcos.points(self.image_shape, levels)
        bounds = self.size_ranges or [8 * 2**level for level in levels[:-1]]
        if len(bounds) != len(levels) - 1:
            raise ValueError(
                f"task.size_ranges needs {len(levels) - 1} boundaries for levels {levels}, "
                f"not {bounds}"
            )
        edges = np.array([0.0, *map(float, bounds), np.inf], np.float32)
        index = np.log2(strides).astype(int) - levels[0]
        return yx, strides, edges[index], edges[index + 1]

    def assign(self, model, boxes, classes):
        """Per location: `positive` [B,P] bool, `classes` [B,P] int32 and `boxes` [B,P,4] (in
        pixels) of the box it is assigned to (see the module's docstring)."""
        yx, strides, low, high = (tf.constant(a) for a in self._constants(model))
        height, width = self.image_shape[:2]
        boxes = boxes * tf.constant([height, width, height, width], tf.float32)  # [B,M,4] pixels
        valid = classes >= 0  # [B,M]
        d = fcos.encode_boxes(boxes[:, None, :, :], yx[None, :, None, :])  # [B,P,M,4]
        inside = tf.reduce_min(d, axis=-1) > 0.0
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0  # [B,M,2]
        offset = tf.abs(yx[None, :, None, :] - centre[:, None, :, :])  # [B,P,M,2]
        radius = self.center_radius * strides[None, :, None]
        near = tf.reduce_max(offset, axis=-1) < radius
        reach = tf.reduce_max(d, axis=-1)
        in_range = (reach > low[None, :, None]) & (reach <= high[None, :, None])
        candidate = inside & near & in_range & valid[:, None, :]
        # a box with no location takes the nearest one on the level its size belongs to
        size = tf.reduce_max(boxes[..., 2:] - boxes[..., :2], axis=-1)[:, None, :] / 2.0
        level_fits = (size > low[None, :, None]) & (size <= high[None, :, None])
        distance = tf.reduce_sum(tf.square(offset), axis=-1)
        distance = tf.where(level_fits, distance, distance + 1e12)
        nearest = tf.one_hot(tf.argmin(distance, axis=1), tf.shape(yx)[0], axis=1) > 0.5
        lonely = valid & ~tf.reduce_any(candidate, axis=1)  # [B,M]
        candidate |= nearest & lonely[:, None, :]
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])  # [B,M]
        cost = tf.where(candidate, area[:, None, :], np.inf)
        chosen = tf.argmin(cost, axis=-1, output_type=tf.int32)  # [B,P]
        return {
            "positive": tf.reduce_any(candidate, axis=-1),
            "classes": tf.gather(classes, chosen, batch_dims=1),
            "boxes": tf.gather(boxes, chosen, batch_dims=1),
        }

    # -- steps ---------------------------------------------------------------------------------
    def losses(self, model, outputs, boxes, classes):
        """The replica's loss sums {class, box, centerness} and its positives' count; `_means`
        divides them by the count over every replica."""
        targets = self.assign(model, boxes, classes)
        yx = tf.constant(fcos.points(self.image_shape, self._levels)[0])
        positive = tf.cast(targets["positive"], tf.float32)
        count = tf.reduce_sum(positive)
        logits = tf.cast(outputs["classes"], tf.float32)
        truth = tf.one_hot(tf.where(targets["positive"], targets["classes"], -1), self.num_classes)
        focal = sigmoid_focal_loss(truth, logits, self.alpha, self.gamma)
        predicted = fcos.decode_boxes(tf.cast(outputs["distances"], tf.float32), yx)
        box = giou_loss(predicted, targets["boxes"])
        centre_truth = centerness(fcos.encode_boxes(targets["boxes"], yx))
        centre = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=centre_truth, logits=tf.cast(outputs["centerness"], tf.float32)
        )
        return {
            "class_loss": tf.reduce_sum(focal),
            "box_loss": tf.reduce_sum(box * positive),
            "centerness_loss": tf.reduce_sum(centre * positive),
            "positives": count,
        }

    @staticmethod
    def _means(parts, local):
        """The losses over the positives of every replica's batch (FCOS normalizes by the
        positives of the whole batch, across GPUs), and the whole batch's size: on N replicas as
        on one device."""
        context = tf.distribute.get_replica_context()
        positives = context.all_reduce(tf.distribute.ReduceOp.SUM, parts["positives"])
        batch = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        normalizer = tf.maximum(positives, 1.0)
        return {k: parts[k] / normalizer for k in LOSSES}, batch

    def train_step(self, model, optimizers, batch, global_batch_size):
        images, boxes, classes = batch
        local = tf.cast(tf.shape(images)[0], tf.float32)
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            parts = self.losses(model, outputs, boxes, classes)
            means, batch = self._means(parts, local)
            # the replicas' gradients are summed: each holds its share of the batch's mean
            loss = tf.add_n(list(means.values())) + regularization_loss(model)
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return self._sums(means, parts["positives"], batch)

    def eval_step(self, model, batch):
        images, boxes, classes = batch
        local = tf.cast(tf.shape(images)[0], tf.float32)
        outputs = model(images, training=False)
        parts = self.losses(model, outputs, boxes, classes)
        means, batch = self._means(parts, local)
        sums = self._sums(means, parts["positives"], batch)
        found = self.detect(model, outputs)
        sums[EXAMPLES] = {**found, "true_boxes": boxes, "true_classes": classes}
        return sums

    def detect(self, model, outputs):
        """Raw outputs -> the exports' detections (decoding, then per-class NMS)."""
        decoded = fcos.DecodeDetections(self.image_shape, fcos.levels_of(model))(outputs)
        return per_class_nms(decoded["boxes"], decoded["scores"], **self.nms)

    @staticmethod
    def _sums(means, positives, batch):
        """Sums for the loop, which adds them over replicas and batches and divides by `count`:
        each replica's share of the batch's means (its loss sums over all the positives) times
        the batch's size, and its share of the batch's size as its count."""
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        sums = {k: v * batch for k, v in means.items()}
        sums["loss"] = tf.add_n(list(sums.values()))
        sums.update(positives=positives, count=batch / replicas)
        return sums

    def results(self, totals):
        metrics = super().results(totals)
        found = totals.get(EXAMPLES)
        if found is not None:
            metrics.update(
                metrics_lib.coco_scores(
                    found["true_boxes"],
                    found["true_classes"],
                    found["detection_boxes"],
                    found["detection_scores"],
                    found["detection_classes"],
                    found["num_detections"],
                    self.image_shape[:2],
                )
            )
        return metrics

    # -- what the run shows and leaves behind --------------------------------------------------
    def log_epoch(self, model, sample, totals, step):
        images, boxes, classes = (a[: self.shown] for a in sample)
        found = {k: v.numpy() for k, v in self.detect(model, model(images, training=False)).items()}
        names, drawn = self.class_names, []
        for i in range(len(images)):
            n = int(found["num_detections"][i])
            drawn.append(
                pictures.draw_boxes(
                    images[i], found["detection_boxes"][i, :n], found["detection_classes"][i, :n],
                    names, found["detection_scores"][i, :n], min_score=0.3, scale=2,
                )
            )  # fmt: skip
        for i in range(len(images)):
            real = classes[i] >= 0
            drawn.append(
                pictures.draw_boxes(images[i], boxes[i][real], classes[i][real], names, scale=2)
            )
        captions = ["predicted"] * len(images) + ["true"] * len(images)
        cell = drawn[0].shape[0]
        picture = summaries.grid(np.stack(drawn), captions, columns=len(images), cell=cell)
        summaries.image("detections", picture, step)

    def calibration(self, train, test):
        per_example = int(np.prod(self.image_shape))
        test_n = max(1, min(2000, self.calibration_bytes // per_example))
        x_train = np.stack(
            [x for x, _, _ in train.shuffle(1024, seed=0).take(200).as_numpy_iterator()]
        )
        triples = list(test.take(test_n).as_numpy_iterator())
        return {
            "representative": x_train.round().astype(np.uint8),
            "x_test": np.stack([x for x, _, _ in triples]).round().astype(np.uint8),
            "y_test.boxes": np.stack([b for _, b, _ in triples]),
            "y_test.classes": np.stack([c for _, _, c in triples]),
        }

    def export_info(self):
        return {
            "class_names": self.class_names,
            "image_shape": list(self.image_shape),
            "nms": dict(self.nms),
        }
