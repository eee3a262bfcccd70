"""The heatmap methods, in the model's input scale (raw pixels 0..255), as TensorFlow ops that run
eagerly or inside a tf.function (the exports' `explain_image_bytes`).

- `gradcam` (Selvaraju et al. 2017): the target layer's channels weighted by the spatial mean of
  the class score's gradient, summed, ReLU. `plus=True` is Grad-CAM++ (Chattopadhyay et al.
  2018): per-position weights alpha = g^2 / (2 g^2 + sum(A) g^3) of the positive gradients (the
  closed form for an exponential of the score).
- `integrated_gradients` (Sundararajan et al. 2017): (x - x') times the mean gradient at `steps`
  points (midpoint rule) on the straight path from the baseline x' (black: zeros) to x.
- `smoothgrad` (Smilkov et al. 2017): the gradient averaged over `samples` copies of the image
  with Gaussian noise of standard deviation `sigma` pixels (default 15% of 0..255).

Every method returns an `Explanation`: heatmaps float32 [N,H,W] in [0,1] at the input's
resolution (Grad-CAM's map bilinearly upsampled, then divided by its maximum; the gradient maps
are |attribution| summed over channels, divided by their 99th percentile and clipped, as the PAIR
`saliency` library shows them), the class explained for each image (the predicted one unless
`classes` says), and the probabilities. Gradients are of the class score before the softmax
(zoo/explain.py) for a Keras model; `ProbabilityScores` wraps a function that only returns
probabilities (an export's `serving_default`), whose gradients are then of the probability.
"""

import dataclasses

import keras
import tensorflow as tf

from zoo.explain import Explainable

METHODS = ("gradcam", "gradcam++", "ig", "smoothgrad")
GRADIENT_BATCH = 256  # images per forward/backward pass of the path and noise methods


@dataclasses.dataclass
class Explanation:
    heatmaps: tf.Tensor  # float32 [N,H,W], 0..1
    classes: tf.Tensor  # int64 [N]: the class each heatmap explains
    probabilities: tf.Tensor  # float32 [N,K]: the model's output on the images
    method: str
    layer: str | None = None  # Grad-CAM's target layer


class Explainer(Explainable):
    """A Keras classifier ready for every method: its target layer (found, or named by `layer`)
    and its class scores before the softmax."""

    def scores(self, images):
        _, scores, probabilities = self(images)
        return scores, probabilities


class ProbabilityScores:
    """The gradient methods over a function images -> probabilities (no layers to read)."""

    channels_first = False

    def __init__(self, fn):
        self.fn = fn

    def scores(self, images):
        probabilities = tf.cast(self.fn(images), tf.float32)
        return probabilities, probabilities


def _channels_first(explainer):
    target = getattr(explainer, "target", None)
    return target.channels_first if target is not None else explainer.channels_first


def _function(owner, key, fn):
    """`fn` as a tf.function, traced once per owner (and input shape). Besides speed, the graph
    drops the filter gradients no heatmap needs: eager Conv2D backprop computes them, and
    oneDNN's conv2d_backprop_filter crashes the process on some shapes in TF 2.21 (an eager
    training step of the tiny resnet18 on 3 images)."""
    cache = owner.__dict__.setdefault("_saliency_functions", {})
    if key not in cache:
        cache[key] = tf.function(fn, reduce_retracing=True)
    return cache[key]


def _classes(classes, n):
    """The classes asked for as int64 [n]; -1 where the predicted class is meant."""
    if classes is None:
        return tf.fill([n], tf.constant(-1, tf.int64))
    return tf.cast(tf.reshape(classes, [-1]), tf.int64)


def _pick(probabilities, classes):
    return tf.where(classes < 0, tf.argmax(probabilities, axis=-1), classes)


def _class_score(scores, classes):
    return tf.gather(scores, classes, batch_dims=1)


def gradcam(explainer, images, classes=None, plus=False) -> Explanation:
    """Grad-CAM (or Grad-CAM++) heatmaps of `images` [N,H,W,C] for an `Explainer`."""
    images = tf.cast(images, tf.float32)
    heat, chosen, probabilities = _function(
        explainer, ("gradcam", plus), lambda x, c: _gradcam(explainer, x, c, plus)
    )(images, _classes(classes, tf.shape(images)[0]))
    method = "gradcam++" if plus else "gradcam"
    return Explanation(heat, chosen, probabilities, method, explainer.target.layer)


