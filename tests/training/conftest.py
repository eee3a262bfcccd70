"""Fixtures of the training tests: a small digit classifier trained on the real digits, exported
(the attack tests attack it, the distillation tests use it as a teacher)."""

import pytest

from tests.conftest import train_and_export

# a small plain cnn (no dropout, no augmentation): fast, and ~94% on the held-out digits
DIGITS = [
    'model.overrides={"filters": [16, 32], "dropout": 0.0}',
    "task.augment=none",
    "task.label_smoothing=0.0",
    "optimizer.lr=0.003",
    "train.batch_size=64",
    "data.shuffle_buffer=4096",
    'export.formats=["saved_model"]',
]


def digits_recipe(shared_data, *sets):
    from training import recipes

    dataset = f"data.dataset=folder:{shared_data / 'mnist5k'}"
    return recipes.resolve("cnn-classic", [dataset, *DIGITS, *sets])


@pytest.fixture(scope="session")
def digit_classifier(shared_data, tmp_path_factory):
    """cnn-classic with 16 and 32 filters, 200 steps on the shared digits, and its SavedModel."""
    recipe = digits_recipe(shared_data, "train.max_steps=200")
    return train_and_export(recipe, tmp_path_factory.mktemp("digits"))
