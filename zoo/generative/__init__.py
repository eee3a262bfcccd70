"""Generative models: one module per family."""

from zoo.generative import autoencoder, dcgan, vae, wgan_gp  # noqa: F401