def _gradcam(explainer, images, classes, plus):
    target = explainer.target
    with tf.GradientTape() as tape:
        tape.watch(images)
        activations, scores, probabilities = explainer(images)
        chosen = _pick(probabilities, classes)
        score = _class_score(scores, chosen)
    grads = tf.cast(target.feature_map(tape.gradient(score, activations)), tf.float32)
    maps = tf.cast(target.feature_map(activations), tf.float32)
    if plus:
        g2 = tf.square(grads)
        g3 = g2 * grads
        total = tf.reduce_sum(maps, axis=[1, 2], keepdims=True)
        denominator = 2.0 * g2 + total * g3
        safe = tf.where(denominator != 0.0, denominator, tf.ones_like(denominator))
        alpha = tf.where(grads != 0.0, g2 / safe, tf.zeros_like(g2))
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=[1, 2])
    else:
        weights = tf.reduce_mean(grads, axis=[1, 2])
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", maps, weights))
    size = _size(images, target.channels_first)
    heat = tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
    peak = tf.reduce_max(heat, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(tf.nn.relu(heat), peak), chosen, probabilities


def _size(images, channels_first):
    shape = images.shape[2:4] if channels_first else images.shape[1:3]
    if None in shape:
        dynamic = tf.shape(images)
        return dynamic[2:4] if channels_first else dynamic[1:3]
    return list(shape)


def _gradients(explainer, images, classes):
    """d score[class] / d images, in chunks of GRADIENT_BATCH images."""

    def gradients(chunk, chosen):
        with tf.GradientTape() as tape:
            tape.watch(chunk)
            scores, _ = explainer.scores(chunk)
            score = _class_score(scores, chosen)
        return tape.gradient(score, chunk)

    compiled = _function(explainer, "gradients", gradients)
    out = []
    for start in range(0, int(images.shape[0]), GRADIENT_BATCH):
        end = start + GRADIENT_BATCH
        out.append(compiled(images[start:end], classes[start:end]))
    return tf.concat(out, axis=0)


def _prepare(explainer, images, classes):
    images = tf.cast(images, tf.float32)
    _, probabilities = explainer.scores(images)
    chosen = _pick(probabilities, _classes(classes, tf.shape(images)[0]))
    return images, chosen, tf.cast(probabilities, tf.float32)


def integrated_gradients(explainer, images, classes=None, steps=32, baseline=0.0) -> Explanation:
    """Integrated Gradients from a constant `baseline` (0: black) in `steps` midpoint steps."""
    images, chosen, probabilities = _prepare(explainer, images, classes)
    base = tf.broadcast_to(tf.cast(baseline, tf.float32), tf.shape(images))
    n = int(images.shape[0])
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / float(steps)
    # every step of every image in one stack: [steps * N, H, W, C], step-major
    path = base[None] + alphas[:, None, None, None, None] * (images - base)[None]
    path = tf.reshape(path, [steps * n, *images.shape[1:]])
    grads = _gradients(explainer, path, tf.tile(chosen, [steps]))
    mean = tf.reduce_mean(tf.reshape(grads, [steps, n, *images.shape[1:]]), axis=0)
    heat = _gradient_map((images - base) * mean, _channels_first(explainer))
    return Explanation(heat, chosen, probabilities, "ig")


def smoothgrad(explainer, images, classes=None, samples=25, sigma=0.15 * 255.0, seed=0):
    """SmoothGrad: gradients averaged over `samples` noisy copies (std `sigma` pixels)."""
    images, chosen, probabilities = _prepare(explainer, images, classes)
    n = int(images.shape[0])
    noise = tf.random.stateless_normal([samples, *images.shape], seed=[int(seed), 0])
    noisy = tf.reshape(images[None] + sigma * noise, [samples * n, *images.shape[1:]])
    grads = _gradients(explainer, noisy, tf.tile(chosen, [samples]))
    mean = tf.reduce_mean(tf.reshape(grads, [samples, n, *images.shape[1:]]), axis=0)
    return Explanation(
        _gradient_map(mean, _channels_first(explainer)), chosen, probabilities, "smoothgrad"
    )


def _gradient_map(attributions, channels_first=False):
    """|attributions| summed over channels, / its 99th percentile per image, clipped to 1."""
    heat = tf.reduce_sum(tf.abs(attributions), axis=1 if channels_first else -1)
    flat = tf.sort(tf.reshape(heat, [tf.shape(heat)[0], -1]), axis=-1)
    count = tf.shape(flat)[1]
    at = tf.cast(tf.round(0.99 * tf.cast(count - 1, tf.float32)), tf.int32)
    p99 = flat[:, at]
    scale = tf.where(p99 > 0.0, p99, flat[:, -1])[:, None, None]
    return tf.clip_by_value(tf.math.divide_no_nan(heat, scale), 0.0, 1.0)


def explain(model, images, method="gradcam", layer=None, classes=None, **options) -> Explanation:
    """Heatmaps of `images` by `method` (one of METHODS) for a Keras classifier or an
    `Explainer` (built once, it saves rebuilding the split model); `options` go to the method
    (steps and baseline for ig; samples, sigma and seed for smoothgrad)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    explainer = Explainer(model, layer) if isinstance(model, keras.Model) else model
    if method in ("gradcam", "gradcam++"):
        return gradcam(explainer, images, classes, plus=method == "gradcam++", **options)
    if method == "ig":
        return integrated_gradients(explainer, images, classes, **options)
    return smoothgrad(explainer, images, classes, **options)
