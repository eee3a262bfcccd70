"""Sanity checks of the heatmaps on real digits, after Adebayo et al. (2018, "Sanity Checks for
Saliency Maps") and the deletion metric of Petsiuk et al. (2018, RISE), on 100 held-out digits
(ten of each class) and a cnn trained on the other 4,000 (conftest.py: about 95% accurate).

- Model randomization: the same architecture with freshly initialized weights
  (keras.models.clone_model) must give substantially different heatmaps of the same images and
  classes (Spearman rank correlation, mean over the digits). The reference is how well two
  computations on the trained model agree: SmoothGrad is random, so two seeds are two runs, and
  their correlation (about 0.9) is its own noise ceiling; Grad-CAM is deterministic, so two runs
  agree exactly (1.0) and the bar is absolute.
- Deletion: setting the most attributed pixels to black first makes the predicted class's
  probability fall faster (a smaller area under the curve) than deleting them in a random order.

Two things these digits show, checked or noted here (figures in README "Explanation heatmaps"):
Grad-CAM's map is empty (no positive evidence after the ReLU) for about a third of the digits on
this briefly trained cnn, whose flatten head gives each position its own weights where Grad-CAM
averages the gradient over positions (none of 100 on the full `cnn` recipe's model); an empty
map ranks no pixel, so the Grad-CAM checks run on the others. And over the whole image,
Grad-CAM++ and Integrated Gradients hardly change when the weights are randomized: Grad-CAM++
adds activation maps with non-negative weights, and IG from a black baseline multiplies the
gradient by the pixel, so both draw the digit whatever the weights (what Adebayo et al. found for
Gradient x Input and IG); on the digit's own pixels they do change, which the third test checks.
"""

import keras
import numpy as np
import pytest

import saliency

OPTIONS = {"ig": {"steps": 16}, "smoothgrad": {"samples": 16}}


def mean_spearman(a, b, where=None):
    where = [None] * len(a) if where is None else where
    return float(
        np.mean(
            [
                saliency.spearman(p if w is None else p[w], q if w is None else q[w])
                for p, q, w in zip(a, b, where)
            ]
        )
    )


def non_empty(heatmaps):
    return heatmaps.reshape(len(heatmaps), -1).max(axis=1) > 0


@pytest.fixture(scope="module")
def explainers(trained_cnn):
    keras.utils.set_random_seed(1)
    randomized = keras.models.clone_model(trained_cnn.model)  # same layers, new initial weights
    return saliency.Explainer(trained_cnn.model), saliency.Explainer(randomized)


@pytest.fixture(scope="module")
def maps(explainers, test_digits):
    """{method: (heatmaps of the trained model, of the randomized one, the classes)}."""
    trained, randomized = explainers
    images, _ = test_digits
    out = {}
    for method in saliency.METHODS:
        options = OPTIONS.get(method, {})
        first = saliency.explain(trained, images, method, **options)
        again = saliency.explain(randomized, images, method, classes=first.classes, **options)
        out[method] = (first.heatmaps.numpy(), again.heatmaps.numpy(), first.classes.numpy())
    return out


def test_the_model_explained_is_trained(trained_cnn, test_digits):
    images, labels = test_digits
    assert trained_cnn.accuracy >= 0.9
    assert np.mean(np.argmax(trained_cnn.model(images), axis=-1) == labels) >= 0.9


def test_smoothgrad_changes_when_the_weights_are_randomized(explainers, maps, test_digits):
    trained, _ = explainers
    images, _ = test_digits
    first, randomized, classes = maps["smoothgrad"]
    second = saliency.smoothgrad(trained, images, classes, seed=1, **OPTIONS["smoothgrad"])
    two_runs = mean_spearman(first, second.heatmaps.numpy())
    against_random = mean_spearman(first, randomized)
    print(f"\nSmoothGrad Spearman: two seeds {two_runs:.3f}, randomized {against_random:.3f}")
    assert two_runs > 0.8
    assert against_random < two_runs - 0.2


def test_grad_cam_changes_when_the_weights_are_randomized(explainers, maps, test_digits):
    trained, _ = explainers
    images, _ = test_digits
    first, randomized, _ = maps["gradcam"]
    again = saliency.gradcam(trained, images).heatmaps.numpy()
    assert mean_spearman(first, again) == 1.0  # deterministic: two runs agree exactly
    shown = non_empty(first)
    against_random = mean_spearman(first[shown], randomized[shown])
    print(f"\nGrad-CAM: {shown.sum()} maps not empty; Spearman randomized {against_random:.3f}")
    assert shown.sum() >= 50
    assert against_random < 0.5


def test_on_the_digit_every_method_changes_with_the_weights(maps, test_digits):
    images, _ = test_digits
    ink = images[..., 0] > 0
    shown = non_empty(maps["gradcam"][0])
    whole, on_digit = {}, {}
    for method, (a, b, _) in maps.items():
        keep = shown if method == "gradcam" else np.ones(len(a), bool)
        whole[method] = round(mean_spearman(a[keep], b[keep]), 3)
        on_digit[method] = round(mean_spearman(a[keep], b[keep], ink[keep]), 3)
    print(f"\nSpearman trained vs randomized, whole image {whole}, on the digit {on_digit}")
    assert all(value < 0.6 for value in on_digit.values()), on_digit


def test_deleting_the_most_attributed_pixels_first_drops_the_class_faster(
    trained_cnn, maps, test_digits
):
    images, _ = test_digits

    def predict(x):
        return trained_cnn.model(x, training=False).numpy()

    aucs = {}
    for method, (heatmaps, _, classes) in maps.items():
        keep = non_empty(heatmaps)
        rng = np.random.default_rng(0)
        order = saliency.most_attributed_first(heatmaps[keep], rng)
        _, curve, auc = saliency.deletion_curve(predict, images[keep], order, classes[keep])
        shuffled = saliency.random_order(images[keep].shape, rng)
        _, _, random_auc = saliency.deletion_curve(predict, images[keep], shuffled, classes[keep])
        start = predict(images[keep])[np.arange(keep.sum()), classes[keep]]
        assert curve[:, 0] == pytest.approx(start, abs=1e-6)
        aucs[method] = (round(float(auc.mean()), 3), round(float(random_auc.mean()), 3))
    print(f"\ndeletion AUC (heatmap order, random order): {aucs}")
    for method, (auc, random_auc) in aucs.items():
        assert auc < random_auc - 0.1, (method, auc, random_auc)
