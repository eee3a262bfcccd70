"""A convolutional variational autoencoder (Kingma & Welling 2014; keras-io generative/vae.py).

`images` (0..255, float) -> a dict of float32 outputs:

- `z_mean`, `z_log_var` [B, latent_dim]: the encoder's Gaussian q(z | x), for the KL term;
- `reconstruction_logits` [B, H, W, C]: Bernoulli logits of the decoder, for a numerically stable
  binary cross-entropy against the pixels scaled to [0, 1] (`from_logits=True`);
- `reconstruction` [B, H, W, C]: sigmoid(logits) * 255, the decoded image in pixel space.

Two nested functional models are reachable by name: `model.get_layer("encoder")` (images -> dict
z_mean, z_log_var, z) and `model.get_layer("decoder")` (`z` -> dict reconstruction,
reconstruction_logits); the decoder alone is the sampler, fed z ~ N(0, I).

The `Sampling` layer draws z = z_mean + exp(z_log_var / 2) * eps only when called with
`training=True` (as `fit`, `train_on_batch` and a task's train step do); at inference it returns
z_mean, so predictions and exported encoders are deterministic.
"""

import keras
from keras import layers, ops

from zoo.generative.autoencoder import downsampled_size
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
class Sampling(layers.Layer):
    """Reparameterisation: z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I), when training.

    The noise comes from a `keras.random.SeedGenerator`: layers built with the same `seed` draw the
    same sequence; each call advances it. Not training: returns `z_mean` unchanged.
    """

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name=f"{self.name}_seed_generator")

    def call(self, z_mean, z_log_var, training=None):
        if not training:
            return z_mean
        epsilon = keras.random.normal(
            ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, z_mean_shape, z_log_var_shape):
        return z_mean_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@register(
    "vae",
    task="vae",
    input_shape=(28, 28, 1),
    citation="Kingma & Welling 2014 (arXiv:1312.6114); keras-io examples/generative/vae.py",
    tiny={"filters": (4, 8), "dense_units": 16, "latent_dim": 8},
)
def vae(
    input_shape=(28, 28, 1),
    filters=(32, 64),
    dense_units=128,
    latent_dim=16,
    seed=None,
    name="vae",
):
    """Convolutional VAE: encoder -> (z_mean, z_log_var) -> Sampling -> decoder -> pixels."""
    base_h, base_w = downsampled_size(input_shape, len(filters))

    images = keras.Input(shape=input_shape, name="images")
    x = layers.Rescaling(1.0 / 255, name="encoder_rescale")(images)
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(
            f, 3, strides=2, padding="same", activation="relu", name=f"encoder_block{i}_conv"
        )(x)
    x = layers.Flatten(name="encoder_flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="encoder_dense")(x)
    z_mean = layers.Dense(latent_dim, dtype="float32", name="encoder_z_mean")(x)
    z_log_var = layers.Dense(latent_dim, dtype="float32", name="encoder_z_log_var")(x)
    z = Sampling(seed=seed, name="sampling")(z_mean, z_log_var)
    encoder = keras.Model(
        images, {"z_mean": z_mean, "z_log_var": z_log_var, "z": z}, name="encoder"
    )

    z_in = keras.Input(shape=(latent_dim,), name="z")
    x = layers.Dense(base_h * base_w * filters[-1], activation="relu", name="decoder_project")(z_in)
    x = layers.Reshape((base_h, base_w, filters[-1]), name="decoder_reshape")(x)
    for i, f in enumerate(reversed(filters), start=1):
        x = layers.Conv2DTranspose(
            f, 3, strides=2, padding="same", activation="relu", name=f"decoder_block{i}_deconv"
        )(x)
    logits = layers.Conv2D(
        input_shape[-1], 3, padding="same", dtype="float32", name="decoder_logits"
    )(x)
    x = layers.Activation("sigmoid", dtype="float32", name="decoder_sigmoid")(logits)
    pixels = layers.Rescaling(255.0, dtype="float32", name="decoder_to_pixels")(x)
    decoder = keras.Model(
        z_in, {"reconstruction": pixels, "reconstruction_logits": logits}, name="decoder"
    )

    inputs = keras.Input(shape=input_shape, name="images")
    encoded = encoder(inputs)
    decoded = decoder(encoded["z"])
    outputs = {
        key: layers.Identity(dtype="float32", name=key)(tensor)
        for key, tensor in [
            ("reconstruction", decoded["reconstruction"]),
            ("reconstruction_logits", decoded["reconstruction_logits"]),
            ("z_mean", encoded["z_mean"]),
            ("z_log_var", encoded["z_log_var"]),
        ]
    }
    return keras.Model(inputs, outputs, name=name)
