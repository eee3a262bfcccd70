"""Semantic segmentation: a class per pixel, trained with pixel cross-entropy (plus an optional
soft Dice term), measured by mean IoU and per-class IoU each epoch, with predicted masks drawn
over the inputs in TensorBoard. Exports take uint8 images or their bytes.

Task config (the recipe's `task` section):
- `classes`: the class names, index = the mask's value (after `mask_offset`); by default
  "background" and then the names of the data set's `objects` labels (digit scenes: 11 classes);
- `mask_offset`: subtracted from the mask's values (tfds oxford_iiit_pet's trimaps are 1..3);
  values outside the classes are clipped into them;
- `image_size`: [H, W] to resize images (bilinear) and masks (nearest) to, for data sets of mixed
  sizes; by default the data's own fixed size;
- `prior_bias` (default true): the model's classifier starts at the log class frequencies of the
  first 256 training masks (Lin et al. 2017), not at uniform probabilities: with ~95% background
  pixels, a uniform start spends hundreds of steps learning that prior alone;
- `dice`: weight of the soft Dice loss (1 - mean over classes of 2|P*Y| / (|P| + |Y|)), 0 = off;
- `augment`: "none", "scale" or "flip_scale": a scale jitter of 1 +- `scale` (resize, then a
  random crop or a random placement on `background`), and with "flip_scale" a horizontal flip
  half the time; the mask moves with the image, pixel for pixel (nearest-neighbour for the mask).
  Digits are not mirror-symmetric: their recipes jitter the scale only.

Metrics: `loss`, `pixel_accuracy`, and on validation `mean_iou` (over the classes present in the
labels or the predictions) and `iou_<class>`, from the pixel confusion matrix summed over the
whole split (as tf.keras.metrics.MeanIoU does), not averaged over batches.
"""

import keras
import numpy as np
import tensorflow as tf

from evaluation import segmentation as metrics_lib
from training import summaries
from training.tasks.base import Task, apply_gradients, image_shape, regularization_loss

AUGMENTATIONS = ("none", "scale", "flip_scale")
PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [220, 190, 255],
        [170, 110, 40],
    ],
    np.float32,
)


