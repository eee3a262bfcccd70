"""The generative family: dcgan, wgan_gp, autoencoder, vae (zoo/generative/)."""

import keras
import numpy as np
import PIL.Image
import pytest

import zoo
from zoo.generative.dcgan import upsampling_plan
from zoo.generative.vae import Sampling

GANS = {"dcgan": "discriminator", "wgan_gp": "critic"}
SUBMODELS = {
    "dcgan": ("generator", "discriminator"),
    "wgan_gp": ("generator", "critic"),
    "autoencoder": ("encoder", "decoder"),
    "vae": ("encoder", "decoder"),
}


def pixels(n, shape=(28, 28, 1), seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def gan_inputs(model, n=4, seed=0):
    latent_dim = model.get_layer("generator").input_shape[-1]
    latent = np.random.default_rng(seed).normal(size=(n, latent_dim)).astype("float32")
    return {"latent": latent, "images": pixels(n, model.input_shape[1][1:], seed)}


def close(a, b, atol=1e-5):
    return np.allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=atol)


@pytest.fixture
def mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


def test_specs():
    tasks = {"dcgan": "gan", "wgan_gp": "wgan_gp", "autoencoder": "autoencoder", "vae": "vae"}
    for name, task in tasks.items():
        spec = zoo.get_spec(name)
        assert (spec.task, spec.input_shape) == (task, (28, 28, 1))
        assert spec.tiny and spec.citation


def test_upsampling_plan_follows_the_image_size():
    assert upsampling_plan((28, 28, 1)) == (2, 7, 7)
    assert upsampling_plan((32, 32, 3)) == (3, 4, 4)
    assert upsampling_plan((64, 64, 3)) == (4, 4, 4)
    assert upsampling_plan((48, 64, 3)) == (3, 6, 8)
    with pytest.raises(ValueError, match="even"):
        upsampling_plan((27, 27, 1))
    with pytest.raises(ValueError, match="divisible"):
        zoo.build("autoencoder", tiny=True, input_shape=(30, 30, 1))


@pytest.mark.parametrize("name", GANS)
def test_gan_shapes_dtypes_and_pixel_range(name):
    model = zoo.build(name, tiny=True)
    assert model.name == name
    assert [t.name for t in model.inputs] == ["latent", "images"]
    inputs = gan_inputs(model)
    # Saturate the generator: its tanh output must still land inside 0..255.
    inputs["latent"] = inputs["latent"] * 1000.0
    out = model(inputs)
    assert sorted(out) == ["fake_score", "generated", "real_score"]
    assert out["generated"].shape == (4, 28, 28, 1)
    assert out["real_score"].shape == out["fake_score"].shape == (4, 1)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
    generated = keras.ops.convert_to_numpy(out["generated"])
    assert generated.min() >= 0.0 and generated.max() <= 255.0
    assert generated.std() > 1.0  # images, not a constant
    # A list in `model.inputs` order is accepted too (the shared table builds inputs that way).
    listed = model([inputs["latent"], inputs["images"]])
    assert close(listed["real_score"], out["real_score"])


@pytest.mark.parametrize("shape, stages", [((32, 32, 3), 3), ((64, 64, 3), 4)])
def test_dcgan_other_image_sizes(shape, stages):
    model = zoo.build("dcgan", input_shape=shape, latent_dim=8, generator_width=2,
                      discriminator_width=2)  # fmt: skip
    generator, discriminator = model.get_layer("generator"), model.get_layer("discriminator")
    deconvs = [x for x in generator.layers if isinstance(x, keras.layers.Conv2DTranspose)]
    convs = [x for x in discriminator.layers if isinstance(x, keras.layers.Conv2D)]
    assert len(deconvs) == len(convs) == stages
    out = model(gan_inputs(model, n=2))
    assert out["generated"].shape == (2, *shape)
    assert out["fake_score"].shape == (2, 1)


