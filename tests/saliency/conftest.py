"""Explanation fixtures: a small cnn trained on the real digits (../shared/data/mnist5k) once per
session, its SavedModel export, and held-out test digits, ten of each class.

The cnn is keras-io's mnist_convnet (the `cnn-classic` recipe) with 16 and 32 filters, trained
without augmentation for 4 epochs of the 4,000 training digits (248 steps, about 95% on the 1,000
held-out ones, some 15 s on a CPU): good enough to be explained, quick enough for every run of
the suite.
"""

import dataclasses
import pathlib

import numpy as np
import pytest

TRAIN = [
    "model.overrides.filters=[16,32]",
    'task.augment="none"',
    "optimizer.lr=3e-3",
    "train.epochs=4",
    "train.max_steps=248",
    "train.batch_size=64",
]


@dataclasses.dataclass
class Trained:
    run_dir: pathlib.Path
    export_dir: pathlib.Path  # exports/cnn-classic/1
    model: object
    accuracy: float


@pytest.fixture(scope="session")
def trained_cnn(shared_data, tmp_path_factory) -> Trained:
    from serving import exporters
    from training import loop, recipes

    root = tmp_path_factory.mktemp("explain")
    sets = [f"data.dataset=folder:{shared_data / 'mnist5k'}", *TRAIN]
    result = loop.train(recipes.resolve("cnn-classic", sets), logdir=root / "runs", verbose=False)
    written = exporters.export_run(
        result.run_dir, root / "exports", ["saved_model"], say=lambda *_: None
    )
    return Trained(
        result.run_dir,
        pathlib.Path(written["saved_model"]),
        result.model,
        result.metrics["accuracy"],
    )


@pytest.fixture(scope="session")
def test_digits():
    """(images float32 [100,28,28,1] 0..255, labels [100]): the first ten held-out digits of
    each class."""
    from training import samples

    arrays = samples.load("mnist5k")
    labels = arrays["test_labels"]
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:10] for digit in range(10)])
    return arrays["test_images"][chosen].astype(np.float32), labels[chosen].astype(np.int64)