class Segmentation(Task):
    name = "segmentation"
    image_key, mask_key = "image", "segmentation_mask"
    calibration_bytes = 16 * 2**20
    shown = 8  # validation images drawn with their predicted and true masks each epoch

    def __init__(self, config, source):
        super().__init__(config, source)
        features = source.features
        if self.mask_key not in features.keys():
            raise ValueError(f"data set {source.name} has no {self.mask_key!r} feature")
        self.class_names = [str(c) for c in config.get("classes") or self._classes(features)]
        self.num_classes = len(self.class_names)
        self.mask_offset = int(config.get("mask_offset", 0))
        self.background = int(config.get("background", 0))
        size = config.get("image_size")
        self.image_shape, self.resize = image_shape(source, self.image_key, size), bool(size)
        self.dice = float(config.get("dice", 0.0))
        self.augmentation = config.get("augment", "none")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augmentation!r} (known: {', '.join(AUGMENTATIONS)})"
            )
        self.scale = float(config.get("scale", 0.2))
        self.prior_bias = bool(config.get("prior_bias", True))

    @staticmethod
    def _classes(features):
        objects = features["objects"] if "objects" in features.keys() else None
        if objects is None or "label" not in objects.feature.keys():
            raise ValueError("name the mask's classes: --set task.classes='[\"background\", ...]'")
        return ["background", *objects.feature["label"].names]

    def model_overrides(self):
        overrides = {"input_shape": self.image_shape, "num_classes": self.num_classes}
        if self.prior_bias:
            overrides["output_bias"] = self._log_priors()
        return overrides

    def _log_priors(self, examples=256):
        """Log class frequencies over the first training masks, the classifier's starting biases
        (absent classes at a frequency of 1e-4)."""
        splits = self.source.splits or ["train"]  # tfds lists none before preparing
        split = "train" if "train" in splits else splits[0]
        masks = self.inputs(self.source.load(split).take(examples)).map(lambda _, m: m)
        counts = np.zeros(self.num_classes)
        for mask in masks.as_numpy_iterator():
            counts += np.bincount(mask.ravel(), minlength=self.num_classes)
        frequencies = np.maximum(counts / max(counts.sum(), 1.0), 1e-4)
        return [round(float(v), 4) for v in np.log(frequencies)]

    def preprocess(self, example):
        image = tf.cast(example[self.image_key], tf.float32)
        mask = tf.cast(example[self.mask_key], tf.int32) - self.mask_offset
        if self.resize:
            size = self.image_shape[:2]
            image = tf.image.resize(image, size)
            mask = tf.image.resize(mask, size, method="nearest")
        mask = tf.clip_by_value(mask[..., 0], 0, self.num_classes - 1)
        return tf.ensure_shape(image, self.image_shape), mask

    @property
    def augment(self):
        if self.augmentation == "none":
            return None
        return self._flip_scale

    def _flip_scale(self, image, mask, seed):
        """The scale jitter, and the flip if the recipe asks for it."""
        height, width, channels = self.image_shape
        u = tf.random.stateless_uniform([4], seed=seed)
        zoom = 1.0 + (2.0 * u[0] - 1.0) * self.scale
        h = tf.cast(tf.round(height * zoom), tf.int32)
        w = tf.cast(tf.round(width * zoom), tf.int32)
        image = tf.image.resize(image, [h, w])
        mask = tf.image.resize(mask[..., None], [h, w], method="nearest")
        # one tensor, so the crop and the placement move image and mask together; the mask as
        # its distance from the background so that padding (zeros) is background
        both = tf.concat([image, tf.cast(mask - self.background, tf.float32)], axis=-1)
        big_h, big_w = tf.maximum(h, height), tf.maximum(w, width)
        top = tf.cast(u[1] * tf.cast(big_h - h + 1, tf.float32), tf.int32)
        left = tf.cast(u[2] * tf.cast(big_w - w + 1, tf.float32), tf.int32)
        both = tf.image.pad_to_bounding_box(both, top, left, big_h, big_w)
        both = tf.image.stateless_random_crop(both, [height, width, channels + 1], seed=seed + 1)
        if self.augmentation == "flip_scale":
            both = tf.cond(u[3] < 0.5, lambda: tf.image.flip_left_right(both), lambda: both)
        image = tf.ensure_shape(both[..., :channels], self.image_shape)
        mask = tf.cast(tf.round(both[..., channels]), tf.int32) + self.background
        return image, tf.ensure_shape(mask, self.image_shape[:2])

    # -- steps -----------------------------------------------------------------------------
    def per_example_loss(self, masks, probs):
        """Mean pixel cross-entropy of each example, plus `dice` x its soft Dice loss."""
        ce = keras.losses.sparse_categorical_crossentropy(masks, probs)
        loss = tf.reduce_mean(ce, axis=[1, 2])
        if self.dice:
            truth = tf.one_hot(masks, self.num_classes)
            overlap = tf.reduce_sum(probs * truth, axis=[1, 2])
            total = tf.reduce_sum(probs + truth, axis=[1, 2])
            dice = tf.reduce_mean((2.0 * overlap + 1.0) / (total + 1.0), axis=-1)
            loss += self.dice * (1.0 - dice)
        return loss

    def train_step(self, model, optimizers, batch, global_batch_size):
        images, masks = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            probs = tf.cast(model(images, training=True), tf.float32)
            per_example = self.per_example_loss(masks, probs)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        return self._sums(masks, probs, per_example)

    def eval_step(self, model, batch):
        images, masks = batch
        probs = tf.cast(model(images, training=False), tf.float32)
        sums = self._sums(masks, probs, self.per_example_loss(masks, probs))
        predicted = tf.argmax(probs, axis=-1, output_type=masks.dtype)
        sums["confusion"] = tf.math.confusion_matrix(
            tf.reshape(masks, [-1]),
            tf.reshape(predicted, [-1]),
            num_classes=self.num_classes,
            dtype=tf.float32,
        )
        return sums

    def _sums(self, masks, probs, per_example):
        predicted = tf.argmax(probs, axis=-1, output_type=masks.dtype)
        correct = tf.reduce_mean(tf.cast(tf.equal(predicted, masks), tf.float32), axis=[1, 2])
        return {
            "loss": tf.reduce_sum(per_example),
            "pixel_accuracy": tf.reduce_sum(correct),
            "count": tf.cast(tf.shape(masks)[0], tf.float32),
        }

    def results(self, totals):
        metrics = super().results(totals)
        if "confusion" in totals:
            ious = metrics_lib.iou_per_class(totals["confusion"])
            metrics["mean_iou"] = float(np.nanmean(ious))
            for name, iou in zip(self.class_names, ious):
                if not np.isnan(iou):
                    metrics[f"iou_{name}"] = float(iou)
        return metrics

    # -- what the run shows and leaves behind --------------------------------------------------
    def log_epoch(self, model, sample, totals, step):
        images, masks = sample
        images, masks = images[: self.shown], masks[: self.shown]
        predicted = np.argmax(np.asarray(model(images, training=False)), axis=-1)
        pictures = np.concatenate([overlay(images, predicted), overlay(images, masks)])
        captions = ["predicted"] * len(images) + ["true"] * len(images)
        picture = summaries.grid(pictures, captions, columns=len(images), cell=128)
        summaries.image("segmentation", picture, step)

    def calibration(self, train, test):
        per_example = int(np.prod(self.image_shape)) * 4
        test_n = max(1, min(500, self.calibration_bytes // per_example))
        x_train = np.stack(
            [x for x, _ in train.shuffle(1024, seed=0).take(200).as_numpy_iterator()]
        )
        pairs = list(test.take(test_n).as_numpy_iterator())
        return {
            "representative": x_train.astype(np.uint8),
            "x_test": np.stack([x for x, _ in pairs]).astype(np.uint8),
            "y_test": np.stack([y for _, y in pairs]),
        }

    def export_info(self):
        return {"class_names": self.class_names, "image_shape": list(self.image_shape)}


def overlay(images, classes, alpha=0.55) -> np.ndarray:
    """Images (0..255, [N,H,W,C]) with each non-background pixel tinted by its class's colour."""
    rgb = summaries.to_uint8(images).astype(np.float32)
    classes = np.asarray(classes)
    colors = PALETTE[classes % len(PALETTE)]
    tinted = np.where((classes > 0)[..., None], (1 - alpha) * rgb + alpha * colors, rgb)
    return tinted.round().astype(np.uint8)
