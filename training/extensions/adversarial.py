"""Adversarial training for any zoo classifier (the `adversarial` recipe section): each training
batch is replaced by adversarial examples of itself, made against the model being trained,
before the task's step sees it (training/adversarial.py makes them).

    --set adversarial.attack=pgd --set adversarial.eps=0.1 --set adversarial.steps=7    # Madry
    --set adversarial.attack=fgsm                           # Wong et al. 2020: FGSM + random start

Fields: `attack` ("none" = off | "pgd" | "fgsm"), `eps` (fraction of the 0..1 pixel range: 0.1 is
25.5 levels of the 0..255 pixels the models take), `norm` ("linf" | "l2"), `steps` (PGD),
`step_size` (fraction of the range; null: 2.5 eps / steps for PGD, 1.25 eps for FGSM with a
random start), `random_start`, `mix` (the share of each batch left clean, 0 = all adversarial,
0.5 = Goodfellow et al.'s half-and-half).

The examples are made with the model in inference mode (`training=False`), then the task trains
on them in training mode as usual. Inference mode because in training mode each of the attack's
forward passes would update BatchNormalization's moving statistics with half-made adversarial
batches (steps + 1 updates per optimizer step instead of one), and dropout would change the
model between the attack's steps, so the attack would chase a different network each step.

Train metrics (train/ `batch_accuracy`, `epoch_accuracy`) are then those on the adversarial
batches; validation stays on clean images. `python -m training attack <run>` measures robustness.
"""

import tensorflow as tf

from training import adversarial
from training.extensions import Extension

TRAINING_ATTACKS = ("none", "pgd", "fgsm")


class Adversarial(Extension):
    section = "adversarial"
    defaults = {
        "attack": "none",
        "eps": 0.1,
        "norm": "linf",
        "steps": 7,
        "step_size": None,
        "random_start": True,
        "mix": 0.0,
    }

    @classmethod
    def enabled(cls, config):
        if config["attack"] not in TRAINING_ATTACKS:
            raise ValueError(
                f"adversarial.attack must be one of {', '.join(TRAINING_ATTACKS)}, "
                f"not {config['attack']!r}"
            )
        return config["attack"] != "none"

    def __init__(self, config, total_steps):
        super().__init__(config, total_steps)
        if config["norm"] not in adversarial.NORMS:
            raise ValueError(f"adversarial.norm must be one of {', '.join(adversarial.NORMS)}")
        self.eps = float(config["eps"])
        if not 0 < self.eps <= 1:
            raise ValueError(f"adversarial.eps must be in (0, 1] (of the pixel range): {self.eps}")
        self.steps = int(config["steps"])
        if config["attack"] == "pgd" and self.steps < 1:
            raise ValueError("adversarial.steps must be at least 1 for pgd")
        self.mix = float(config["mix"])
        if not 0 <= self.mix < 1:
            raise ValueError(f"adversarial.mix (the clean share) must be in [0, 1): {self.mix}")

    def replica_batch(self, model, batch):
        images, labels, *rest = batch
        cfg = self.config
        adv = adversarial.perturb(
            lambda x: model(x, training=False),
            images,
            labels,
            eps=self.eps,
            attack=cfg["attack"],
            norm=cfg["norm"],
            steps=self.steps,
            step_size=cfg["step_size"],
            random_start=bool(cfg["random_start"]),
        )
        if self.mix:  # the first `mix` of the batch stays clean
            n = tf.shape(images)[0]
            clean = tf.cast(tf.math.ceil(self.mix * tf.cast(n, tf.float32)), tf.int32)
            keep = tf.reshape(tf.range(n) < clean, [-1] + [1] * (len(images.shape) - 1))
            adv = tf.where(keep, tf.cast(images, adv.dtype), adv)
        return (tf.cast(adv, images.dtype), labels, *rest)
