"""A trained classifier from a run directory or an export, for the tools that use one (attack,
distillation's teacher): a function from images to probabilities, its class names and image
shape, and the held-out test digits it carries.

    runs/cnn/<time>/        a run: model.keras (Keras 3), export_info.json, calibration.npz
    exports/cnn/<version>/  an export: its `serving_default` signature (float pixels 0..255 ->
                            {"probabilities": ...}), assets.extra/export_info.json, calibration.npz
    runs/cnn, exports/cnn   the newest finished run (with metrics.json) / the highest version

An export is read with `tf.saved_model.load` (gradients flow through its restored functions, so
attacks work on it too); nothing of `serving` is imported. `calibration.npz` holds up to 2,000
examples of the run's validation split (`x_test`, `y_test`): all 1,000 held-out digits of
mnist5k.
"""

import dataclasses
import json
import pathlib

import numpy as np
import tensorflow as tf


class NotAClassifier(ValueError):
    """The path is not a run or an export of a classifier: a one-line reason for the user."""


@dataclasses.dataclass
class Classifier:
    path: pathlib.Path
    kind: str  # "run" | "export"
    name: str  # the run's recipe, or the export's model name
    predict: object  # predict(images float32 [N,H,W,C], 0..255) -> probabilities float32 [N,K]
    class_names: list
    image_shape: tuple
    model: object = None  # the Keras model of a run
    recipe: dict | None = None  # a run's recipe.json

    def test_arrays(self):
        """(x_test, y_test) of the validation split the run or export carries, or None."""
        extra = self.path / "assets.extra" if self.kind == "export" else self.path
        found = extra / "calibration.npz"
        if not found.is_file():
            return None
        with np.load(found) as arrays:
            if "x_test" not in arrays:
                return None
            return arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64)


def resolve(path) -> pathlib.Path:
    """A run or export directory, or a folder of them (the newest finished run, the highest
    export version). Raises NotAClassifier with the reason when it is neither."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise NotAClassifier(f"{path} does not exist (a run directory or an export version)")
    if (path / "model.keras").is_file() or (path / "saved_model.pb").is_file():
        return path
    versions = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    if versions:
        return max(versions, key=lambda p: int(p.name))
    runs = sorted(
        p.parent for p in path.glob("*/metrics.json") if (p.parent / "model.keras").is_file()
    )
    if runs:
        return runs[-1]
    raise NotAClassifier(
        f"{path} is neither a run (model.keras) nor an export (saved_model.pb), and holds no "
        "finished run or export version"
    )


def load(path) -> Classifier:
    """The classifier at `path` (see resolve)."""
    path = resolve(path)
    if (path / "model.keras").is_file():
        return _run(path)
    return _export(path)


def _info(found: pathlib.Path, path) -> dict:
    if not found.is_file():
        raise NotAClassifier(f"{path} has no {found.name}: not a finished run or export")
    info = json.loads(found.read_text())
    if info.get("task") != "classification" or not info.get("class_names"):
        raise NotAClassifier(f"{path} is a {info.get('task')!r} model, not a classifier")
    return info


def _run(path) -> Classifier:
    import keras

    import zoo  # noqa: F401  (registers the zoo's layers for loading)

    info = _info(path / "export_info.json", path)
    recipe_file = path / "recipe.json"
    recipe = json.loads(recipe_file.read_text()) if recipe_file.is_file() else None
    model = keras.saving.load_model(path / "model.keras", compile=False)

    def predict(images):
        return tf.cast(model(images, training=False), tf.float32)

    name = recipe["name"] if recipe else path.parent.name
    return Classifier(
        path, "run", name, predict, info["class_names"], tuple(info["image_shape"]), model, recipe
    )


def _export(path) -> Classifier:
    info = _info(path / "assets.extra" / "export_info.json", path)
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]

    def predict(images):
        return tf.cast(serve(images=images)["probabilities"], tf.float32)

    predict.loaded = loaded  # keeps the restored variables alive with the function
    name = info.get("model") or path.parent.name
    return Classifier(
        path, "export", name, predict, info["class_names"], tuple(info["image_shape"])
    )
