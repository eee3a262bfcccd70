"""Signatures of generative models: generators, VAE encoder/decoder, autoencoders.

gan, wgan_gp (the model's `generator`):
    serving_default  latent float32 [N, latent_dim] -> images float32 [N, H, W, C], 0..255
                     (what TFLite converts: float in, float out)
    generate         latent float32 [N, latent_dim] -> images uint8 [N, H, W, C]
    sample           count int32 [], seed int64 [] -> images uint8 [count, H, W, C] and the
                     latent vectors used; latents ~ N(0, I) drawn in the graph, stateless: the same
                     (count, seed) gives the same images, and a smaller count the first ones
vae:
    serving_default = decode: z float32 [N, latent_dim] -> images float32 0..255 (the decoder)
    encode           images float32 [N, H, W, C] (0..255) -> z_mean, z_log_var
    sample           count, seed -> images uint8, latent (decoded prior samples)
autoencoder:
    serving_default = reconstruct: images float32 [N, H, W, C] (0..255) -> reconstruction float32
"""

import numpy as np
import tensorflow as tf

from serving.signatures import signature_builder


def _to_uint8(images):
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def _latent_spec(dim, name="latent"):
    return tf.TensorSpec([None, dim], tf.float32, name=name)


def _add_sample(archive, decode, latent_dim):
    def sample(count, seed):
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        latent = tf.random.stateless_normal([count, latent_dim], seed=seed)
        return {"images": _to_uint8(decode(latent)), "latent": latent}

    archive.add_endpoint(
        "sample",
        sample,
        input_signature=[
            tf.TensorSpec([], tf.int32, name="count"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ],
    )


@signature_builder("gan")
@signature_builder("wgan_gp")
def generator(archive, model, info):
    """serving_default (latent -> float pixels), generate (latent -> uint8), sample."""
    net = model.get_layer("generator")
    latent_dim = int(info["latent_dim"])

    def decode(latent):
        return tf.cast(net(latent, training=False), tf.float32)

    archive.add_endpoint(
        "serving_default",
        lambda latent: {"images": decode(latent)},
        input_signature=[_latent_spec(latent_dim)],
    )
    archive.add_endpoint(
        "generate",
        lambda latent: {"images": _to_uint8(decode(latent))},
        input_signature=[_latent_spec(latent_dim)],
    )
    _add_sample(archive, decode, latent_dim)
    return {"latent": np.zeros([1, latent_dim], np.float32)}


@signature_builder("vae")
def vae(archive, model, info):
    """serving_default = decode (z -> float pixels), encode (images -> z_mean, z_log_var),
    sample (count, seed -> uint8 images)."""
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    latent_dim = int(info["latent_dim"])
    shape = list(info["image_shape"])

    def decode(z):
        return tf.cast(decoder(z, training=False)["reconstruction"], tf.float32)

    def encode(images):
        encoded = encoder(images, training=False)
        return {"z_mean": encoded["z_mean"], "z_log_var": encoded["z_log_var"]}

    for name in ("serving_default", "decode"):
        archive.add_endpoint(
            name, lambda z: {"images": decode(z)}, input_signature=[_latent_spec(latent_dim, "z")]
        )
    archive.add_endpoint(
        "encode", encode, input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")]
    )
    _add_sample(archive, decode, latent_dim)
    return {"z": np.zeros([1, latent_dim], np.float32)}


@signature_builder("autoencoder")
def autoencoder(archive, model, info):
    """serving_default = reconstruct: images (0..255) -> reconstruction (0..255, float32)."""
    shape = list(info["image_shape"])

    def reconstruct(images):
        return {
            "reconstruction": tf.cast(model(images, training=False)["reconstruction"], tf.float32)
        }

    for name in ("serving_default", "reconstruct"):
        archive.add_endpoint(
            name,
            reconstruct,
            input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")],
        )
    return {"images": np.zeros([1, *shape], np.float32)}
