"""Transfer learning: start a run from another run's weights (`model.init_from`), matched by layer
name, and freeze what was loaded for the first epochs (`train.freeze`).

`model.init_from` takes
    runs/<recipe>/<time>   a run (its model.keras)
    runs/<recipe>          the newest finished run of a recipe
    model.keras            a Keras 3 model file
    *.h5                   a Keras weights file in the layer-named HDF5 layout, as
                           keras.applications publishes them (`resnet50_weights_tf_dim_ordering_
                           tf_kernels_notop.h5`) and `save_weights` wrote them before Keras 3
    *.weights.h5           a Keras 3 weights file: it names no layers (its groups are numbered by
                           class), so it loads only into the same architecture, whole

Every layer with weights in the new model is then one of: loaded (same name, same shapes),
skipped (same name, other shapes: e.g. a head for other classes), excluded (`model.init_exclude`:
names or name prefixes left new on purpose) or new (no layer of that name in the file). A model
nested in either (a captioner's or a detector's backbone) matches whole by its name, or else layer
by layer: a classifier's run initialises the backbone inside a captioner. The report says which,
and the run keeps it as init_report.json.

One rule goes beyond names and shapes: a convolution saved with a bias, loaded into the zoo's
bias-free convolution that feeds a BatchNormalization (keras.applications' ResNet50 has biases
there, the zoo's does not: they are redundant before a normalization), has its bias folded into
that normalization's moving mean. BN(x + b) with mean m equals BN(x) with mean m - b, in training
(the batch mean absorbs b) and in inference alike, so the outputs are unchanged.

`train.freeze`: "backbone" (every layer loaded from `model.init_from`) or a list of layer names or
prefixes; frozen for `train.freeze_epochs` epochs (0: the whole run), then trained with the rest at
the learning rate times `train.unfreeze_lr_scale` (the schedule restarts: training/optimizers.py).
A frozen BatchNormalization runs in inference mode, Keras' rule for fine-tuning.
"""

import dataclasses
import json
import pathlib

import h5py
import keras
import numpy as np


