"""Image classification: cross-entropy (with optional label smoothing), accuracy, a labelled grid of
test images, their Grad-CAM heatmaps and a confusion matrix per epoch; exports take raw pixels or
encoded image bytes."""

import math

import keras
import numpy as np
import tensorflow as tf

import saliency
from training import summaries
from training.tasks.base import Task, apply_gradients, regularization_loss

AUGMENTATIONS = ("none", "crop", "crop_flip", "affine")


def warp(image, size, matrix, tx, ty):
    """`image` [H,W,C] warped about its centre c in one bilinear pass, filled with zeros: output
    pixel (x, y) samples the input at M (x - c - t) + c, with M = ((a, b), (c, d)) = `matrix`
    and t = (tx, ty); `size` is (H, W) (the classification and self-supervised augmentations)."""
    a, b, c, d = matrix
    height, width = size
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    transform = tf.stack(
        [
            a,
            b,
            cx - a * (cx + tx) - b * (cy + ty),
            c,
            d,
            cy - c * (cx + tx) - d * (cy + ty),
            0.0,
            0.0,
        ]
    )
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.constant([height, width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )[0]


class Classification(Task):
    name = "classification"
    image_key, label_key = "image", "label"
    calibration_bytes = 16 * 2**20  # cap on the arrays kept for TFLite calibration/report
    heatmap_images = 8  # fixed test images drawn with their Grad-CAM each epoch

    def __init__(self, config, source):
        super().__init__(config, source)
        self.class_names = source.class_names
        self.num_classes = len(self.class_names)
        self.image_shape = tuple(source.features[self.image_key].shape)
        self.label_smoothing = float(config.get("label_smoothing", 0.0))
        # "none" | "crop_flip" | "crop" | "affine" (rotation, scale and shift in one warp)
        self.augmentation = config.get("augment", "none")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augmentation!r} (known: {', '.join(AUGMENTATIONS)})"
            )
        self.rotation = float(config.get("rotation", 10.0))  # degrees, either way
        self.scale = float(config.get("scale", 0.1))  # zoom in 1 +- scale
        self.shift = float(config.get("shift", 0.1))  # fraction of the height/width, either way

    def model_overrides(self):
        return {"input_shape": self.image_shape, "num_classes": self.num_classes}

    def preprocess(self, example):
        return tf.cast(example[self.image_key], tf.float32), example[self.label_key]

    @property
    def augment(self):
        if self.augmentation == "none":
            return None
        height, width, _ = self.image_shape
        pad = max(2, height // 8)

        def augment(image, label, seed):
            if self.augmentation == "affine":
                return self._affine(image, seed), label
            # pad-and-crop (the CIFAR recipe), then a horizontal flip unless told not to
            padded = tf.image.resize_with_crop_or_pad(image, height + 2 * pad, width + 2 * pad)
            image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)
            if self.augmentation == "crop_flip":
                image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
            return image, label

        return augment

    def _affine(self, image, seed):
        """Rotate by up to `rotation` degrees, zoom by 1 +- `scale` and shift by up to `shift` of
        the size, about the centre, in one bilinear warp filled with zeros (the background)."""
        height, width, _ = self.image_shape
        u = tf.random.stateless_uniform([4], seed=seed, minval=-1.0, maxval=1.0)
        angle = u[0] * self.rotation * math.pi / 180.0
        zoom = 1.0 + u[1] * self.scale
        tx, ty = u[2] * self.shift * width, u[3] * self.shift * height
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        # M = R(angle) / zoom
        warped = warp(image, (height, width), (cos, -sin, sin, cos), tx, ty)
        return tf.ensure_shape(warped, self.image_shape)

    def _per_example_loss(self, labels, probs):
        one_hot = tf.one_hot(labels, self.num_classes)
        return keras.losses.categorical_crossentropy(
            one_hot, probs, label_smoothing=self.label_smoothing
        )

    def model_input(self, inputs):
        """What the model is given of a batch's inputs (a video task samples its frames here)."""
        return inputs

    def train_step(self, model, optimizers, batch, global_batch_size):
        images, labels = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            probs = tf.cast(model(self.model_input(images), training=True), tf.float32)
            per_example = self._per_example_loss(labels, probs)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        return self._sums(labels, probs, per_example)

    def eval_step(self, model, batch):
        images, labels = batch
        probs = tf.cast(model(self.model_input(images), training=False), tf.float32)
        sums = self._sums(labels, probs, self._per_example_loss(labels, probs))
        predicted = tf.argmax(probs, axis=-1, output_type=labels.dtype)
        sums["confusion"] = tf.math.confusion_matrix(
            labels, predicted, num_classes=self.num_classes, dtype=tf.float32
        )
        return sums

    def _sums(self, labels, probs, per_example):
        predicted = tf.argmax(probs, axis=-1, output_type=labels.dtype)
        return {
            "loss": tf.reduce_sum(per_example),
            "accuracy": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32)),
            "count": tf.cast(tf.size(labels), tf.float32),
        }

    def log_epoch(self, model, sample, totals, step):
        images, labels = sample
        predicted = np.argmax(np.asarray(model(images, training=False)), axis=-1)
        names = self.class_names
        captions = [
            f"{names[p]} ({names[t]})" if p != t else names[p] for p, t in zip(predicted, labels)
        ]
        colors = ["black" if p == t else "red" for p, t in zip(predicted, labels)]
        summaries.image("predictions", summaries.grid(images, captions, colors), step)
        self._log_heatmaps(model, images[: self.heatmap_images], step)
        if "confusion" in totals:
            picture = summaries.confusion_matrix_image(totals["confusion"], names)
            summaries.image("confusion_matrix", picture, step)

    def _log_heatmaps(self, model, images, step):
        """`heatmaps`: the first test images of the sample with their Grad-CAM (predicted class)
        over them; one forward and backward pass of a few images (the split model is built once)."""
        if getattr(self, "_explained", (None,))[0] is not model:
            try:
                self._explained = (model, saliency.Explainer(model))
            except ValueError:  # no feature map to weigh (a model outside the zoo's families)
                self._explained = (model, None)
        explainer = self._explained[1]
        if explainer is None:
            return
        explained = saliency.gradcam(explainer, images)
        pictures = saliency.overlay(images, explained.heatmaps.numpy())
        captions = [self.class_names[c] for c in explained.classes.numpy()]
        summaries.image("heatmaps", summaries.grid(pictures, captions, columns=4), step)

    def calibration(self, train, test):
        per_example = int(np.prod(self.image_shape)) * 4
        test_n = max(1, min(2000, self.calibration_bytes // per_example))
        # drawn across the split: folder data sets load sorted by label
        x_train = np.stack(
            [x for x, _ in train.shuffle(4096, seed=0).take(200).as_numpy_iterator()]
        )
        pairs = list(test.take(test_n).as_numpy_iterator())
        return {
            "representative": x_train,
            "x_test": np.stack([x for x, _ in pairs]),
            "y_test": np.array([y for _, y in pairs]),
        }

    def export_info(self):
        return {"class_names": self.class_names, "image_shape": list(self.image_shape)}
