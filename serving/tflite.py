"""`python -m serving tflite <export-dir> [--variants float32,float16,dynamic,int8]`

Converts an export's `serving_default` signature (exports/<model>/<version>, or the newest version
under exports/<model>) into TFLite variants in exports/<model>/tflite/:

- float32: no quantization
- float16: weights stored as float16
- dynamic: dynamic-range quantization (int8 weights, float activations)
- int8:    full-integer quantization, int8 inputs and outputs, calibrated on the representative
           training sample the export carries (assets.extra/calibration.npz)

and writes report.json and report.md: size in bytes, accuracy on the export's test sample next to
the SavedModel's own, agreement with the SavedModel, and mean latency per example through
ai_edge_litert. A variant that does not convert is listed with the converter's reason.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

VARIANTS = ("float32", "float16", "dynamic", "int8")
LATENCY_EXAMPLES = 200


class TFLiteError(Exception):
    """A one-line reason the conversion cannot start."""


def resolve_version(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((p for p in path.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions or not (versions[-1] / "saved_model.pb").is_file():
        raise TFLiteError(f"{path} holds no SavedModel (expected <model>/<version>/saved_model.pb)")
    return versions[-1]


def convert(export_path, variants=VARIANTS) -> pathlib.Path:
    """Write the variants and the report beside the versions; returns report.json's path."""
    import tensorflow as tf

    version_dir = resolve_version(export_path)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise TFLiteError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    out_dir = version_dir.parent / "tflite"
    out_dir.mkdir(exist_ok=True)
    calibration_file = version_dir / "assets.extra" / "calibration.npz"
    sample = dict(np.load(calibration_file)) if calibration_file.is_file() else {}

    saved = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    input_name = next(iter(saved.structured_input_signature[1]))
    reference = (
        _saved_model_outputs(saved, input_name, sample["x_test"]) if "x_test" in sample else None
    )

    rows = []
    for variant in variants:
        row = {"variant": variant}
        try:
            flatbuffer = _convert(tf, version_dir, variant, sample.get("representative"))
        except Exception as e:  # the converter's reason goes in the report
            row["error"] = _first_line(e)
            rows.append(row)
            continue
        path = out_dir / f"{variant}.tflite"
        _write_atomic(path, flatbuffer)
        row.update(file=path.name, size_bytes=len(flatbuffer))
        try:
            row.update(_evaluate(path, sample, reference))
        except Exception as e:  # converted, but does not run (e.g. select TF ops)
            row["error"] = f"does not run in ai_edge_litert: {_first_line(e)}"
        rows.append(row)

    report = {
        "saved_model": str(version_dir),
        "test_examples": int(len(sample["x_test"])) if "x_test" in sample else 0,
        "saved_model_accuracy": _accuracy(reference, sample.get("y_test")),
        "variants": rows,
    }
    _write_atomic(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    _write_atomic(out_dir / "report.md", _markdown(report).encode())
    return out_dir / "report.json"


def _convert(tf, version_dir, variant, representative):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(version_dir), signature_keys=["serving_default"]
    )
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if representative is None:
            raise TFLiteError("int8 needs a representative sample (assets.extra/calibration.npz)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [x[None].astype(np.float32)] for x in representative
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _saved_model_outputs(fn, input_name, x, batch=256):
    import tensorflow as tf

    outputs = []
    for i in range(0, len(x), batch):
        result = fn(**{input_name: tf.constant(x[i : i + batch].astype(np.float32))})
        outputs.append(next(iter(result.values())).numpy())
    return np.concatenate(outputs)


def _evaluate(path, sample, reference) -> dict:
    """Run the variant one example at a time: outputs vs the SavedModel, and latency."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = sample.get("x_test")
    if x is None:  # no sample: time random inputs of the right shape
        x = (
            np.random.default_rng(0)
            .uniform(0, 1, (LATENCY_EXAMPLES, *inp["shape"][1:]))
            .astype(np.float32)
        )
    interpreter.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(example):
        interpreter.set_tensor(inp["index"], _quantize(example[None], inp))
        interpreter.invoke()
        return _dequantize(interpreter.get_tensor(out["index"]), out)[0]

    run(x[0])  # warm-up
    started = time.perf_counter()
    outputs = np.stack([run(example) for example in x])
    seconds = time.perf_counter() - started
    row = {"latency_ms": round(1000 * seconds / len(x), 4)}
    if reference is not None:
        row["max_abs_diff"] = float(np.max(np.abs(outputs - reference)))
        if outputs.ndim == 2:  # class scores
            row["agreement"] = float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))
        row["accuracy"] = _accuracy(outputs, sample.get("y_test"))
    return row


def _quantize(x, detail):
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    if detail["dtype"] == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def _accuracy(outputs, labels):
    if outputs is None or labels is None or outputs.ndim != 2:
        return None
    return float(np.mean(outputs.argmax(-1) == labels))


def _write_atomic(path: pathlib.Path, payload: bytes):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _first_line(e) -> str:
    text = str(e).strip() or type(e).__name__
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines()
    return lines[0][:300]


def _markdown(report) -> str:
    sm = report["saved_model_accuracy"]
    lines = [
        f"# TFLite variants of `{report['saved_model']}`",
        "",
        f"Test sample: {report['test_examples']} examples; SavedModel accuracy: "
        + (f"{sm:.4f}" if sm is not None else "n/a"),
        "",
        "| variant | size (bytes) | accuracy | agreement with SavedModel | max abs diff "
        "| latency (ms/example) |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "n/a"

    for row in report["variants"]:
        if "size_bytes" not in row:
            lines.append(f"| {row['variant']} | failed: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {row['variant']} | {row['size_bytes']:,} | {fmt(row.get('accuracy'), '.4f')} | "
            f"{fmt(row.get('agreement'), '.4f')} | {fmt(row.get('max_abs_diff'), '.4g')} | "
            f"{fmt(row.get('latency_ms'), '.3f')} |"
            + (f" {row['error']}" if "error" in row else "")
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving tflite", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "export_dir", help="exports/<model> (newest version) or exports/<model>/<version>"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    try:
        report = convert(args.export_dir, [v for v in args.variants.split(",") if v])
    except TFLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.with_name("report.md").read_text())
    return 0