@pytest.mark.parametrize("name", GANS)
def test_gan_submodels_share_weights_with_the_combined_model(name):
    model = zoo.build(name, tiny=True)
    generator, critic = model.get_layer("generator"), model.get_layer(GANS[name])
    assert isinstance(generator, keras.Model) and isinstance(critic, keras.Model)
    # The two halves partition the trainable weights: one optimizer each.
    g_ids = {id(v) for v in generator.trainable_weights}
    c_ids = {id(v) for v in critic.trainable_weights}
    assert g_ids and c_ids and not g_ids & c_ids
    assert g_ids | c_ids == {id(v) for v in model.trainable_weights}

    inputs = gan_inputs(model)
    before = model(inputs)
    assert close(before["generated"], generator(inputs["latent"]))
    assert close(before["real_score"], critic(inputs["images"]))
    assert close(before["fake_score"], critic(generator(inputs["latent"])))

    # Train the critic alone one step: the combined model's scores follow.
    critic.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    critic.train_on_batch(inputs["images"], np.full((4, 1), 10.0, "float32"))
    generator.set_weights([w * 1.5 + 0.01 for w in generator.get_weights()])
    after = model(inputs)
    assert not close(after["real_score"], before["real_score"])
    assert not close(after["generated"], before["generated"])
    assert close(after["real_score"], critic(inputs["images"]))
    assert close(after["generated"], generator(inputs["latent"]))


def test_wgan_gp_critic_scores_each_sample_alone():
    """No BatchNorm in the critic: a sample's score in training mode ignores the rest of the batch
    (the gradient penalty is per sample); the DCGAN discriminator's BatchNorm does not."""
    images = pixels(8, seed=1)
    critic = zoo.build("wgan_gp", tiny=True).get_layer("critic")
    assert not any(isinstance(x, keras.layers.BatchNormalization) for x in critic.layers)
    assert any(isinstance(x, keras.layers.GroupNormalization) for x in critic.layers)
    assert close(critic(images, training=True)[:2], critic(images[:2], training=True), atol=1e-4)

    plain = zoo.build("wgan_gp", tiny=True, critic_norm=None).get_layer("critic")
    assert not any("norm" in type(x).__name__.lower() for x in plain.layers)

    disc = zoo.build("dcgan", tiny=True).get_layer("discriminator")
    assert not close(disc(images, training=True)[:2], disc(images[:2], training=True), atol=1e-4)


def test_sampling_is_seeded():
    z_mean = np.ones((4000, 4), "float32")
    z_log_var = np.full((4000, 4), np.log(4.0), "float32")  # std 2
    draw = lambda layer: keras.ops.convert_to_numpy(layer(z_mean, z_log_var, training=True))
    first = Sampling(seed=1, name="a")
    a1, a2 = draw(first), draw(first)
    b1 = draw(Sampling(seed=1, name="b"))
    c1 = draw(Sampling(seed=2, name="c"))
    assert np.array_equal(a1, b1)  # same seed, same draws
    assert not np.allclose(a1, c1)  # another seed, other draws
    assert not np.allclose(a1, a2)  # each call advances the generator
    assert abs(a1.mean() - 1.0) < 0.1 and abs(a1.std() - 2.0) < 0.1
    # Not training: the mean, exactly.
    assert np.array_equal(keras.ops.convert_to_numpy(first(z_mean, z_log_var)), z_mean)
    # Serializable: the seed survives the config.
    assert keras.saving.get_registered_name(Sampling) == "zoo>Sampling"
    clone = Sampling.from_config(Sampling(seed=1, name="d").get_config())
    assert np.array_equal(draw(clone), a1)