@dataclasses.dataclass
class InitReport:
    source: str
    loaded: list = dataclasses.field(default_factory=list)
    folded_bias: list = dataclasses.field(default_factory=list)  # conv biases folded into BN
    skipped: dict = dataclasses.field(default_factory=dict)  # name -> why (shapes)
    excluded: list = dataclasses.field(default_factory=list)
    new: list = dataclasses.field(default_factory=list)
    unused: list = dataclasses.field(default_factory=list)  # in the file, not in the model

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} layers loaded"]
        if self.folded_bias:
            parts.append(f"{len(self.folded_bias)} conv biases folded into their BN")
        if self.skipped:
            shown = ", ".join(f"{k} ({v})" for k, v in list(self.skipped.items())[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            parts.append(f"{len(self.skipped)} skipped: {shown}{more}")
        if self.excluded:
            parts.append(f"{len(self.excluded)} excluded: {', '.join(self.excluded[:5])}")
        if self.new:
            parts.append(f"{len(self.new)} new: {', '.join(self.new[:5])}")
        if self.unused:
            parts.append(f"{len(self.unused)} in the file unused")
        return f"init_from {self.source}: " + "; ".join(parts)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


def init_from(model: keras.Model, source, exclude=()) -> InitReport:
    """Load what matches by name from `source` into `model`; ValueError if nothing can be read
    or nothing matches."""
    path = _resolve(source)
    report = InitReport(str(path))
    if path.name.endswith(".weights.h5"):
        try:
            model.load_weights(str(path))
        except Exception as e:  # Keras raises several kinds for a mismatch
            raise ValueError(
                f"model.init_from={source}: a Keras 3 .weights.h5 file loads only into the same "
                f"architecture ({str(e).splitlines()[0]}); give the run's model.keras instead"
            ) from None
        report.loaded = [layer.name for layer in model.layers if layer.weights]
        return report
    saved = _weights_by_layer(path)
    exclude = tuple(exclude or ())
    folds = []
    for layer in _matchable(model, saved, exclude):
        name = layer.name
        if _matches(name, exclude):
            report.excluded.append(name)
        elif name not in saved:
            report.new.append(name)
        else:
            arrays, here = saved[name], [tuple(w.shape) for w in layer.weights]
            there = [tuple(a.shape) for a in arrays]
            if there == here:
                layer.set_weights(arrays)
                report.loaded.append(name)
            elif there[:-1] == here and _feeds_batch_norm(layer) and len(there[-1]) == 1:
                layer.set_weights(arrays[:-1])
                folds.append((layer, arrays[-1]))
                report.loaded.append(name)
            else:
                report.skipped[name] = f"{_shapes(there)} in the file, {_shapes(here)} here"
    for conv, bias in folds:  # after every layer loaded: the BN's own statistics come first
        bn = _feeds_batch_norm(conv)
        weights = bn.get_weights()
        mean = bn.moving_mean
        index = next(i for i, w in enumerate(bn.weights) if w is mean)
        weights[index] = weights[index] - bias
        bn.set_weights(weights)
        report.folded_bias.append(conv.name)
    report.unused = sorted(set(saved) - {layer.name for layer in _all_layers(model)})
    if not report.loaded:
        raise ValueError(
            f"model.init_from={source}: no layer of this model matches one in the file by name "
            f"and shape ({len(saved)} layers there, e.g. {', '.join(sorted(saved)[:3])})"
        )
    return report


def frozen_layers(model: keras.Model, freeze, report: InitReport | None) -> list:
    """The layers `train.freeze` names: "backbone" (what init_from loaded) or names/prefixes."""
    if freeze in (None, "", [], False):
        return []
    if freeze == "backbone":
        if report is None:
            raise ValueError(
                "train.freeze=backbone freezes the layers loaded by model.init_from; set "
                "model.init_from, or name the layers to freeze (train.freeze=[names])"
            )
        names = set(report.loaded)
        return [layer for layer in _all_layers(model) if layer.name in names]
    if isinstance(freeze, str):
        freeze = [freeze]
    if not isinstance(freeze, (list, tuple)):
        raise ValueError(f'train.freeze={freeze!r}: expected "backbone" or a list of layer names')
    layers = [layer for layer in model.layers if layer.weights and _matches(layer.name, freeze)]
    if not layers:
        raise ValueError(f"train.freeze={freeze}: no layer of {model.name} has such a name")
    return layers


def _matchable(model, saved, exclude):
    """The layers with weights that init_from matches by name: a model's own, and for a nested
    model (a captioner's backbone inside its image encoder) whose name neither the file nor
    `exclude` knows, its layers in its place."""
    for layer in model.layers:
        if not layer.weights:
            continue
        nested = isinstance(layer, keras.Model)
        if nested and layer.name not in saved and not _matches(layer.name, exclude):
            yield from _matchable(layer, saved, exclude)
        else:
            yield layer


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _matches(name: str, patterns) -> bool:
    return any(name == p or name.startswith(p) for p in patterns)


def _shapes(shapes) -> str:
    return " ".join("x".join(map(str, s)) or "scalar" for s in shapes)


def _feeds_batch_norm(layer):
    """The BatchNormalization a bias-free Conv feeds directly (its only consumer), or None."""
    if not isinstance(layer, keras.layers.Conv2D) or layer.use_bias:
        return None
    consumers = [node.operation for node in getattr(layer, "_outbound_nodes", [])]
    if len(consumers) == 1 and isinstance(consumers[0], keras.layers.BatchNormalization):
        return consumers[0]
    return None


def _resolve(source) -> pathlib.Path:
    path = pathlib.Path(str(source)).expanduser()
    if path.is_dir():
        if (path / "model.keras").is_file():
            return path / "model.keras"
        finished = sorted(
            p.parent for p in path.glob("*/metrics.json") if (p.parent / "model.keras").is_file()
        )
        if finished:
            return finished[-1] / "model.keras"
        raise ValueError(
            f"model.init_from={source}: a directory without model.keras and without finished "
            "runs (runs/<recipe>/<time>/model.keras)"
        )
    if not path.is_file():
        raise ValueError(
            f"model.init_from={source} does not exist (a run directory, runs/<recipe>, a .keras "
            "file or a .h5 weights file)"
        )
    if path.suffix not in (".keras", ".h5"):
        raise ValueError(f"model.init_from={source}: expected a .keras or .h5 file")
    return path


def _weights_by_layer(path: pathlib.Path) -> dict:
    """{layer name: [arrays in the layer's weight order]} of a .keras model or a layer-named .h5."""
    if path.suffix == ".keras":
        try:
            saved = keras.saving.load_model(str(path), compile=False)
        except Exception as e:
            raise ValueError(f"model.init_from={path}: cannot load it ({e})") from None
        out = {}  # a model's own layers first, then those of the models nested in it
        for layer in [*saved.layers, *_all_layers(saved)]:
            if layer.weights and layer.name not in out:
                out[layer.name] = layer.get_weights()
        return out
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            if "layer_names" not in group.attrs:
                raise ValueError(
                    f"model.init_from={path}: not a layer-named Keras weights file (no "
                    "layer_names); a Keras 3 weights file must end in .weights.h5"
                )
            out = {}
            for raw in group.attrs["layer_names"]:
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                names = group[name].attrs.get("weight_names", [])
                arrays = [np.asarray(group[name][_text(w)]) for w in names]
                if arrays:
                    out[name] = arrays
            return out
    except OSError as e:
        raise ValueError(f"model.init_from={path}: not an HDF5 file ({e})") from None


def _text(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
