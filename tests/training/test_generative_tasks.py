"""The generative tasks through the shared loop (training/tasks/generative.py).

- On real digits (../shared/data/mnist5k): a short DCGAN run (through `python -m training`) and a
  short VAE run lower the Frechet distance on zoo-cnn features well below the untrained model's;
  the VAE's reconstruction loss falls; its SavedModel signatures and TFLite decoder work.
- On tfds mock data: the gan-fashion, wgan-gp and autoencoder recipes end to end, with their
  TensorBoard pictures, SavedModel signatures and TFLite variants.
- MirroredStrategy on two logical CPUs gives the one-device weights for dcgan and vae.
- Unit checks: the gradient penalty, the denoising noise, the n_critic batch check.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from tests.conftest import run_module, train_and_export
from training import data, frechet, recipes
from training.tasks import get_task


def events(directory):
    acc = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]


def picture(acc, tag):
    """The last image of `tag` in an event file, decoded from its PNG."""
    return tf.io.decode_png(tf.make_ndarray(acc.Tensors(tag)[-1].tensor_proto)[2]).numpy()


def untrained_score(recipe):
    """frechet_cnn_distance of the recipe's model before any training step (same seed)."""
    task = get_task(recipe["task"]["name"])(
        recipe["task"], data.open_source(recipe["data"]["dataset"])
    )
    keras.utils.set_random_seed(recipe["train"]["seed"])
    model = zoo.build(
        recipe["model"]["name"], **task.model_overrides(), **recipe["model"]["overrides"]
    )
    task.build_optimizers(model, keras.optimizers.Adam)
    return task.frechet_score(model)


# ---------------------------------------------------------------------------------------------
# real digits


@pytest.fixture(scope="module")
def mnist5k_sets(shared_data, tmp_path_factory):
    cache = tmp_path_factory.mktemp("frechet-cnn")
    return [
        f"data.dataset=folder:{shared_data / 'mnist5k'}",
        f"task.feature_cache={cache}",
        "task.feature_classifier_steps=300",
        "train.batch_size=32",  # 125 steps per epoch
        "train.log_every=25",
    ]


@pytest.fixture(scope="module")
def dcgan_run(mnist5k_sets, tmp_path_factory):
    """~45 s of CPU: 250 steps of a narrow DCGAN, as a user runs it (`python -m training`)."""
    root = tmp_path_factory.mktemp("dcgan")
    sets = mnist5k_sets + [
        "model.overrides.generator_width=16",
        "model.overrides.discriminator_width=16",
        "model.overrides.latent_dim=32",
        "optimizer.lr=5e-4",
        "train.max_steps=250",
    ]
    proc = run_module(
        "training", "train", "gan", "--logdir", root, "--no-export",
        *[arg for s in sets for arg in ("--set", s)],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary, recipes.resolve("gan", sets)


def test_dcgan_on_real_digits_beats_the_untrained_generator(dcgan_run):
    summary, recipe = dcgan_run
    trained = summary["validation"][frechet.SCORE_NAME]
    baseline = untrained_score(recipe)
    assert trained < 0.6 * baseline, (trained, baseline)
    assert summary["steps"] == 250

    validation = events(f"{summary['run_dir']}/validation")
    frechet_by_epoch = scalars(validation, f"epoch_{frechet.SCORE_NAME}")
    assert [step for step, _ in frechet_by_epoch] == [125, 250]
    grid = picture(validation, "samples")  # 64 fixed-noise samples, 8 x 8 cells of 84 pixels
    assert grid.shape == (672, 672, 3)
    assert len(validation.Tensors("samples")) == 2  # one frame per epoch
    train = events(f"{summary['run_dir']}/train")
    for tag in ("batch_d_loss", "batch_g_loss", "epoch_d_loss", "epoch_g_loss", "batch_d_real"):
        assert tag in train.Tags()["tensors"], tag
    assert {"learning_rate/generator", "learning_rate/discriminator"} <= set(
        train.Tags()["tensors"]
    )


@pytest.fixture(scope="module")
def vae_run(mnist5k_sets, tmp_path_factory):
    """~45 s of CPU: 250 steps of a small VAE, then the export with its TFLite decoder."""
    root = tmp_path_factory.mktemp("vae")
    sets = mnist5k_sets + [
        "model.overrides.filters=[16, 32]",
        "model.overrides.dense_units=64",
        "model.overrides.latent_dim=8",
        "optimizer.lr=3e-3",
        "train.max_steps=250",
    ]
    recipe = recipes.resolve("vae", sets)
    result = train_and_export(recipe, root)
    return result, recipe


def test_vae_on_real_digits_learns(vae_run):
    result, recipe = vae_run
    train = events(result.run_dir / "train")
    reconstruction = [v for _, v in scalars(train, "batch_reconstruction_loss")]
    assert reconstruction[-1] < 0.75 * reconstruction[0], reconstruction
    assert "batch_kl_loss" in train.Tags()["tensors"]
    validation = events(result.run_dir / "validation")
    assert {"epoch_reconstruction_loss", "epoch_kl_loss", "samples", "reconstructions"} <= set(
        validation.Tags()["tensors"]
    )
    # 10 inputs over their 10 reconstructions, captioned
    assert picture(validation, "reconstructions").shape == (2 * (84 + 14), 10 * 84, 3)

    trained = result.metrics[frechet.SCORE_NAME]
    baseline = untrained_score(recipe)
    assert trained < 0.7 * baseline, (trained, baseline)
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert saved["validation"][frechet.SCORE_NAME] == pytest.approx(trained)


def test_vae_export_encodes_decodes_and_samples(vae_run, shared_data):
    result, _ = vae_run
    loaded = tf.saved_model.load(str(result.export_dir))
    assert {"serving_default", "decode", "encode", "sample"} <= set(loaded.signatures)
    files = sorted((shared_data / "mnist5k" / "test").glob("*/*.png"))[::100]
    images = np.stack([tf.io.decode_png(f.read_bytes()).numpy() for f in files]).astype("float32")

    encoded = loaded.signatures["encode"](images=tf.constant(images))
    expected = result.model(images, training=False)
    np.testing.assert_allclose(encoded["z_mean"], expected["z_mean"], atol=1e-4)
    decoded = loaded.signatures["decode"](z=encoded["z_mean"])["images"].numpy()
    np.testing.assert_allclose(decoded, expected["reconstruction"], atol=1e-2)
    default = loaded.signatures["serving_default"](z=encoded["z_mean"])["images"].numpy()
    np.testing.assert_array_equal(default, decoded)

    sample = loaded.signatures["sample"]
    first = sample(count=tf.constant(6), seed=tf.constant(7, tf.int64))
    assert first["images"].dtype == tf.uint8 and first["images"].shape == (6, 28, 28, 1)
    again = sample(count=tf.constant(3), seed=tf.constant(7, tf.int64))
    np.testing.assert_array_equal(again["images"], first["images"][:3])  # seeded, prefix-stable
    other = sample(count=tf.constant(3), seed=tf.constant(8, tf.int64))
    assert not np.array_equal(other["images"], again["images"])
    redecoded = loaded.signatures["decode"](z=first["latent"])["images"].numpy()
    np.testing.assert_allclose(first["images"].numpy(), redecoded.round(), atol=1)

    report = json.loads((result.export_dir.parent / "tflite" / "report.json").read_text())
    rows = {row["variant"]: row for row in report["variants"]}
    assert set(rows) == {"float32", "float16", "dynamic", "int8"}
    for row in rows.values():
        assert "error" not in row, row
    assert rows["float32"]["max_abs_diff"] < 0.05  # pixels 0..255
    assert rows["int8"]["max_abs_diff"] < 64


# ---------------------------------------------------------------------------------------------
# mock data, end to end

MOCK_SETS = [
    "run.tiny=true",
    "train.epochs=1",
    "train.log_every=2",
    "task.frechet_samples=48",
    "task.feature_classifier_steps=5",
    "task.feature_cache=",
    "task.grid_size=16",
]


@pytest.fixture(scope="module")
def mock_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("generative-mock")
    runs = {
        "gan-fashion": ["train.batch_size=16"],
        "wgan-gp": ["train.batch_size=20", 'export.tflite.variants=["float32", "int8"]'],
        "autoencoder": ["train.batch_size=16", 'export.tflite.variants=["float32", "int8"]'],
    }
    patch = pytest.MonkeyPatch()
    patch.setattr(data, "network_available", lambda: True)  # mock_data stands in for downloads
    results = {}
    try:
        with tfds.testing.mock_data(num_examples=64):
            for name, sets in runs.items():
                results[name] = train_and_export(recipes.resolve(name, MOCK_SETS + sets), root)
    finally:
        patch.undo()
    return results


def tflite_rows(result):
    report = json.loads((result.export_dir.parent / "tflite" / "report.json").read_text())
    return {row["variant"]: row for row in report["variants"]}


@pytest.mark.parametrize("name", ["gan-fashion", "wgan-gp"])
def test_generator_export_and_tensorboard(mock_runs, name):
    result = mock_runs[name]
    assert result.steps == 64 // (16 if name == "gan-fashion" else 20)
    assert (
        frechet.SCORE_NAME
        in json.loads((result.run_dir / "metrics.json").read_text())["validation"]
    )
    validation = events(result.run_dir / "validation")
    tags = set(validation.Tags()["tensors"])
    assert {"samples", "real", f"epoch_{frechet.SCORE_NAME}", "epoch_g_loss"} <= tags
    assert picture(validation, "samples").shape == (4 * 84, 4 * 84, 3)
    losses = {"gan-fashion": "d_loss", "wgan-gp": "critic_loss"}[name]
    assert f"batch_{losses}" in events(result.run_dir / "train").Tags()["tensors"]
    if name == "wgan-gp":
        assert {"epoch_wasserstein_distance", "epoch_gradient_penalty"} <= tags

    assert result.export_dir.parent.name == name  # exports are named after the recipe
    loaded = tf.saved_model.load(str(result.export_dir))
    assert {"serving_default", "generate", "sample"} <= set(loaded.signatures)
    generator = result.model.get_layer("generator")
    latent = np.random.default_rng(0).standard_normal((3, generator.input_shape[-1]))
    latent = tf.constant(latent.astype("float32"))
    floats = loaded.signatures["serving_default"](latent=latent)["images"].numpy()
    np.testing.assert_allclose(floats, generator(latent, training=False), atol=1e-3)
    as_uint8 = loaded.signatures["generate"](latent=latent)["images"]
    assert as_uint8.dtype == tf.uint8
    np.testing.assert_array_equal(as_uint8.numpy(), np.clip(floats.round(), 0, 255))
    sampled = loaded.signatures["sample"](count=tf.constant(5), seed=tf.constant(3, tf.int64))
    assert sampled["images"].shape == (5, 28, 28, 1) and sampled["images"].dtype == tf.uint8
    regenerated = loaded.signatures["generate"](latent=sampled["latent"])["images"]
    np.testing.assert_array_equal(regenerated, sampled["images"])

    rows = tflite_rows(result)
    for row in rows.values():
        assert "error" not in row, row
    assert rows["float32"]["max_abs_diff"] < 0.05


def test_denoising_autoencoder_export_and_tensorboard(mock_runs):
    result = mock_runs["autoencoder"]
    validation = events(result.run_dir / "validation")
    assert {"reconstructions", "epoch_loss", "epoch_psnr", f"epoch_{frechet.SCORE_NAME}"} <= set(
        validation.Tags()["tensors"]
    )
    # noisy inputs over reconstructions over clean images, 10 columns
    assert picture(validation, "reconstructions").shape == (3 * (84 + 14), 10 * 84, 3)

    loaded = tf.saved_model.load(str(result.export_dir))
    assert {"serving_default", "reconstruct"} <= set(loaded.signatures)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype("float32"))
    out = loaded.signatures["reconstruct"](images=images)["reconstruction"].numpy()
    np.testing.assert_allclose(out, result.model(images)["reconstruction"], atol=1e-3)
    info = json.loads((result.export_dir / "assets.extra" / "export_info.json").read_text())
    assert info["noise_std"] == 0.4 and info["task"] == "autoencoder"
    for row in tflite_rows(result).values():
        assert "error" not in row, row


# ---------------------------------------------------------------------------------------------
# strategies


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_mirrored_on_two_logical_cpus_matches_one_device(name, shared_data, tmp_path):
    out = tmp_path / "weights.npz"
    proc = run_module(
        "tests.training.generative_workers", out, shared_data / "mnist5k", tmp_path / "runs", name
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        weights = {k: f[k] for k in f.files}
    n = len([k for k in weights if k.startswith("one_device/")])
    assert n == len([k for k in weights if k.startswith("mirrored/")]) > 0
    moved = 0.0
    for i in range(n):
        one, mirrored = weights[f"one_device/w{i}"], weights[f"mirrored/w{i}"]
        np.testing.assert_allclose(mirrored, one, rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")
        moved = max(moved, float(np.max(np.abs(one - weights[f"initial/w{i}"]))))
    assert moved > 1e-3  # the steps trained something


# ---------------------------------------------------------------------------------------------
# pieces of the tasks


def fake_source(shape=(28, 28, 1)):
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=shape),
            "label": tfds.features.ClassLabel(num_classes=2),
        }
    )
    return data.Source("fake", features, ["train", "test"], lambda split: None)


def test_gradient_penalty_of_a_linear_critic():
    """A linear critic's input gradient is its kernel everywhere: penalty (|w| 127.5 - 1)^2 with
    the norm in the critic's [-1, 1] input space."""
    task = get_task("wgan_gp")({"n_critic": 5}, fake_source())
    kernel = np.random.default_rng(0).normal(0, 0.01, (784, 1)).astype("float32")
    critic = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    critic.layers[-1].set_weights([kernel, np.zeros(1, "float32")])
    real = tf.random.uniform((4, 28, 28, 1), 0, 255)
    fake = tf.random.uniform((4, 28, 28, 1), 0, 255)
    penalty = task.gradient_penalty(critic, real, fake, tf.random.uniform((4, 1)))
    expected = (np.linalg.norm(kernel) * 127.5 - 1.0) ** 2
    np.testing.assert_allclose(penalty, np.full(4, expected), rtol=1e-4)


