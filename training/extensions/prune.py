"""Magnitude pruning for any zoo model, in the training loop (the `prune` recipe section).

TensorFlow Model Optimization's `prune_low_magnitude` rejects Keras 3 models (tfmot #1119), so the
zoo prunes by itself, the way tfmot and Zhu & Gupta (2017, "To prune, or not to prune") define it:
the kernels of the chosen layers are masked after every optimizer step, and every `frequency`
steps from `begin_step` to `end_step` the masks are recomputed so that the smallest-magnitude
weights of each kernel are zero, at a sparsity following the polynomial decay

    s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power

The masks are variables in the run's checkpoints (`--resume` keeps them), and the model itself
keeps plain layers: what is pruned is zero in model.keras and in every export, with nothing to
strip. `structure: "2:4"` keeps the 2 largest of every 4 consecutive input weights instead
(NVIDIA's sparse tensor cores), at 50%, from `begin_step` on; a kernel whose input size is not a
multiple of 4 stays dense.

    --set prune.sparsity=0.8 --set prune.layers='["conv","dense"]'

Fields: `sparsity` (final; 0 = off), `initial_sparsity`, `begin_step`, `end_step` (null: 70% of
the run, leaving the rest to recover), `frequency`, `power`, `layers` (kinds `conv`, `dense`,
`embedding`, or layer names), `structure` ("unstructured" | "2:4").
"""

import keras
import numpy as np
import tensorflow as tf

from training.extensions import Extension

KINDS = {
    "conv": (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D),
    "dense": (keras.layers.Dense,),
    "embedding": (keras.layers.Embedding,),
}
STRUCTURES = ("unstructured", "2:4")


class Prune(Extension):
    section = "prune"
    defaults = {
        "sparsity": 0.0,
        "initial_sparsity": 0.0,
        "begin_step": 0,
        "end_step": None,
        "frequency": 100,
        "power": 3,
        "layers": ["conv", "dense"],
        "structure": "unstructured",
    }

    @classmethod
    def enabled(cls, config):
        return float(config["sparsity"]) > 0 or config["structure"] == "2:4"

    def __init__(self, config, total_steps):
        super().__init__(config, total_steps)
        if config["structure"] not in STRUCTURES:
            raise ValueError(f"prune.structure must be one of {STRUCTURES}")
        self.final = float(config["sparsity"])
        self.initial = float(config["initial_sparsity"])
        if not 0 <= self.initial <= self.final < 1 and config["structure"] != "2:4":
            raise ValueError("prune: need 0 <= initial_sparsity <= sparsity < 1")
        self.begin = int(config["begin_step"])
        end = config["end_step"]
        self.end = int(end) if end is not None else max(self.begin + 1, int(0.7 * total_steps))
        if self.end <= self.begin:
            raise ValueError(f"prune: end_step {self.end} must come after begin_step {self.begin}")
        self.frequency = max(1, int(config["frequency"]))
        self.power = float(config["power"])
        self.two_four = config["structure"] == "2:4"

    # -- which kernels --------------------------------------------------------------------------
    def _chosen(self, layer) -> bool:
        wanted = self.config["layers"]
        wanted = wanted.split(",") if isinstance(wanted, str) else list(wanted)
        unknown = [w for w in wanted if w not in KINDS]
        return layer.name in unknown or any(
            isinstance(layer, KINDS[w]) for w in wanted if w in KINDS
        )

    def build(self, model):
        self.kernels, self.masks = [], []
        for layer in _layers(model):
            kernel = getattr(layer, "kernel", None)
            if kernel is None:
                kernel = getattr(layer, "embeddings", None)
            if kernel is None or not self._chosen(layer):
                continue
            if self.two_four and (len(kernel.shape) < 2 or kernel.shape[-2] % 4):
                continue  # no groups of 4 inputs
            self.kernels.append(kernel)
            self.masks.append(
                tf.Variable(
                    tf.ones(kernel.shape, kernel.dtype),
                    trainable=False,
                    name=f"{layer.name}_prune_mask",
                )
            )
        if not self.kernels:
            raise ValueError(f"prune: no layer of {model.name} matches {self.config['layers']}")
        self._module = tf.Module()
        self._module.masks = self.masks

    def checkpoint(self):
        return self._module

    # -- the schedule ---------------------------------------------------------------------------
    def target(self, step):
        """The sparsity the schedule asks for after `step` steps (a float32 tensor)."""
        if self.two_four:
            return tf.constant(0.5)
        progress = tf.clip_by_value(
            (tf.cast(step, tf.float32) - self.begin) / (self.end - self.begin), 0.0, 1.0
        )
        return self.final + (self.initial - self.final) * (1.0 - progress) ** self.power

    def after_step(self, model, step):
        step = tf.cast(step, tf.int64)
        due = (step >= self.begin) & ((step - self.begin) % self.frequency == 0)
        if not self.two_four:  # the schedule's steps, and its last one
            due = (due & (step <= self.end)) | tf.equal(step, self.end)
        sparsity = self.target(step)
        for kernel, mask in zip(self.kernels, self.masks, strict=True):
            value = kernel.value if hasattr(kernel, "value") else kernel
            tf.cond(
                due,
                lambda v=value, m=mask: m.assign(self._mask(v * m, sparsity)),
                lambda m=mask: m,
            )
            value.assign(value * mask)

    def _mask(self, weights, sparsity):
        magnitude = tf.abs(weights)
        if self.two_four:  # the 2 largest of each group of 4 along the input axis
            moved = tf.experimental.numpy.moveaxis(magnitude, -2, -1)
            groups = tf.reshape(moved, [-1, 4])
            rank = tf.argsort(tf.argsort(groups, axis=-1, direction="DESCENDING"), axis=-1)
            keep = tf.reshape(tf.cast(rank < 2, weights.dtype), tf.shape(moved))
            return tf.experimental.numpy.moveaxis(keep, -1, -2)
        flat = tf.reshape(magnitude, [-1])
        n = tf.size(flat)
        k = tf.cast(tf.round(sparsity * tf.cast(n, tf.float32)), tf.int32)  # how many go
        threshold = tf.cond(
            k > 0, lambda: tf.sort(flat)[tf.maximum(k - 1, 0)], lambda: tf.constant(-1.0)
        )
        return tf.cast(magnitude > tf.cast(threshold, magnitude.dtype), weights.dtype)

    def epoch_scalars(self, model):
        zeros = sum(int(np.sum(np.asarray(k) == 0)) for k in self.kernels)
        total = sum(int(np.prod(k.shape)) for k in self.kernels)
        return {"sparsity": zeros / total}


def _layers(model):
    """Every layer, nested models included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer
