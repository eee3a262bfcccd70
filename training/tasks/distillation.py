"""Knowledge distillation (Hinton, Vinyals & Dean 2015): a student classifier, any zoo model,
learns from a trained teacher's softened predictions as well as from the labels.

    loss = alpha * T^2 * KL(softmax(z_teacher / T) || softmax(z_student / T))
         + (1 - alpha) * cross-entropy(labels, student)

Task config (the recipe's `task` section, besides Classification's augmentation and
`label_smoothing`, which apply to the hard loss): `teacher` (a run directory with model.keras, an
export version directory, or a folder of either: the newest finished run / highest version, see
training/trained.py), `temperature` T, `alpha` (the soft loss's weight; 0 trains without the
teacher). The T^2 keeps the soft loss's gradients the size of the hard loss's as T changes.

The zoo's classifiers output probabilities, so the logits z are recovered as log-probabilities:
softmax is shift-invariant, and log p = z - logsumexp(z) differs from z by a constant per example,
so softmax(log p / T) = softmax(z / T). The teacher sees the same (augmented) batch as the student,
in inference mode. Validation, pictures and exports are Classification's: a distilled student
exports as a classifier (`kind`), and the teacher is not part of it.

A teacher trained with label smoothing teaches little (Mueller et al. 2019): smoothing pulls the
wrong classes' probabilities to one level, which is what the soft loss would pass on. On the
bundled digits a cnn student taught by the `cnn` recipe (smoothing 0.1) did no better than alone,
taught by `cnn-teacher` (the same without smoothing) it gained 0.5 points (README).
"""

import tensorflow as tf

from training import trained
from training.tasks.base import apply_gradients, regularization_loss
from training.tasks.classification import Classification

SMALLEST = 1e-30  # log(0) guard for probabilities that underflowed


class Distillation(Classification):
    name = "distillation"
    kind = "classification"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.temperature = float(config.get("temperature", 4.0))
        self.alpha = float(config.get("alpha", 0.9))
        if not self.temperature > 0:
            raise ValueError(f"task.temperature must be positive, not {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"task.alpha must be in [0, 1], not {self.alpha}")
        teacher = config.get("teacher")
        if not teacher:
            raise ValueError(
                "task.teacher is not set: --set task.teacher=runs/cnn/<time> "
                "(a run directory or an export version)"
            )
        try:
            self.teacher = trained.load(teacher)
        except trained.NotAClassifier as e:
            raise ValueError(
                f"task.teacher: {e}; train one first (for cnn-distilled: make "
                "train-cnn-teacher) or --set task.teacher=<a run or an export>"
            ) from None
        names = [str(n) for n in self.teacher.class_names]
        if names != [str(n) for n in self.class_names]:
            raise ValueError(
                f"task.teacher {self.teacher.path} predicts classes {names}, the data set has "
                f"{self.class_names}"
            )
        if tuple(self.teacher.image_shape) != tuple(self.image_shape):
            raise ValueError(
                f"task.teacher {self.teacher.path} takes images of shape "
                f"{tuple(self.teacher.image_shape)}, the data set's are {self.image_shape}"
            )

    def soft_loss(self, teacher_probs, student_probs):
        """Per-example T^2 KL(teacher_T || student_T) from the two models' probabilities."""
        t = self.temperature
        teacher_log = tf.nn.log_softmax(tf.math.log(tf.maximum(teacher_probs, SMALLEST)) / t)
        student_log = tf.nn.log_softmax(tf.math.log(tf.maximum(student_probs, SMALLEST)) / t)
        kl = tf.reduce_sum(tf.exp(teacher_log) * (teacher_log - student_log), axis=-1)
        return t * t * kl

    def train_step(self, model, optimizers, batch, global_batch_size):
        images, labels = batch
        optimizer = optimizers["model"]
        teacher_probs = tf.stop_gradient(self.teacher.predict(images))
        with tf.GradientTape() as tape:
            probs = tf.cast(model(images, training=True), tf.float32)
            hard = self._per_example_loss(labels, probs)
            soft = self.soft_loss(teacher_probs, probs)
            per_example = self.alpha * soft + (1.0 - self.alpha) * hard
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        sums = self._sums(labels, probs, per_example)
        sums["soft_loss"] = tf.reduce_sum(soft)
        sums["hard_loss"] = tf.reduce_sum(hard)
        teacher_says = tf.argmax(teacher_probs, axis=-1, output_type=labels.dtype)
        sums["teacher_accuracy"] = tf.reduce_sum(
            tf.cast(tf.equal(teacher_says, labels), tf.float32)
        )
        return sums
