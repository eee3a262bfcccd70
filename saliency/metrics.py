"""How good a heatmap is, after Adebayo et al. (2018) and Petsiuk et al. (2018), in numpy:

- `spearman`: Spearman's rank correlation of two heatmaps (ties get their average rank), the
  measure of Adebayo et al.'s model-randomization test: a heatmap that explains the model must
  change when the model's weights are randomized.
- `deletion_curve`: the probability of the explained class as the pixels are set to a fill value
  (black) in a given order, most attributed first; a faithful heatmap makes it fall faster (a
  smaller area under the curve) than a random order does.
"""

import numpy as np


def rankdata(values) -> np.ndarray:
    """1-based ranks of the flattened values, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="stable")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = average[inverse]
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of two arrays of one size. A constant array (an empty
    Grad-CAM map) ranks nothing: 1 against another constant one, 0 against any other."""
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    sa, sb = (ra * ra).sum(), (rb * rb).sum()
    if sa == 0 or sb == 0:
        return 1.0 if sa == sb else 0.0
    return float((ra * rb).sum() / np.sqrt(sa * sb))


def deletion_curve(predict, images, orders, classes, steps=20, fill=0.0, batch=512):
    """(fractions [steps+1], probabilities [N, steps+1], AUC [N]): the probability of `classes`
    as the first k/steps of each image's pixels in `orders` ([N, H*W] flat pixel indices, most
    important first) are set to `fill` in every channel. `predict(images) -> probabilities`."""
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape[:3]
    pixels = height * width
    fractions = np.linspace(0.0, 1.0, steps + 1)
    stack = np.empty((steps + 1, *images.shape), np.float32)
    for s, fraction in enumerate(fractions):
        k = int(round(fraction * pixels))
        masked = images.reshape(n, pixels, -1).copy()
        np.put_along_axis(masked, np.asarray(orders)[:, :k, None], fill, axis=1)
        stack[s] = masked.reshape(images.shape)
    flat = stack.reshape(-1, *images.shape[1:])
    probabilities = np.concatenate(
        [np.asarray(predict(flat[i : i + batch])) for i in range(0, len(flat), batch)]
    ).reshape(steps + 1, n, -1)
    curve = np.take_along_axis(
        probabilities, np.asarray(classes).reshape(1, n, 1).repeat(steps + 1, axis=0), axis=2
    )[..., 0].T
    auc = ((curve[:, 1:] + curve[:, :-1]) / 2.0).mean(axis=1)  # trapezoids, fractions 0..1
    return fractions, curve, auc


def most_attributed_first(heatmaps, rng=None) -> np.ndarray:
    """[N, H*W] pixel indices from the hottest to the coldest of each heatmap; equal values
    (Grad-CAM's zeros) in a random order drawn from `rng` (default: seed 0)."""
    flat = np.asarray(heatmaps).reshape(len(heatmaps), -1)
    rng = np.random.default_rng(0) if rng is None else rng
    return np.lexsort((rng.random(flat.shape), -flat), axis=1)


def random_order(shape, rng=None) -> np.ndarray:
    """[N, H*W] pixel indices in a random order per image (the deletion curve's baseline)."""
    n, pixels = shape[0], int(np.prod(shape[1:3]))
    rng = np.random.default_rng(0) if rng is None else rng
    return np.argsort(rng.random((n, pixels)), axis=1)
