"""The TFLite format: an export's `serving_default` signature as TFLite variants, in
out_dir/tflite/ (option `variants`, default all four):

- float32: no quantization
- float16: weights stored as float16
- dynamic: dynamic-range quantization (int8 weights, float activations)
- int8:    full-integer quantization, int8 inputs and outputs, calibrated on the representative
           training sample the export carries (assets.extra/calibration.npz). An export whose
           export_info.json names `tflite_float_layers` (an audio model's `log_mel` front end:
           a power spectrum's range does not survive 8 bits) keeps those layers' ops in float
           and quantizes the rest, with float input and output (selective quantization through
           TFLite's QuantizationDebugger: the converter has no other way to leave ops out);
           the row's `float_layers` says so.

and writes report.json and report.md: size in bytes and gzipped (`gzip_bytes`, gzip level 9: what
a download costs; the zeros of a pruned model only pay once compressed), the scores of the
export's task kind on its test sample next to the SavedModel's own (`saved_model_<score>`:
accuracy; pixel accuracy and mean IoU for segmentation; COCO mAP, mAP@.5 and recall for
detection; evaluation/report.py chooses them by the kind in export_info.json), agreement with
the SavedModel, and mean latency per example through ai_edge_litert. A variant that does not
convert is listed with the converter's reason, and so is each other signature of the export
(string/bytes in: SavedModel and TF Serving only).

calibration.npz holds `representative` and `x_test` (+ `y_test`, or `y_test.<name>` arrays for a
structured truth: a detector's `y_test.boxes` and `y_test.classes`) for a one-input signature, or
`representative.<input>` and `x_test.<input>` per input of a signature with several; arrays are
fed in the signature's own dtypes (token ids stay integers).

As an export format it converts the SavedModel version that the same run wrote under out_dir (a
temporary one when the recipe lists no saved_model).
`python -m serving tflite <export-dir> [--variants float32,float16,dynamic,int8]` (re)converts an
existing export (exports/<model>/<version>, or the newest version under exports/<model>).

The converter's MLIR diagnostics (`error: ...` blocks on stderr, even for a conversion that
succeeds) are captured: a failed variant's reason goes in the report.
"""

import argparse
import gzip
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

import console
from evaluation import report as scoring
from serving.exporters import ExportError, export_format, read_run, saved_model

VARIANTS = ("float32", "float16", "dynamic", "int8")
TITLES = {"mean_iou": "mean IoU", "map": "mAP@[.5:.95]", "map_50": "mAP@.5", "recall": "AR@100"}
LATENCY_EXAMPLES = 200


class TFLiteError(ExportError):
    """A one-line reason the conversion cannot start."""


@export_format("tflite")
def export(run_dir, out_dir, *, variants=VARIANTS, say=print) -> pathlib.Path:
    """Convert the run's newest SavedModel under out_dir (or a temporary one); returns the report's
    path."""
    out_dir = pathlib.Path(out_dir)
    exported = saved_model.versions_of_run(out_dir, run_dir)
    if exported:
        return convert(exported[-1], variants, out_dir / "tflite", say=say)
    read_run(run_dir)  # a finished run, or ExportError
    with tempfile.TemporaryDirectory(prefix="tflite-source-") as tmp:
        version_dir = saved_model.write(run_dir, pathlib.Path(tmp) / "1", out_dir.name)
        return convert(version_dir, variants, out_dir / "tflite", say=say)