def test_vae_outputs_and_encoder_path():
    model = zoo.build("vae", tiny=True, seed=3)
    images = pixels(4)
    out = model(images)
    assert sorted(out) == ["reconstruction", "reconstruction_logits", "z_log_var", "z_mean"]
    assert out["reconstruction"].shape == out["reconstruction_logits"].shape == (4, 28, 28, 1)
    assert out["z_mean"].shape == out["z_log_var"].shape == (4, 8)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in out.values())
    recon = keras.ops.convert_to_numpy(out["reconstruction"])
    assert recon.min() >= 0.0 and recon.max() <= 255.0
    assert close(recon, keras.ops.sigmoid(out["reconstruction_logits"]) * 255.0, atol=1e-3)

    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    encoded = encoder(images)
    assert close(out["z_mean"], encoded["z_mean"]) and close(out["z_log_var"], encoded["z_log_var"])
    # Inference decodes z_mean: deterministic, and the same as the two halves chained.
    assert close(out["reconstruction"], model(images)["reconstruction"])
    assert close(out["reconstruction"], decoder(encoded["z_mean"])["reconstruction"], atol=1e-3)
    # Training samples z around z_mean; the encoder's outputs do not move.
    trained = model(images, training=True)
    assert close(trained["z_mean"], out["z_mean"])
    assert not close(trained["reconstruction_logits"], out["reconstruction_logits"], atol=1e-4)


def test_vae_gradient_reaches_z_log_var_through_sampling():
    """A reconstruction loss alone moves z_log_var's weights: only possible via the sampled z."""
    keras.utils.set_random_seed(0)  # unseeded weights moved z_log_var by ~1e-7 in 1 run of 4
    model = zoo.build("vae", tiny=True, seed=0)
    images = pixels(8)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"reconstruction_logits": keras.losses.BinaryCrossentropy(from_logits=True)},
    )
    kernel = model.get_layer("encoder").get_layer("encoder_z_log_var").kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    model.train_on_batch(images, {"reconstruction_logits": images / 255.0})
    assert not np.allclose(keras.ops.convert_to_numpy(kernel), before)


def test_autoencoder_overfits_a_small_batch(shared_data):
    files = sorted((shared_data / "mnist5k" / "train").glob("*/*.png"))[::250][:16]
    images = np.stack([np.asarray(PIL.Image.open(f), "float32") for f in files])[..., None]
    keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", tiny=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss={"reconstruction": "mse"})
    losses = [model.train_on_batch(images, {"reconstruction": images}) for _ in range(50)]
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    assert encoder(images).shape == (16, 8)
    assert close(model(images)["reconstruction"], decoder(encoder(images)), atol=1e-3)


@pytest.mark.parametrize("name", sorted(SUBMODELS))
def test_keras_save_load_round_trip(name, tmp_path):
    model = zoo.build(name, tiny=True)
    inputs = gan_inputs(model) if name in GANS else pixels(4)
    expected = model(inputs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name
    got = loaded(inputs)
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert close(got[key], expected[key], atol=1e-4), key
    for sub in SUBMODELS[name]:
        assert isinstance(loaded.get_layer(sub), keras.Model)
    if name == "vae":
        assert isinstance(loaded.get_layer("encoder").get_layer("sampling"), Sampling)


@pytest.mark.parametrize("name", sorted(SUBMODELS))
def test_outputs_stay_float32_under_mixed_precision(name, mixed_precision):
    model = zoo.build(name, tiny=True)
    inputs = gan_inputs(model) if name in GANS else pixels(2)
    out = model(inputs, training=True)
    for key, value in out.items():
        assert keras.backend.standardize_dtype(value.dtype) == "float32", key
        assert np.isfinite(keras.ops.convert_to_numpy(value)).all(), key
    first = next(iter(v for k, v in out.items() if k in ("generated", "reconstruction")))
    assert 0.0 <= float(keras.ops.min(first)) and float(keras.ops.max(first)) <= 255.0
    # The sub-models are exported on their own (a generator, an encoder): float32 out as well,
    # while their inner layers compute in float16.
    for sub in SUBMODELS[name]:
        submodel = model.get_layer(sub)
        assert all(t.dtype == "float32" for t in submodel.outputs), sub
        assert any(x.compute_dtype == "float16" for x in submodel.layers), sub
