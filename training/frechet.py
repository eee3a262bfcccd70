"""A Frechet distance on the features of the zoo's own `cnn` classifier: a sample-quality score.

NOT Inception FID. FID (Heusel et al. 2017) is the Frechet distance between Gaussians fitted to
Inception-v3 pool features of real and generated images; here the features are the penultimate
activations (the input of the final Dense layer) of the zoo's `cnn` (zoo/vision/cnn.py) trained on
the data set's own labelled training split. The numbers are therefore comparable only between runs
that use the same feature classifier, never with published FID figures; names and TensorBoard tags
say `frechet_cnn_distance` to keep that visible.

    d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^1/2 S_2 S_1^1/2)^1/2)

The trace term equals tr((S_1 S_2)^1/2) but is computed from symmetric positive semi-definite
matrices only, with numpy's `eigh` (scipy's `sqrtm` is not a dependency): the square root of a PSD
matrix is V diag(sqrt(max(l, 0))) V^T. The score itself evaluates the same formula in sample
space (`frechet_distance_of_samples`: the singular values of an N x N matrix instead of D x D
square roots), which is cheaper for the 1,000 images scored per epoch in 1,600 dimensions. The
estimate from samples is biased upwards, the more so for few samples in many dimensions (the cnn's
features have 1,600): compare scores computed from the same number of images.

Where the classifier comes from (`feature_classifier`): a path to a trained cnn `model.keras` (e.g.
runs/cnn/<time>/model.keras from `make train-cnn`), or else one trained here: the zoo `cnn` with its
default widths, `steps` Adam steps (400 by default: 96% on mnist5k's test digits, some 20 s of CPU)
on the data set's labelled train split, in float32 and seeded, without touching the run's global
random state. It is cached in memory for the process and, given a cache directory, as
`<cache_dir>/<data set>-<hash>-<steps>-<batch>-<seed>.keras`, so every run on that data set scores
with the same network. A Fashion-MNIST run gets a cnn trained on Fashion-MNIST, and so on.
"""

import hashlib
import pathlib
import random
import re

import keras
import numpy as np
import tensorflow as tf

import zoo

SCORE_NAME = "frechet_cnn_distance"  # not Inception FID: see the module docstring


# ---------------------------------------------------------------------------------------------
# the math


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of `features` [N, D], in float64."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if len(features) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def sqrtm_psd(matrix) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative
    eigenvalues from rounding are clipped to zero)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1, sigma2, sqrt_sigma1=None) -> float:
    """tr((S_1 S_2)^1/2), as tr((S_1^1/2 S_2 S_1^1/2)^1/2): similar matrices, the second PSD."""
    root = sqrtm_psd(sigma1) if sqrt_sigma1 is None else sqrt_sigma1
    inner = root @ np.asarray(sigma2, dtype=np.float64) @ root
    values = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, sqrt_sigma1=None) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    distance = (
        np.sum((mu1 - mu2) ** 2)
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * trace_sqrt_product(sigma1, sigma2, sqrt_sigma1)
    )
    return float(max(distance, 0.0))


