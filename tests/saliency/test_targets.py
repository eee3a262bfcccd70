"""The target layer, found in every zoo classifier (its tiny configuration) or named, and every
method's heatmaps on each: one per image, at the input's resolution, within [0, 1]."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import saliency
import zoo
from zoo.explain import Explainable, find_target

CLASSIFIERS = [name for name in zoo.list_models() if zoo.get_spec(name).task == "classification"]

# what find_target picks: the last feature map before the global pooling / flatten (a pooling
# layer stepped over to the map it pools); for ViT the patch tokens entering the last attention
EXPECTED = {
    "cnn": ("conv2", (11, 11)),
    "efficientnet_b0": ("top_activation", (2, 2)),
    "googlenet": ("inception5b", (8, 8)),
    "inception_v3": ("mixed10", (7, 7)),
    "mobilenet_v2": ("top_act", (2, 2)),
    "mobilenet_v3_small": ("top_act", (2, 2)),
    "resnet18": ("conv5_block2_out", (4, 4)),
    "resnet34": ("conv5_block1_out", (4, 4)),
    "resnet50": ("conv5_block1_out", (4, 4)),
    "vgg11": ("block5_conv2", (2, 2)),
    "vgg16": ("block5_conv3", (2, 2)),
    "vit_tiny16": ("encoder_block2_ln1", (4, 4)),
}


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return {name: zoo.build(name, tiny=True) for name in CLASSIFIERS}


def images_for(model, n=2, seed=0):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype(np.float32)


def test_every_classifier_is_in_the_table():
    assert sorted(EXPECTED) == sorted(CLASSIFIERS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_the_target_layer_is_found_and_gradcam_draws_on_it(tiny, name):
    model = tiny[name]
    target = find_target(model)
    assert (target.layer, target.grid) == EXPECTED[name]
    assert target.tokens == (name == "vit_tiny16") and target.skip == int(target.tokens)
    x = images_for(model)
    explained = saliency.explain(model, x)
    heat = explained.heatmaps.numpy()
    assert heat.shape == x.shape[:3] and explained.layer == target.layer
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() <= 1.0
    # the probabilities are the model's own, the class explained its argmax
    np.testing.assert_allclose(explained.probabilities.numpy(), model(x).numpy(), atol=1e-5)
    assert explained.classes.numpy().tolist() == np.argmax(model(x), axis=-1).tolist()


def test_the_cnn_recipe_model_is_explained_after_its_last_conv_not_its_pool():
    model = zoo.build("cnn", tiny=True, batch_norm=True, convs_per_stage=2)
    assert find_target(model).layer == "conv2_2_relu"


@pytest.mark.parametrize("name", ["cnn", "vit_tiny16"])
@pytest.mark.parametrize("method", saliency.METHODS)
def test_every_method_gives_one_map_per_image_in_0_1(tiny, name, method):
    model = tiny[name]
    x = images_for(model, n=3)
    options = {"ig": {"steps": 4}, "smoothgrad": {"samples": 4}}.get(method, {})
    heat = saliency.explain(model, x, method, **options).heatmaps.numpy()
    assert heat.shape == x.shape[:3]
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    if method in ("ig", "smoothgrad"):  # clipped at the 99th percentile: a few pixels at 1
        assert 0 < np.mean(heat == 1.0) <= 0.05


def test_scores_are_the_logits_under_the_softmax(tiny):
    model = tiny["resnet18"]
    x = images_for(model)
    _, scores, probabilities = Explainable(model)(x)
    np.testing.assert_allclose(
        keras.ops.softmax(scores).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(probabilities.numpy(), model(x).numpy(), atol=1e-6)


def test_a_layer_named_overrides_the_search(tiny):
    cnn, vit = tiny["cnn"], tiny["vit_tiny16"]
    assert find_target(cnn, "conv1").grid == (26, 26)
    heat = saliency.explain(cnn, images_for(cnn), layer="conv1")
    assert heat.layer == "conv1" and heat.heatmaps.shape == (2, 28, 28)
    assert find_target(vit, "patch_embed") == find_target(vit, "patch_embed")  # a conv map
    assert not find_target(vit, "patch_embed").tokens
    encoder = find_target(vit, "encoder_block1_add2")
    assert encoder.tokens and encoder.grid == (4, 4) and encoder.skip == 1
    with pytest.raises(ValueError, match=r"no layer 'conv9' in model 'cnn' \(layers with a"):
        find_target(cnn, "conv9")
    with pytest.raises(ValueError, match="'flatten' outputs .*not a feature map"):
        find_target(cnn, "flatten")


def test_grad_cam_is_keras_ios_on_the_model_without_its_softmax(tiny):
    """The Grad-CAM of keras-io's example (examples/vision/grad_cam.py): the softmax removed
    from the last layer, the channel weights the mean gradient, ReLU; upsampled here."""
    model = tiny["cnn"]
    x = images_for(model, n=1, seed=3)
    logits = keras.models.clone_model(model)
    logits.set_weights(model.get_weights())
    logits.layers[-1].activation = None
    grad_model = keras.Model(logits.input, [logits.get_layer("conv2").output, logits.output])
    with tf.GradientTape() as tape:
        conv, predictions = grad_model(x)
        channel = predictions[:, int(tf.argmax(predictions[0]))]
    pooled = tf.reduce_mean(tape.gradient(channel, conv), axis=(0, 1, 2))
    heat = tf.maximum(conv[0] @ pooled[..., None], 0)  # [11, 11, 1]
    heat = tf.image.resize(heat, (28, 28))[..., 0].numpy()
    ours = saliency.explain(model, x).heatmaps.numpy()[0]
    np.testing.assert_allclose(ours, heat / heat.max(), atol=1e-5)


def test_grad_cam_is_deterministic_and_explains_the_class_asked_for(tiny):
    model = tiny["cnn"]
    x = images_for(model, n=4)
    explainer = saliency.Explainer(model)
    first = saliency.gradcam(explainer, x).heatmaps.numpy()
    np.testing.assert_array_equal(first, saliency.gradcam(explainer, x).heatmaps.numpy())
    asked = saliency.gradcam(explainer, x, classes=[3, 3, 3, 3])
    assert asked.classes.numpy().tolist() == [3, 3, 3, 3]


def test_smoothgrad_noise_follows_its_seed(tiny):
    model = tiny["cnn"]
    x = images_for(model)
    runs = [
        saliency.smoothgrad(model_explainer, x, samples=4, seed=seed).heatmaps.numpy()
        for model_explainer, seed in [(saliency.Explainer(model), s) for s in (0, 0, 1)]
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_rank_correlation_and_ties():
    assert saliency.rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    a = np.arange(50.0)
    assert saliency.spearman(a, a**3) == pytest.approx(1.0)
    assert saliency.spearman(a, -a) == pytest.approx(-1.0)
    assert saliency.spearman(a, np.zeros(50)) == 0.0
    assert saliency.spearman(np.zeros(50), np.zeros(50)) == 1.0


def test_deletion_curve_of_a_known_model():
    """A 'model' whose class-0 probability is the mean of the first row: deleting that row first
    drops it at once; the curve starts at the full value and ends at 0."""
    images = np.zeros((1, 4, 4, 1), np.float32)
    images[0, 0] = 1.0

    def predict(x):
        p = x[:, 0, :, 0].mean(axis=1)
        return np.stack([p, 1 - p], axis=1)

    heat = np.zeros((1, 4, 4))
    heat[0, 0] = 1.0
    fractions, curve, auc = saliency.deletion_curve(
        predict, images, saliency.most_attributed_first(heat), [0], steps=4
    )
    assert fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0] and auc[0] == pytest.approx(0.125)
    rest = saliency.random_order(images.shape, np.random.default_rng(0))
    assert sorted(rest[0]) == list(range(16))
