"""Recipes: what to train, on what, how long, and what to export. Plain data.

A recipe names a model (+ overrides), a data set, a task, an optimizer and schedule, epochs and
batch size, and the export formats with their options. Any field can be changed from the command
line with `--set path.to.field=value` (the value parsed as JSON, else taken as a string); the
resolved recipe is saved as `recipe.json` in the run directory. Families add their recipes in
training/recipe_book/<family>.py with `add(...)`.
"""

import copy
import difflib
import importlib
import json
import pkgutil

from training import extensions, recipe_book

DEFAULTS = {
    "description": "",
    # init_from: a run, runs/<recipe>, a .keras or .h5 file to start from (training/transfer.py);
    # init_exclude: layer names or prefixes left new (e.g. ["predictions"]: a head for new classes)
    "model": {"name": None, "overrides": {}, "init_from": None, "init_exclude": []},
    "data": {
        "dataset": None,
        "fallback": None,  # opened instead when the tfds data set cannot be prepared offline
        "train_split": "train",
        "validation_split": "test",
        "shuffle_buffer": 10000,
        "cache": True,
        "classes": None,  # class indices to keep, relabelled 0..k-1 (None: all)
        "per_class": 0,  # the first N examples of each class of the training split (0: all)
        # {"key": feature, "pattern": regex, "group": value}: splits `kept` and `held_out` from
        # all of the data, by the regex's first group over a string feature (data.hold_out);
        # a group of None: off (leave-one-speaker-out: `python -m training crossval`)
        "hold_out": None,
    },
    "task": {"name": "classification"},
    "optimizer": {
        "name": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "clipnorm": None,
        "schedule": "constant",
        "warmup_steps": 0,
    },
    "train": {
        "epochs": 10,
        "batch_size": 128,
        "max_steps": 0,
        "eval_batch_size": 256,
        "seed": 0,
        "log_every": 20,
        "checkpoint_every": 500,
        "keep_checkpoints": 3,
        # transfer learning: "backbone" (what init_from loaded) or layer names, frozen for
        # freeze_epochs (0: all), then trained at the learning rate times unfreeze_lr_scale
        "freeze": None,
        "freeze_epochs": 0,
        "unfreeze_lr_scale": 1.0,
    },
    # exports/<name>/ (default: the recipe's name); each format's section holds its options
    "export": {
        "name": None,
        "formats": ["saved_model", "tflite"],
        "saved_model": {"signatures": None},  # None: every signature of the task
        "tflite": {"variants": ["float32", "float16", "dynamic", "int8"]},
    },
    # how to run it: the command-line flags --strategy, --mixed-precision, --jit, --tiny; and
    # without a terminal (no progress bar), a progress line at most every progress_seconds
    "run": {
        "strategy": "auto",
        "mixed_precision": None,
        "jit": False,
        "tiny": False,
        "progress_seconds": 10,
    },
}

# every training extension's section (`prune`, ...), off by default: --set works on any recipe
DEFAULTS.update({name: dict(cls.defaults) for name, cls in extensions.EXTENSIONS.items()})

RECIPES: dict[str, dict] = {}


class RecipeError(ValueError):
    """A bad recipe name or field: a one-line reason for the user."""


def add(name: str, **sections) -> None:
    """Register a recipe: sections override DEFAULTS field by field."""
    if name in RECIPES:
        raise ValueError(f"recipe {name!r} is defined twice")
    recipe = copy.deepcopy(DEFAULTS)
    for key, value in sections.items():
        if key not in recipe:
            raise ValueError(f"recipe {name!r}: unknown section {key!r}")
        if isinstance(recipe[key], dict):
            recipe[key].update(copy.deepcopy(value))
        else:
            recipe[key] = copy.deepcopy(value)
    recipe["name"] = name
    RECIPES[name] = recipe


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def from_file(arg: str) -> dict | None:
    """A recipe given as a .json file (a run's recipe.json, a search's best_recipe.json): its
    contents; None for a recipe name."""
    if not arg.endswith(".json"):
        return None
    try:
        with open(arg) as f:
            recipe = json.load(f)
    except FileNotFoundError:
        raise RecipeError(f"recipe file {arg} does not exist") from None
    except json.JSONDecodeError as e:
        raise RecipeError(f"recipe file {arg} is not JSON: {e}") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("name"), str):
        raise RecipeError(f'recipe file {arg} is not a recipe (no "name")')
    return recipe


def resolve(name: str, sets=(), base: dict | None = None) -> dict:
    """The recipe `name` (or the recipe file `name`, or `base`, e.g. a saved recipe.json) with
    `--set` overrides applied."""
    if base is None:
        base = from_file(name)
    if base is None:
        if name not in RECIPES:
            close = difflib.get_close_matches(name, RECIPES, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RecipeError(f"unknown recipe {name!r}{hint} (known: {', '.join(list_recipes())})")
        base = RECIPES[name]
    recipe = _fill(copy.deepcopy(base), DEFAULTS)  # a saved recipe.json may predate a field
    for assignment in sets:
        apply_set(recipe, assignment)
    return recipe


def _fill(recipe: dict, defaults: dict) -> dict:
    for key, value in defaults.items():
        if key not in recipe:
            recipe[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(recipe[key], dict):
            _fill(recipe[key], value)
    return recipe


def apply_set(recipe: dict, assignment: str) -> None:
    """`optimizer.lr=3e-4`: the path must exist, except inside `model.overrides`."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path or any(not part for part in path.split(".")):
        raise RecipeError(f"malformed --set {assignment!r}: expected key.path=value")
    keys = path.split(".")
    node = recipe
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node, dict) or key not in node:
            raise RecipeError(f"--set {path}: no field {'.'.join(keys[: i + 1])!r} in the recipe")
        node = node[key]
    free_form = keys[:2] == ["model", "overrides"]
    last = keys[-1]
    if not isinstance(node, dict) or (last not in node and not free_form):
        raise RecipeError(f"--set {path}: no field {path!r} in the recipe")
    value = _parse(raw)
    old = node.get(last)
    if old is not None and not free_form and not _compatible(old, value):
        raise RecipeError(
            f"--set {path}={raw}: expected a {type(old).__name__} like {json.dumps(old)}"
        )
    node[last] = value


def _parse(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _compatible(old, new) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    return isinstance(new, type(old)) or new is None


# The recipes themselves are data in training/recipe_book/, one module per family.
for _module in pkgutil.iter_modules(recipe_book.__path__):
    importlib.import_module(f"{recipe_book.__name__}.{_module.name}")