def centered(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean, X) with X = (features - mean) / sqrt(N - 1), so that the covariance is X^T X."""
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if len(features) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(features)}")
    mu = features.mean(axis=0)
    return mu, (features - mu) / np.sqrt(len(features) - 1)


def frechet_distance_of_samples(features1, features2) -> float:
    """The same distance between the Gaussians fitted to two sets of feature vectors, computed in
    sample space: with S_i = X_i^T X_i (see `centered`), S_1^1/2 S_2 S_1^1/2 has the nonzero
    eigenvalues of (X_1 X_2^T)^T (X_1 X_2^T), so the trace term is the sum of the singular values
    of the N_1 x N_2 matrix X_1 X_2^T, and tr(S_i) = |X_i|_F^2. No D x D matrix is formed: cheaper
    than `frechet_distance` when there are fewer samples than feature dimensions."""
    mu1, x1 = centered(features1)
    mu2, x2 = centered(features2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"features differ in dimension: {mu1.shape} vs {mu2.shape}")
    singular = np.linalg.svd(x1 @ x2.T, compute_uv=False)
    distance = np.sum((mu1 - mu2) ** 2) + np.sum(x1**2) + np.sum(x2**2) - 2.0 * singular.sum()
    return float(max(distance, 0.0))


# ---------------------------------------------------------------------------------------------
# the score


class CnnFrechet:
    """Frechet distance on zoo-cnn features (not Inception FID) against a fixed set of real images.

    The real images' features are computed once; `score` then costs one forward pass of the
    classifier and one singular value decomposition of an N_real x N_generated matrix.
    """

    def __init__(self, classifier: keras.Model, real_images, batch_size=500):
        final = classifier.layers[-1]
        self.extractor = keras.Model(classifier.inputs[0], final.input, name="frechet_cnn_features")
        self.batch_size = batch_size
        self.real_features = self.features(real_images)

    def features(self, images) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        return np.concatenate(
            [
                np.asarray(self.extractor(images[i : i + self.batch_size], training=False))
                for i in range(0, len(images), self.batch_size)
            ]
        ).reshape(len(images), -1)

    def score(self, images) -> float:
        return frechet_distance_of_samples(self.real_features, self.features(images))


# ---------------------------------------------------------------------------------------------
# the feature classifier

_CLASSIFIERS: dict[str, keras.Model] = {}


def feature_classifier(
    source, *, path="", cache_dir=None, steps=400, batch_size=64, seed=0, split="train"
) -> keras.Model:
    """The zoo `cnn` whose penultimate features the score uses: loaded from `path`, or trained
    `steps` Adam steps on `source`'s labelled `split` (cached in memory and under `cache_dir`)."""
    if path:
        model = keras.saving.load_model(pathlib.Path(path).expanduser(), compile=False)
        _check_classifier(model, source)
        return model
    key = f"{_slug(source.name)}-{steps}-{batch_size}-{seed}"
    if key in _CLASSIFIERS:
        return _CLASSIFIERS[key]
    cached = pathlib.Path(cache_dir).expanduser() / f"{key}.keras" if cache_dir else None
    if cached is not None and cached.is_file():
        model = keras.saving.load_model(cached, compile=False)
    else:
        where = f"; kept in {cached}" if cached is not None else ""
        print(
            f"training the Frechet feature classifier (zoo cnn, {steps} steps on "
            f"{source.name}{where})",
            flush=True,
        )
        model = _train_classifier(source, steps, batch_size, seed, split)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.stem}.tmp.keras")
            model.save(tmp)
            tmp.replace(cached)
    _CLASSIFIERS[key] = model
    return model


def _train_classifier(source, steps, batch_size, seed, split) -> keras.Model:
    if not source.class_names:
        raise ValueError(
            f"data set {source.name!r} has no class labels to train the Frechet feature "
            "classifier on: set task.feature_classifier to a trained cnn model.keras"
        )
    image_shape = tuple(source.features["image"].shape)
    ds = (
        source.load(split)
        .map(lambda e: (e["image"], e["label"]))
        .cache()
        .repeat()
        .shuffle(10000, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (tf.cast(x, tf.float32), y))
        .take(steps)
    )
    # Float32 and seeded, whatever the surrounding run set; the global random states are restored.
    previous_policy = keras.mixed_precision.global_policy()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        keras.mixed_precision.set_dtype_policy("float32")
        random.seed(seed)
        np.random.seed(seed)
        model = zoo.build("cnn", input_shape=image_shape, num_classes=len(source.class_names))
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return model


def _check_classifier(model, source):
    expected = tuple(source.features["image"].shape)
    got = tuple(model.input_shape[1:])
    if got != expected:
        raise ValueError(
            f"feature classifier takes images of shape {got}, the data set has {expected}"
        )


def _slug(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9]+", "_", name.rsplit("/", 1)[-1]).strip("_")[:40]
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
