"""Real accuracy on real digits (../shared/data/mnist5k, 4,000 train / 1,000 test PNGs): the cnn
recipe as users run it, its SavedModel, its TFLite int8 variant and its bytes signature."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_module


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist5k")
    proc = run_module(
        "training",
        "train",
        "cnn",
        "--dataset",
        f"folder:{shared_data / 'mnist5k'}",
        "--logdir",
        root / "runs",
        "--export-dir",
        root / "exports",
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cnn_reaches_97_percent_on_the_test_split(trained):
    assert trained["validation"]["accuracy"] >= 0.97, trained


def test_tflite_report_int8_within_one_point_of_the_saved_model(trained):
    report = json.loads(
        (pathlib.Path(trained["export"]).parent / "tflite" / "report.json").read_text()
    )
    assert report["test_examples"] == 1000
    assert report["saved_model_accuracy"] == pytest.approx(
        trained["validation"]["accuracy"], abs=1e-3
    )
    rows = {row["variant"]: row for row in report["variants"]}
    assert rows["float32"]["accuracy"] == pytest.approx(report["saved_model_accuracy"], abs=1e-3)
    assert rows["int8"]["accuracy"] >= report["saved_model_accuracy"] - 0.01
    assert rows["int8"]["size_bytes"] < 0.4 * rows["float32"]["size_bytes"]


def test_bytes_signature_classifies_the_png_files(trained, shared_data):
    files = sorted((shared_data / "mnist5k" / "test").glob("*/*.png"))
    labels = np.array([int(f.parent.name) for f in files])
    serve = tf.saved_model.load(trained["export"]).signatures["predict_image_bytes"]
    classes = np.concatenate(
        [
            serve(image_bytes=tf.constant([f.read_bytes() for f in files[i : i + 250]]))[
                "classes"
            ].numpy()
            for i in range(0, len(files), 250)
        ]
    )
    assert np.mean(classes == labels) == pytest.approx(trained["validation"]["accuracy"], abs=1e-3)
