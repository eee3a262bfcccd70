"""The keras_quantized format: Keras 3's own `model.quantize(mode)` of the run's model, as .keras
files in out_dir/keras_quantized/ (option `modes`, default int8 and float8), with a report.

Keras quantizes the layers that have a `quantize` method (Dense, EinsumDense, Embedding; not
convolutions): int8 stores their kernels as int8 with a scale per output unit and quantizes their
inputs on the fly; float8 computes them in float8 (e4m3 forward, e5m2 gradients) with scales.
Each `<mode>.keras` loads with `keras.saving.load_model` (import zoo first), and
`model.export(..., format="tf_saved_model")` of it writes a SavedModel; the TFLite converter
takes neither (int8 matmuls, float8 types): TFLite's quantization is the tflite format's.

report.json and report.md: per mode, the layers it quantized, the file's size next to the float
model's, and accuracy on the export's test sample (calibration.npz) next to the float model's,
with agreement and the largest output difference.
"""

import json
import os
import pathlib
import tempfile
import warnings

import numpy as np

from serving.exporters import ExportError, export_format, read_run

MODES = ("int8", "float8")


@export_format("keras_quantized")
def export(run_dir, out_dir, *, modes=MODES, say=print) -> pathlib.Path:
    """Quantize the run's model.keras in each mode; returns the report's path."""
    import keras

    import zoo  # noqa: F401  (registers the zoo's custom layers for loading)

    run_dir = pathlib.Path(run_dir)
    read_run(run_dir)  # a finished run, or ExportError
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ExportError(f"unknown keras_quantized mode(s) {', '.join(unknown)} (known: {MODES})")
    out = pathlib.Path(out_dir) / "keras_quantized"
    out.mkdir(parents=True, exist_ok=True)
    source = run_dir / "model.keras"
    sample = run_dir / "calibration.npz"
    arrays = dict(np.load(sample)) if sample.is_file() else {}
    x, labels = arrays.get("x_test"), arrays.get("y_test")

    def load():
        return keras.saving.load_model(source, compile=False)

    reference = _outputs(load(), x)
    report = {
        "model": str(source),
        "size_bytes": source.stat().st_size,
        "test_examples": 0 if x is None else len(x),
        "accuracy": _accuracy(reference, labels),
        "modes": [],
    }
    for mode in modes:
        say(f"quantizing the Keras model: {mode}")
        model = load()
        row = {"mode": mode}
        try:
            with warnings.catch_warnings():  # "Layer Conv2D does not have a `quantize` method"
                warnings.simplefilter("ignore")
                model.quantize(mode)
        except Exception as e:  # Keras' reason goes in the report
            row["error"] = str(e).splitlines()[0][:300]
            report["modes"].append(row)
            continue
        row["quantized_layers"] = [
            layer.name for layer in _layers(model) if getattr(layer, "quantization_mode", None)
        ]
        path = out / f"{mode}.keras"
        _save_atomic(model, path)
        row.update(file=path.name, size_bytes=path.stat().st_size)
        outputs = _outputs(model, x)
        if outputs is not None:
            row["accuracy"] = _accuracy(outputs, labels)
            row["agreement"] = _agreement(outputs, reference)
            row["max_abs_diff"] = float(np.max(np.abs(outputs - reference)))
        report["modes"].append(row)
    _write(out / "report.json", json.dumps(report, indent=2) + "\n")
    _write(out / "report.md", _markdown(report))
    return out / "report.json"


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _layers(layer)
        else:
            yield layer


def _outputs(model, x, batch=256):
    if x is None:
        return None
    outputs = [np.asarray(model(x[i : i + batch], training=False)) for i in range(0, len(x), batch)]
    return np.concatenate(outputs)


def _accuracy(outputs, labels):
    if outputs is None or labels is None or outputs.ndim != 2:
        return None
    return float(np.mean(outputs.argmax(-1) == labels))


def _agreement(outputs, reference):
    if outputs.ndim != 2:
        return None
    return float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))


def _save_atomic(model, path: pathlib.Path):
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = pathlib.Path(tmp) / path.name
        model.save(staged)
        os.replace(staged, path)


def _write(path: pathlib.Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _markdown(report) -> str:
    def fmt(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "n/a"

    lines = [
        f"# Keras `model.quantize` of `{report['model']}`",
        "",
        f"Float model: {report['size_bytes']:,} bytes; test sample: {report['test_examples']} "
        f"examples, accuracy {fmt(report['accuracy'], '.4f')}",
        "",
        "| mode | quantized layers | size (bytes) | accuracy | agreement with float "
        "| max abs diff |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in report["modes"]:
        if "error" in row:
            lines.append(f"| {row['mode']} | failed: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {row['mode']} | {', '.join(row['quantized_layers']) or 'none'} "
            f"| {row['size_bytes']:,} | {fmt(row.get('accuracy'), '.4f')} "
            f"| {fmt(row.get('agreement'), '.4f')} | {fmt(row.get('max_abs_diff'), '.4g')} |"
        )
    return "\n".join(lines) + "\n"
