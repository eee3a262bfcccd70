"""Adversarial examples for any classifier that takes pixels: FGSM, PGD (L-inf and L2) and a
black-box baseline of random noise with the same norm.

`perturb(predict, images, labels, eps=..., attack=..., norm=...)` runs on a batch; `predict` maps
float images to class probabilities (a zoo Keras model in inference mode, or an export's
`serving_default`: see training/trained.py). Attacks work in the model's own input scale, the raw
pixels 0..`scale` (255) that the zoo's models take, and results are clipped to it; `eps` and
`step_size` are fractions of that range (eps=0.1 moves a pixel by at most 25.5 levels under
L-inf; under L2 it bounds the norm of the whole perturbation, in the same units).

- FGSM (Goodfellow et al. 2015): one step of eps along the sign of the loss gradient (L-inf), or
  along the gradient scaled to norm eps (L2, the "fast gradient method"). With `random_start`
  it is Wong et al.'s (2020) "fast" variant: a uniform start in the ball, then a step of
  `step_size` (default 1.25 eps), projected back.
- PGD (Madry et al. 2018): `steps` steps of `step_size` (default 2.5 eps / steps) from a random
  start in the eps-ball, each projected back onto the ball and the pixel range.
- noise: random signs of eps on every pixel (L-inf) or a random direction of norm eps (L2): what
  a perturbation of the same size does without the model's gradients.

The loss is the cross-entropy of the true class, -log p_y, computed from the probabilities
without clipping, so a confident prediction still has a gradient (a clipped one would have none).
"""

import tensorflow as tf

ATTACKS = ("fgsm", "pgd", "noise")
NORMS = ("linf", "l2")
TINY = 1e-12


def default_step_size(attack: str, eps: float, steps: int, random_start: bool) -> float:
    """Madry et al.'s 2.5 eps / steps for PGD; eps for FGSM (1.25 eps from a random start)."""
    if attack == "pgd":
        return 2.5 * eps / max(int(steps), 1)
    return 1.25 * eps if random_start else eps


def loss(predict, images, labels):
    """Per-example cross-entropy of the true class (float32)."""
    probs = tf.cast(predict(images), tf.float32)
    true = tf.gather(probs, tf.cast(labels, tf.int32), axis=-1, batch_dims=1)
    return -tf.math.log(true + TINY)


def gradient(predict, images, labels):
    with tf.GradientTape() as tape:
        tape.watch(images)
        value = loss(predict, images, labels)
    return tape.gradient(value, images)


def perturb(
    predict,
    images,
    labels,
    *,
    eps,
    attack="pgd",
    norm="linf",
    steps=20,
    step_size=None,
    random_start=True,
    scale=255.0,
):
    """Adversarial versions of `images` (float32, 0..scale) for `labels`: see the module docstring.
    `eps` may be a tensor (one compiled function serves every eps). Runs in graph mode too."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r} (known: {', '.join(ATTACKS)})")
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r} (known: {', '.join(NORMS)})")
    images = tf.cast(images, tf.float32)
    radius = tf.cast(eps, tf.float32) * scale
    if attack == "noise":
        return _clip(images + _random_on_sphere(tf.shape(images), radius, norm), scale)
    if attack == "fgsm":
        steps = 1
    if step_size is None:
        step = default_step_size(attack, 1.0, steps, random_start) * radius
    else:
        step = tf.cast(step_size, tf.float32) * scale
    x = images
    if random_start:
        x = _clip(images + _random_in_ball(tf.shape(images), radius, norm), scale)

    def one_step(i, x):
        grad = gradient(predict, x, labels)
        x = x + step * _direction(grad, norm)
        return i + 1, _clip(images + _project(x - images, radius, norm), scale)

    _, x = tf.while_loop(lambda i, _: i < int(steps), one_step, (tf.constant(0), x))
    return tf.stop_gradient(x)


def _clip(x, scale):
    return tf.clip_by_value(x, 0.0, scale)


def _norms(x):
    """L2 norm of each example, shaped to broadcast against x."""
    axes = tf.range(1, tf.rank(x))
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=axes, keepdims=True))


def _direction(grad, norm):
    if norm == "linf":
        return tf.sign(grad)
    return grad / (_norms(grad) + TINY)


def _project(delta, radius, norm):
    if norm == "linf":
        return tf.clip_by_value(delta, -radius, radius)
    return delta * tf.minimum(1.0, radius / (_norms(delta) + TINY))


def _random_in_ball(shape, radius, norm):
    if norm == "linf":
        return tf.random.uniform(shape, -1.0, 1.0) * radius
    direction = _random_on_sphere(shape, 1.0, "l2")
    size = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
    rank_one = tf.concat([shape[:1], tf.ones_like(shape[1:])], axis=0)
    fraction = tf.random.uniform(rank_one) ** (1.0 / size)  # uniform in the ball's volume
    return direction * fraction * radius


def _random_on_sphere(shape, radius, norm):
    if norm == "linf":
        return tf.sign(tf.random.uniform(shape, -1.0, 1.0)) * radius
    direction = tf.random.normal(shape)
    return direction / (_norms(direction) + TINY) * radius