def test_wgan_gp_refuses_a_batch_that_does_not_split_into_n_critic_minibatches():
    task = get_task("wgan_gp")({"n_critic": 5}, fake_source())
    model = zoo.build("wgan_gp", tiny=True)
    optimizers = task.build_optimizers(model, keras.optimizers.Adam)
    with pytest.raises(ValueError, match="multiple of n_critic=5"):
        task.train_step(model, optimizers, (tf.zeros((8, 28, 28, 1)),), 8)


def test_denoising_noise_is_seeded_clipped_and_leaves_targets_clean():
    task = get_task("autoencoder")({"noise_std": 0.4}, fake_source())
    image = tf.fill((28, 28, 1), 100.0)
    noisy, target = task.augment(image, image, seed=tf.constant([1, 2], tf.int64))
    again, _ = task.augment(image, image, seed=tf.constant([1, 2], tf.int64))
    other, _ = task.augment(image, image, seed=tf.constant([1, 3], tf.int64))
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(noisy, other)
    np.testing.assert_array_equal(target, image)
    assert 0 <= float(tf.reduce_min(noisy)) and float(tf.reduce_max(noisy)) <= 255
    assert 0.3 * 255 < float(tf.math.reduce_std(noisy)) < 0.45 * 255  # clipped at 0 and 255
    assert get_task("autoencoder")({"noise_std": 0.0}, fake_source()).augment is None
