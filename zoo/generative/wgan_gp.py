"""WGAN-GP (Gulrajani et al. 2017): the DCGAN generator against a critic with a linear output.

Same structure and names as `dcgan` (see zoo/generative/dcgan.py): one functional model over two
nested functional models, inputs `latent` and `images` (0..255), outputs `generated` (0..255),
`real_score` and `fake_score` (float32). The second network is `model.get_layer("critic")`:

- no BatchNorm, because the gradient penalty is taken per sample and BatchNorm mixes the samples
  of a batch; the paper recommends layer normalization instead (`critic_norm="layer"`: statistics
  over H, W, C per sample with per-channel scale and offset, as in the authors' code), or none;
- a linear score (a Wasserstein critic, not a classifier's logit).

The gradient penalty needs backend gradients of the critic at interpolated images; the training
task computes it on `model.get_layer("critic")`. This module only defines the networks.
"""

from zoo.generative.dcgan import build_adversarial_model, build_discriminator, build_generator
from zoo.registry import register


@register(
    "wgan_gp",
    task="wgan_gp",
    input_shape=(28, 28, 1),
    citation="Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017 (arXiv:1704.00028); "
    "keras-io examples/generative/wgan_gp.py",
    tiny={"latent_dim": 8, "generator_width": 4, "critic_width": 4},
)
def wgan_gp(
    input_shape=(28, 28, 1),
    latent_dim=128,
    generator_width=64,
    critic_width=64,
    critic_norm="layer",
    name="wgan_gp",
):
    """WGAN-GP: the DCGAN generator and a critic without BatchNorm (layer norm or none)."""
    generator = build_generator(input_shape, latent_dim, generator_width, name="generator")
    critic = build_discriminator(input_shape, critic_width, norm=critic_norm, name="critic")
    return build_adversarial_model(generator, critic, name=name)
