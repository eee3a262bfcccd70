"""Generative recipes: DCGAN (MNIST, Fashion-MNIST), WGAN-GP, a denoising autoencoder and a VAE.

Every run logs a fixed-noise sample grid (or reconstructions) each epoch and the
`frechet_cnn_distance`: a Frechet distance on the zoo cnn's features, NOT Inception FID (see
training/frechet.py). The task fields are described in training/tasks/generative.py.
"""

from training.recipes import add

# How the quality score is computed (the same for every recipe; --set task.<field>=... changes it).
FRECHET = {
    "seed": 0,
    "grid_size": 64,
    "frechet_samples": 1000,
    "frechet_split": "test",
    "feature_classifier": "",  # a trained cnn model.keras; "" trains one on the data set
    "feature_classifier_steps": 400,
    "feature_cache": "~/.cache/zoo/frechet_cnn",  # where that one is kept; "" for memory only
}

add(
    "gan",
    description="DCGAN (Radford et al. 2016) on MNIST: fixed-noise sample grid per epoch.",
    model={"name": "dcgan"},
    data={"dataset": "mnist"},
    task={"name": "gan", "sync_batchnorm": True, **FRECHET},
    optimizer={"name": "adam", "lr": 2e-4, "beta_1": 0.5},
    train={"epochs": 20, "batch_size": 128},
)

add(
    "gan-fashion",
    description="DCGAN on Fashion-MNIST (score features from a cnn trained on Fashion-MNIST).",
    model={"name": "dcgan"},
    data={"dataset": "fashion_mnist"},
    task={"name": "gan", "sync_batchnorm": True, **FRECHET},
    optimizer={"name": "adam", "lr": 2e-4, "beta_1": 0.5},
    train={"epochs": 25, "batch_size": 128},
)

add(
    "wgan-gp",
    description="WGAN-GP (Gulrajani et al. 2017) on MNIST: 5 critic updates of 64 per "
    "generator update, gradient penalty 10, Adam(1e-4, 0, 0.9).",
    model={"name": "wgan_gp"},
    data={"dataset": "mnist"},
    task={
        "name": "wgan_gp",
        "n_critic": 5,
        "gradient_penalty": 10.0,
        "sync_batchnorm": True,
        **FRECHET,
    },
    optimizer={"name": "adam", "lr": 1e-4, "beta_1": 0.0, "beta_2": 0.9},
    train={"epochs": 30, "batch_size": 320},  # n_critic x 64: one generator step per batch
)

add(
    "autoencoder",
    description="Denoising convolutional autoencoder on MNIST (Gaussian noise, std 0.4 of the "
    "pixel range, on the inputs; clean targets).",
    model={"name": "autoencoder"},
    data={"dataset": "mnist"},
    task={"name": "autoencoder", "noise_std": 0.4, **FRECHET},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 10, "batch_size": 128},
)

add(
    "vae",
    description="Convolutional VAE on MNIST: prior samples, reconstructions, KL and "
    "reconstruction terms per epoch.",
    model={"name": "vae"},
    data={"dataset": "mnist"},
    task={"name": "vae", "kl_weight": 1.0, **FRECHET},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 30, "batch_size": 128},
)
