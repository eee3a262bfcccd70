"""The task contract: what the shared loop asks of each kind of model.

A task turns a data set's feature dicts into model inputs, owns the per-replica train and
evaluation steps (losses, gradients, metrics), and says what to show in TensorBoard and what to
hand the exporter. The loop knows nothing else about the model. Steps return *sums over the
replica's examples* plus `count`; the loop adds them across replicas and steps, and `results`
turns the totals into metrics (by default each sum divided by count). For a metric that is not a
sum (COCO mAP ranks every detection of the split), `eval_step` may also return, under
`EXAMPLES`, a dict of per-example tensors (batch first): the loop gathers them across replicas
and concatenates them over the split, and `results` finds them under the same key.
"""

import numpy as np
import tensorflow as tf

EXAMPLES = "examples"  # eval_step's per-example outputs, gathered rather than summed


class Task:
    name = "base"
    kind = None  # its task kind in zoo/tasks.py (what its exports carry); None: the same as name

    @classmethod
    def export_kind(cls) -> str:
        return cls.kind or cls.name

    def __init__(self, config: dict, source):
        self.config = config
        self.source = source

    # -- inputs ------------------------------------------------------------------------------
    def model_overrides(self) -> dict:
        """Model arguments that follow from the data (classes, input shape, vocabulary)."""
        return {}

    def inputs(self, ds: tf.data.Dataset) -> tf.data.Dataset:
        """A split's feature dicts -> model-ready elements; deterministic, runs before the cache.
        By default one element per example through `preprocess`; a task that cuts examples into
        several elements (text into windows) overrides this instead."""
        return ds.map(self.preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def preprocess(self, example):
        """Feature dict -> model-ready element."""
        raise NotImplementedError

    augment = None  # optional `augment(*element, seed) -> element`, training only, after the cache

    # -- steps (run per replica inside strategy.run) -----------------------------------------
    def build_optimizers(self, model, make_optimizer) -> dict:
        """Optimizers by name, built on their variables (the loop checkpoints them all)."""
        optimizer = make_optimizer()
        optimizer.build(model.trainable_variables)
        return {"model": optimizer}

    def train_step(self, model, optimizers, batch, global_batch_size) -> dict:
        raise NotImplementedError

    def eval_step(self, model, batch) -> dict:
        raise NotImplementedError

    def results(self, totals: dict) -> dict:
        n = max(float(totals["count"]), 1.0)
        return {
            k: float(v) / n
            for k, v in totals.items()
            if k not in ("count", EXAMPLES) and np.ndim(v) == 0
        }

    # -- what the run shows and leaves behind --------------------------------------------------
    def log_epoch(self, model, sample, totals, step) -> dict | None:
        """Write images/text for one epoch into the default summary writer (validation); may
        return extra scalar metrics (e.g. a sample-quality score), which the loop logs as
        validation `epoch_<name>` and keeps in the run's metrics. Runs on the chief only."""

    def calibration(self, train: tf.data.Dataset, test: tf.data.Dataset) -> dict:
        """Arrays the exporter keeps for TFLite calibration and the accuracy report."""
        return {}

    def export_info(self) -> dict:
        """What the exporter needs beyond the model: class names, tokenizer, ..."""
        return {}


def image_shape(source, key="image", size=None) -> tuple:
    """(height, width, channels) of a source's images: `size` ([H, W], a task's `image_size`, to
    resize to) when given, else the data set's own; ValueError when neither fixes it."""
    shape = tuple(source.features[key].shape)
    if size:
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"task.image_size={size}: expected [height, width], each >= 8")
        shape = (int(size[0]), int(size[1]), int(shape[-1]))
    if None in shape:
        raise ValueError(
            f"data set {source.name} has images of varying size: set task.image_size=[H,W]"
        )
    return shape


def apply_gradients(optimizer, tape, loss, variables):
    """Gradients of `loss` (scaled for float16 loss scaling) applied to `variables`."""
    with tape:  # the scaling is recorded too: outside the tape the scaled loss has no gradient
        scaled = optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, variables)
    optimizer.apply_gradients(zip(grads, variables))


def regularization_loss(model):
    if not model.losses:
        return 0.0
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) / replicas