def resolve_version(path) -> pathlib.Path:
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((p for p in path.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions or not (versions[-1] / "saved_model.pb").is_file():
        raise TFLiteError(f"{path} holds no SavedModel (expected <model>/<version>/saved_model.pb)")
    return versions[-1]


def convert(export_path, variants=VARIANTS, out_dir=None, say=None) -> pathlib.Path:
    """Write the variants and the report in `out_dir` (default: beside the versions); returns
    report.json's path."""
    import tensorflow as tf

    say = say or (lambda *_: None)
    version_dir = resolve_version(export_path)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise TFLiteError(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    out_dir = pathlib.Path(out_dir) if out_dir is not None else version_dir.parent / "tflite"
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration_file = version_dir / "assets.extra" / "calibration.npz"
    sample = dict(np.load(calibration_file)) if calibration_file.is_file() else {}

    info_file = version_dir / "assets.extra" / "export_info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    kind = info.get("task")
    truth = _truth(sample)

    _register_text_ops()
    loaded = tf.saved_model.load(str(version_dir))  # kept: the signature reads its variables
    saved = loaded.signatures["serving_default"]
    specs = saved.structured_input_signature[1]
    x_test = _arrays(sample, "x_test", specs)
    reference = _saved_model_outputs(saved, specs, x_test) if x_test else None
    scored = {"kind": kind, "truth": truth, "info": info}

    with tempfile.TemporaryDirectory(prefix="serving-default-") as alone:
        _save_alone(tf, saved, alone)
        representative = _arrays(sample, "representative", specs)
        rows = []
        for variant in variants:
            say(f"converting serving_default to TFLite: {variant}")
            rows.append(
                _variant(tf, alone, variant, representative, out_dir, x_test, scored, reference)
            )
    others = [name for name in loaded.signatures if name != "serving_default"]
    if others:
        say(f"checking whether {', '.join(others)} convert to builtin TFLite ops")
    saved_scores = scoring.scores(kind, reference, truth, info) if reference else {}
    report = {
        "saved_model": str(version_dir),
        "task": kind,
        "test_examples": len(next(iter(x_test.values()))) if x_test else 0,
        "scores": list(scoring.score_names(kind)),
        **{f"saved_model_{name}": saved_scores.get(name) for name in scoring.score_names(kind)},
        "variants": rows,
        "other_signatures": _other_signatures(tf, version_dir, others),
    }
    _write_atomic(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    _write_atomic(out_dir / "report.md", _markdown(report).encode())
    return out_dir / "report.json"


def _variant(tf, saved_model_dir, variant, representative, out_dir, x_test, scored, reference):
    """One variant's report row: converted, written, and run against the SavedModel."""
    row = {"variant": variant}
    float_layers = list(scored["info"].get("tflite_float_layers") or [])
    if variant == "int8" and float_layers:
        row["float_layers"] = float_layers
    try:
        flatbuffer = _convert(tf, saved_model_dir, variant, representative, float_layers)
    except Exception as e:  # the converter's reason goes in the report
        row["error"] = _first_line(e)
        return row
    path = out_dir / f"{variant}.tflite"
    _write_atomic(path, flatbuffer)
    row.update(file=path.name, size_bytes=len(flatbuffer), gzip_bytes=gzip_size(flatbuffer))
    try:
        row.update(_evaluate(path, x_test, scored, reference))
    except Exception as e:  # converted, but does not run (e.g. select TF ops)
        row["error"] = f"does not run in ai_edge_litert: {_first_line(e)}"
    return row


def gzip_size(payload: bytes) -> int:
    """Bytes of `payload` gzipped at level 9."""
    return len(gzip.compress(payload, compresslevel=9))


def _register_text_ops():
    """Text exports tokenize with tensorflow_text's ops: they must be registered to load one."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def _save_alone(tf, signature, directory):
    """Re-save one signature function (and the variables it reads) as a SavedModel of its own.
    The converter runs a SavedModel's initializers whatever signature it converts, so the lookup
    tables of another signature (a tokenizer in a text-in signature) would otherwise fail it."""
    module = tf.Module()
    module.kept_variables = list(signature.variables)
    tf.saved_model.save(module, directory, signatures={"serving_default": signature})


def _convert(tf, version_dir, variant, representative, float_layers=()):
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
        names = list(representative)
        count = len(representative[names[0]])
        converter.representative_dataset = lambda: (
            {name: representative[name][i : i + 1] for name in names} for i in range(count)
        )
        if float_layers:
            return _int8_except(tf, converter, representative, float_layers)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _converter_diagnostics_dropped():
        return converter.convert()


def _int8_except(tf, converter, representative, float_layers):
    """Full-integer quantization of every op but those of `float_layers` (matched by the layer
    name in the op's output tensor name), float input and output."""
    from ai_edge_litert.interpreter import Interpreter

    names = list(representative)
    count = min(len(representative[names[0]]), 64)
    with _converter_diagnostics_dropped():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: (
                [representative[n][i : i + 1] for n in names] for i in range(count)
            ),
        )
    tensors = Interpreter(model_content=debugger.calibrated_model).get_tensor_details()
    keep = [t["name"] for t in tensors if any(f"/{layer}" in t["name"] for layer in float_layers)]
    if not keep:
        raise TFLiteError(f"no ops of the layers {', '.join(float_layers)} to keep in float")
    with _converter_diagnostics_dropped():
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep)
        return debugger.get_nondebug_quantized_model()


def _converter_diagnostics_dropped():
    """The converter's C++ side prints MLIR diagnostics on descriptor 2 (`error: ...` blocks,
    even when conversion succeeds); a failure's exception carries them, so they are dropped."""
    return console.quiet(drop=lambda line: True)


def _arrays(sample, prefix, specs) -> dict | None:
    """{input name: array} of the sample arrays for the signature's inputs, in their dtypes."""
    names = list(specs)
    if len(names) == 1 and prefix in sample:
        found = {names[0]: sample[prefix]}
    elif all(f"{prefix}.{name}" in sample for name in names):
        found = {name: sample[f"{prefix}.{name}"] for name in names}
    else:
        return None
    return {name: x.astype(specs[name].dtype.as_numpy_dtype) for name, x in found.items()}


def _truth(sample):
    """The test sample's truth: `y_test`, or {name: array} of its `y_test.<name>` arrays."""
    if "y_test" in sample:
        return sample["y_test"]
    parts = {k.split(".", 1)[1]: v for k, v in sample.items() if k.startswith("y_test.")}
    return parts or None


def _saved_model_outputs(fn, specs, xs, batch=256) -> dict:
    import tensorflow as tf

    outputs = []
    for i in range(0, len(next(iter(xs.values()))), batch):
        result = fn(**{name: tf.constant(x[i : i + batch]) for name, x in xs.items()})
        outputs.append({name: value.numpy() for name, value in result.items()})
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}


def _evaluate(path, xs, scored, reference) -> dict:
    """Run the variant one example at a time: outputs vs the SavedModel, and latency."""
    from ai_edge_litert.interpreter import Interpreter

    with console.quiet():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    inputs, outputs_detail = runner.get_input_details(), runner.get_output_details()
    if xs is None:  # no sample: time random inputs of the right shape
        rng = np.random.default_rng(0)
        xs = {
            name: rng.uniform(0, 1, (LATENCY_EXAMPLES, *detail["shape"][1:])).astype(np.float32)
            if detail["dtype"] == np.float32
            else np.zeros((LATENCY_EXAMPLES, *detail["shape"][1:]), detail["dtype"])
            for name, detail in inputs.items()
        }
    count = len(next(iter(xs.values())))

    def run(i):
        feeds = {name: _quantize(x[i : i + 1], inputs[name]) for name, x in xs.items()}
        result = runner(**feeds)
        return {name: _dequantize(y, outputs_detail[name])[0] for name, y in result.items()}

    run(0)  # warm-up
    started = time.perf_counter()
    results = [run(i) for i in range(count)]
    seconds = time.perf_counter() - started
    row = {"latency_ms": round(1000 * seconds / count, 4)}
    if reference is not None:
        outputs = {name: np.stack([r[name] for r in results]) for name in results[0]}
        kind = scored["kind"]
        row.update(scoring.comparison(kind, outputs, reference))
        found = scoring.scores(kind, outputs, scored["truth"], scored["info"])
        row.update({name: value for name, value in found.items() if value is not None})
    return row


def _quantize(x, detail):
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or not scale:  # float, or integers that are not quantized
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y, detail):
    """A quantized output as float32; one that is not, as float32 or as its integers (classes,
    counts)."""
    scale, zero_point = detail["quantization"]
    if not scale:
        return y if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def _write_atomic(path: pathlib.Path, payload: bytes):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _first_line(e) -> str:
    """The converter's reason in one line: the TensorFlow ops TFLite lacks when it names them,
    else the first error without its MLIR location."""
    text = str(e).strip() or type(e).__name__
    for line in text.splitlines():
        if line.startswith("TF Select ops:"):
            return "needs TensorFlow ops TFLite lacks: " + line.split(":", 1)[1].strip()[:400]
    lines = [line for line in text.splitlines() if "error" in line.lower()] or text.splitlines()
    line = lines[0]
    if "error: loc(" in line:  # "<unknown>:0: error: loc(callsite(...)): 'tf.Op' op ..."
        line = line.rsplit("): ", 1)[-1]
    return line[:300]


def _other_signatures(tf, version_dir, names) -> list[dict]:
    """Whether each signature besides serving_default converts to builtin TFLite ops (nothing is
    kept: they take strings or bytes, for SavedModel / TF Serving), with the converter's reason."""
    rows = []
    for name in names:
        try:
            converter = tf.lite.TFLiteConverter.from_saved_model(
                str(version_dir), signature_keys=[name]
            )
            with _converter_diagnostics_dropped():
                converter.convert()
            rows.append({"signature": name, "converts": True})
        except Exception as e:  # the converter's reason goes in the report
            rows.append({"signature": name, "converts": False, "reason": _first_line(e)})
    return rows


def _markdown(report) -> str:
    names = report.get("scores", ["accuracy"])
    titles = [TITLES.get(name, name) for name in names]

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "n/a"

    saved = ", ".join(
        f"{title}: {fmt(report.get(f'saved_model_{name}'), '.4f')}"
        for name, title in zip(names, titles)
    )
    lines = [
        f"# TFLite variants of `{report['saved_model']}`",
        "",
        f"Test sample: {report['test_examples']} examples; SavedModel {saved}",
        "",
        "| variant | size (bytes) | gzipped (bytes) | "
        + "".join(f"{title} | " for title in titles)
        + "agreement with SavedModel | max abs diff | latency (ms/example) |",
        "|---|---:|---:|" + "---:|" * len(names) + "---:|---:|---:|",
    ]
    for row in report["variants"]:
        variant = row["variant"]
        if row.get("float_layers"):
            variant += f" ({', '.join(row['float_layers'])} in float)"
        if "size_bytes" not in row:
            lines.append(f"| {variant} | failed: {row['error']} |" + " |" * (4 + len(names)))
            continue
        lines.append(
            f"| {variant} | {row['size_bytes']:,} | {row['gzip_bytes']:,} | "
            + "".join(f"{fmt(row.get(name), '.4f')} | " for name in names)
            + f"{fmt(row.get('agreement'), '.4f')} | {fmt(row.get('max_abs_diff'), '.4g')} | "
            f"{fmt(row.get('latency_ms'), '.3f')} |"
            + (f" {row['error']}" if "error" in row else "")
        )
    if report.get("other_signatures"):
        lines += ["", "Other signatures (SavedModel / TF Serving only):", ""]
        lines += ["| signature | builtin TFLite ops |", "|---|---|"]
        for row in report["other_signatures"]:
            verdict = "convert" if row["converts"] else f"do not convert: {row['reason']}"
            lines.append(f"| {row['signature']} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving tflite",
        description="(re)convert an export to TFLite variants with a size/accuracy report",
    )
    parser.add_argument(
        "export_dir", help="exports/<model> (newest version) or exports/<model>/<version>"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    try:
        report = convert(args.export_dir, [v for v in args.variants.split(",") if v], say=_say)
    except TFLiteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.with_name("report.md").read_text())
    return 0


def _say(*parts):
    print(*parts, flush=True)
