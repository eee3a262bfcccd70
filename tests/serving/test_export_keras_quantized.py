"""The keras_quantized format: Keras 3's `model.quantize` (int8, float8) of a run's model, saved as
.keras files that load and give the outputs measured in the report."""

import json

import keras
import numpy as np
import pytest

from serving import exporters


def test_int8_and_float8_keras_models_with_their_accuracy(tiny_cnn_run, tmp_path):
    written = exporters.export_run(
        tiny_cnn_run.run_dir, tmp_path, ["keras_quantized"], say=lambda *_: None
    )
    out = tmp_path / "cnn" / "keras_quantized"
    assert written == {"keras_quantized": str(out / "report.json")}
    report = json.loads((out / "report.json").read_text())
    assert report["test_examples"] > 0 and report["accuracy"] is not None
    rows = {row["mode"]: row for row in report["modes"]}
    assert set(rows) == {"int8", "float8"}
    sample = np.load(tiny_cnn_run.run_dir / "calibration.npz")
    float_model = keras.saving.load_model(tiny_cnn_run.run_dir / "model.keras", compile=False)
    reference = np.asarray(float_model(sample["x_test"], training=False))
    for mode, row in rows.items():
        assert "error" not in row, row
        assert row["quantized_layers"] == ["predictions"]  # Keras quantizes Dense, not Conv2D
        model = keras.saving.load_model(out / row["file"], compile=False)
        assert model.get_layer("predictions").quantization_mode == mode
        assert model.get_layer("conv1_1").quantization_mode is None
        outputs = np.asarray(model(sample["x_test"], training=False))
        # the saved file gives the report's figures: quantized, close to the float model
        assert row["accuracy"] == pytest.approx(np.mean(outputs.argmax(-1) == sample["y_test"]))
        assert row["max_abs_diff"] == pytest.approx(np.max(np.abs(outputs - reference)), abs=1e-5)
        assert row["max_abs_diff"] > 0
        assert row["agreement"] > 0.9, row
    assert (out / "int8.keras").stat().st_size < report["size_bytes"]  # int8 kernel
    assert "| int8 | predictions |" in (out / "report.md").read_text()
