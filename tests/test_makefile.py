"""`make train-<recipe>` exists for every recipe; every `make` target the README names exists."""

import pathlib
import re

from training import recipes

REPO = pathlib.Path(__file__).resolve().parents[1]

RULES = set(re.findall(r"^([\w.-]+):", (REPO / "Makefile").read_text(), flags=re.M))


def test_every_recipe_has_a_train_target():
    train_targets = {t for t in RULES if t.startswith("train-")}
    assert train_targets == {f"train-{name}" for name in recipes.list_recipes()} | {"train-resnet"}


def test_every_make_target_in_the_readme_exists():
    named = set(re.findall(r"\bmake ([\w.-]+)", (REPO / "README.md").read_text()))
    assert named and named <= RULES, named - RULES
