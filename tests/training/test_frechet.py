"""The Frechet distance on zoo-cnn features (training/frechet.py): the closed form between
Gaussians, the estimate from samples, and the score's feature classifier on real digits."""

import random

import keras
import numpy as np
import pytest

from training import data, frechet


def rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spd(d, seed, rank=None):
    a = np.random.default_rng(seed).standard_normal((d, rank or d))
    return a @ a.T / d


def test_sqrtm_psd_is_a_symmetric_square_root_even_when_singular():
    for matrix in (spd(6, 0), spd(6, 1, rank=3), np.zeros((3, 3))):
        root = frechet.sqrtm_psd(matrix)
        np.testing.assert_allclose(root, root.T, atol=1e-12)
        np.testing.assert_allclose(root @ root, matrix, atol=1e-10)
        assert np.linalg.eigvalsh(root).min() > -1e-10


def test_distance_matches_the_closed_forms_between_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    shift = np.sum((mu1 - mu2) ** 2)

    # diagonal (commuting) covariances: |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = shift + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-10)

    # c I against a rotated, non-diagonal covariance R diag(l) R^T: tr sqrt = sqrt(c) sum sqrt(l)
    c, values = 2.0, rng.uniform(0.1, 4, 5)
    sigma2 = rotation(5, 1) @ np.diag(values) @ rotation(5, 1).T
    expected = shift + 5 * c + values.sum() - 2 * np.sqrt(c) * np.sqrt(values).sum()
    got = frechet.frechet_distance(mu1, c * np.eye(5), mu2, sigma2)
    assert got == pytest.approx(expected, rel=1e-10)

    # one dimension: (mu1 - mu2)^2 + (s1 - s2)^2
    got = frechet.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
    assert got == pytest.approx(9.0 + 1.0)

    # general, non-commuting covariances: symmetric, and zero only between equal Gaussians
    s1, s2 = spd(5, 2), spd(5, 3)
    assert np.linalg.norm(s1 @ s2 - s2 @ s1) > 0.1
    d12, d21 = (
        frechet.frechet_distance(mu1, s1, mu2, s2),
        frechet.frechet_distance(mu2, s2, mu1, s1),
    )
    assert d12 == pytest.approx(d21, rel=1e-9) and d12 > 0
    # tr((S1 S2)^1/2) from the eigenvalues of S1 S2 (real, non-negative: similar to a PSD matrix)
    direct = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    assert frechet.trace_sqrt_product(s1, s2) == pytest.approx(direct, rel=1e-9)
    assert frechet.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="shape"):
        frechet.frechet_distance(mu1, s1, mu2[:3], s2[:3, :3])


def test_statistics_of_samples_estimate_the_distance():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, 0.0])
    s1, s2 = spd(3, 4) + 0.1 * np.eye(3), spd(3, 5) + 0.1 * np.eye(3)
    x1 = rng.multivariate_normal(mu1, s1, size=200_000)
    x2 = rng.multivariate_normal(mu2, s2, size=200_000)
    estimate = frechet.frechet_distance(
        *frechet.gaussian_statistics(x1), *frechet.gaussian_statistics(x2)
    )
    assert estimate == pytest.approx(frechet.frechet_distance(mu1, s1, mu2, s2), rel=0.02)
    with pytest.raises(ValueError, match="at least 2"):
        frechet.gaussian_statistics(x1[:1])


@pytest.mark.parametrize("n1, n2, d", [(300, 200, 40), (50, 80, 600)])
def test_sample_space_route_equals_the_covariance_route(n1, n2, d):
    """Fewer samples than dimensions too (singular covariances, as with 1,600-dim cnn features)."""
    rng = np.random.default_rng(d)
    f1 = rng.standard_normal((n1, d)) @ rng.standard_normal((d, d)) * 0.3
    f2 = rng.standard_normal((n2, d)) * 1.5 + 0.2
    reference = frechet.frechet_distance(
        *frechet.gaussian_statistics(f1), *frechet.gaussian_statistics(f2)
    )
    got = frechet.frechet_distance_of_samples(f1, f2)
    assert got == pytest.approx(reference, rel=1e-7)
    assert frechet.frechet_distance_of_samples(f2, f1) == pytest.approx(reference, rel=1e-7)
    assert frechet.frechet_distance_of_samples(f1, f1) == pytest.approx(0.0, abs=1e-9 * reference)
    with pytest.raises(ValueError, match="dimension"):
        frechet.frechet_distance_of_samples(f1, f2[:, :-1])


@pytest.fixture(scope="module")
def mnist5k(shared_data):
    return data.open_source(f"folder:{shared_data / 'mnist5k'}")


def test_feature_classifier_is_trained_once_cached_and_leaves_the_run_alone(mnist5k, tmp_path):
    frechet._CLASSIFIERS.clear()
    random.seed(123)
    state = random.getstate()
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        classifier = frechet.feature_classifier(mnist5k, cache_dir=tmp_path, steps=60)
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    assert random.getstate() == state  # the run's random sequence is not consumed
    assert all(layer.dtype_policy.name == "float32" for layer in classifier.layers)
    [cached] = tmp_path.glob("*.keras")
    assert cached.name.startswith("mnist5k-") and "-60-64-0" in cached.name

    # the same object within the process; from the cache file in a new one
    assert frechet.feature_classifier(mnist5k, cache_dir=tmp_path, steps=60) is classifier
    frechet._CLASSIFIERS.clear()
    again = frechet.feature_classifier(mnist5k, cache_dir=tmp_path, steps=60)
    assert again is not classifier
    for a, b in zip(again.get_weights(), classifier.get_weights()):
        np.testing.assert_array_equal(a, b)
    # or given by path; a classifier for other images is refused
    assert frechet.feature_classifier(mnist5k, path=cached).input_shape == (None, 28, 28, 1)
    keras.utils.set_random_seed(0)
    other = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="shape"):
        frechet.feature_classifier(mnist5k, path=tmp_path / "other.keras")


def test_score_ranks_real_digits_far_above_noise_and_blur(mnist5k, tmp_path):
    classifier = frechet.feature_classifier(mnist5k, cache_dir=tmp_path, steps=60)
    images = lambda split: np.stack(
        [e["image"] for e in mnist5k.load(split).shuffle(5000, seed=0).take(500)]
    ).astype("float32")
    test, train = images("test"), images("train")
    scorer = frechet.CnnFrechet(classifier, test)
    assert scorer.features(test[:3]).shape == (3, 1600)  # cnn: 5 x 5 x 64 before the classifier
    spread = float(np.var(scorer.real_features, axis=0).sum())  # tr of the real covariance
    assert scorer.score(test) == pytest.approx(0.0, abs=1e-6 * spread)

    real = scorer.score(train)  # other real digits
    noise = scorer.score(np.random.default_rng(0).uniform(0, 255, train.shape).astype("float32"))
    grey = scorer.score(
        np.full_like(train, train.mean()) + np.random.default_rng(1).normal(0, 5, train.shape)
    )
    blurred = scorer.score((train + np.roll(train, 3, 1) + np.roll(train, 3, 2)) / 3)
    assert real < 0.2 * min(noise, grey), (real, noise, grey)
    assert real < blurred < max(noise, grey), (real, blurred, noise, grey)
