"""The MNIST recipes: `cnn-classic` is keras-io's mnist_convnet as the `cnn` recipe had it; `cnn`
(batch norm, affine augmentation) falls back to the bundled sample and keeps its step budget on
tfds `mnist`; the "affine" augmentation is deterministic per seed and moves digits as asked."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from training import data, recipes
from training.tasks import get_task

Classification = get_task("classification")


def mnist_like_source():
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    return data.Source("fake", features, ["train"], lambda split: None)


def test_cnn_classic_is_the_keras_io_convnet_with_the_old_recipe():
    recipe = recipes.resolve("cnn-classic")
    assert (recipe["model"]["name"], recipe["model"]["overrides"]) == ("cnn", {})
    assert recipe["model"]["init_from"] is None  # from scratch
    assert recipe["optimizer"]["name"] == "adam" and recipe["optimizer"]["lr"] == 1e-3
    assert recipe["optimizer"]["schedule"] == "cosine"
    assert recipe["task"]["augment"] == "crop" and recipe["task"]["label_smoothing"] == 0.0
    assert (recipe["train"]["epochs"], recipe["train"]["batch_size"]) == (20, 64)
    assert recipe["data"]["dataset"] == "mnist"


def test_cnn_falls_back_to_the_sample_within_a_step_budget():
    recipe = recipes.resolve("cnn")
    assert recipe["data"]["dataset"] == "mnist"
    assert recipe["data"]["fallback"] == "sample:mnist5k"
    assert recipe["model"]["overrides"] == {"batch_norm": True, "convs_per_stage": 2}
    assert recipe["task"]["augment"] == "affine"
    # 20 epochs of the 4,000-digit sample; on tfds mnist's 60,000 the same 1,240 steps
    train = recipe["train"]
    assert train["max_steps"] == train["epochs"] * (4000 // train["batch_size"])
    assert recipes.RECIPES["resnet18-cifar10"]["data"]["fallback"] is None


def test_affine_augmentation_is_deterministic_and_keeps_the_label():
    augment = Classification({"augment": "affine"}, mnist_like_source()).augment
    image = np.zeros((28, 28, 1), np.float32)
    image[8:20, 12:16] = 255.0  # a bar
    outputs = []
    for k in range(8):
        seed = tf.constant([3, k], tf.int64)
        out, label = augment(tf.constant(image), 7, seed=seed)
        again, _ = augment(tf.constant(image), 7, seed=seed)
        assert label == 7 and out.shape == (28, 28, 1) and out.dtype == tf.float32
        np.testing.assert_array_equal(out.numpy(), again.numpy())
        assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255.0
        outputs.append(out.numpy())
    assert len({o.tobytes() for o in outputs}) == 8


def centre_of_mass(x):
    rows, cols = np.indices(x.shape[:2])
    w = x[..., 0] / x.sum()
    return np.array([(rows * w).sum(), (cols * w).sum()])


def test_affine_shift_and_rotation_move_the_digit_as_asked():
    image = np.zeros((28, 28, 1), np.float32)
    image[10:18, 10:18] = 255.0
    source = mnist_like_source()
    still = Classification(
        {"augment": "affine", "rotation": 0, "scale": 0, "shift": 0}, source
    ).augment
    out, _ = still(tf.constant(image), 0, seed=tf.constant([0, 1], tf.int64))
    np.testing.assert_array_equal(out.numpy(), image)  # the identity warp changes nothing
    shift = Classification(
        {"augment": "affine", "rotation": 0, "scale": 0, "shift": 0.1}, source
    ).augment
    moves = []
    for k in range(20):
        out, _ = shift(tf.constant(image), 0, seed=tf.constant([0, k], tf.int64))
        moves.append(centre_of_mass(out.numpy()) - centre_of_mass(image))
    moves = np.abs(np.array(moves))
    assert moves.max() <= 2.8 + 1e-3 and moves.max() > 1.0  # up to 10% of 28 pixels each way
    rotate = Classification(
        {"augment": "affine", "rotation": 45, "scale": 0, "shift": 0}, source
    ).augment
    bar = np.zeros((28, 28, 1), np.float32)
    bar[4:24, 13:15] = 255.0  # vertical: rotated, it spreads over more columns
    spreads = []
    for k in range(8):
        out, _ = rotate(tf.constant(bar), 0, seed=tf.constant([0, k], tf.int64))
        np.testing.assert_allclose(centre_of_mass(out.numpy()), centre_of_mass(bar), atol=0.1)
        spreads.append(int((out.numpy()[..., 0].max(axis=0) > 64).sum()))
    assert max(spreads) > 6  # about the centre, tilted


def test_an_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="unknown augment 'elastic'"):
        Classification({"augment": "elastic"}, mnist_like_source())
