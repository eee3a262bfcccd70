"""Real accuracy on real digits: `make train-cnn` as on a clean clone with no network and no tfds
files, so the cnn recipe trains in full on its fallback, the bundled 5,000 MNIST digits
(training/samples/mnist5k.npz: the 4,000 / 1,000 digits of ../shared/data/mnist5k), then its
SavedModel, its TFLite int8 variant and its bytes signature on the 1,000 held-out digits."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_module
from training import samples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist5k")
    offline = {"TFDS_DATA_DIR": root / "tfds", "TFDS_MANUAL_DIR": root / "manual"}
    for path in offline.values():
        path.mkdir()
    proc = run_module(
        "tests.training.offline_cli",
        "train",
        "cnn",
        "--logdir",
        root / "runs",
        "--export-dir",
        root / "exports",
        env={name: str(path) for name, path in offline.items()},
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training on sample:mnist5k instead of mnist" in proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cnn_reaches_98_5_percent_on_the_test_split(trained):
    assert trained["validation"]["accuracy"] >= 0.985, trained


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


def test_bytes_signature_classifies_png_files(trained):
    arrays = samples.load("mnist5k")
    images, labels = arrays["test_images"], arrays["test_labels"]
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    serve = tf.saved_model.load(trained["export"]).signatures["predict_image_bytes"]
    classes = np.concatenate(
        [
            serve(image_bytes=tf.constant(pngs[i : i + 250]))["classes"].numpy()
            for i in range(0, len(pngs), 250)
        ]
    )
    assert np.mean(classes == labels) == pytest.approx(trained["validation"]["accuracy"], abs=1e-3)
