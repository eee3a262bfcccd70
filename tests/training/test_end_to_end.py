"""The cnn recipe end to end on tfds mock data: TensorBoard events, recipe.json, checkpoints,
the SavedModel export with both signatures, and the TFLite variants with their report."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import train_and_export
from training import data, recipes


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    recipe = recipes.resolve(
        "cnn",
        [
            "run.tiny=true",
            "train.epochs=2",
            "train.batch_size=16",
            "train.log_every=2",
            "train.checkpoint_every=3",
        ],
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(data, "network_available", lambda: True)  # mock_data stands in for the download
    with tfds.testing.mock_data(num_examples=64):
        result = train_and_export(recipe, root)
    patch.undo()
    return result


def events(directory):
    acc = EventAccumulator(
        str(directory), size_guidance={"tensors": 0, "images": 0, "histograms": 0}
    )
    acc.Reload()
    return acc


def test_run_directory_has_recipe_checkpoints_and_model(mock_run):
    run_dir = mock_run.run_dir
    assert mock_run.steps == 8  # 64 examples / 16 per batch * 2 epochs
    saved = json.loads((run_dir / "recipe.json").read_text())
    assert saved["model"]["name"] == "cnn" and saved["train"]["batch_size"] == 16
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-8")
    assert (run_dir / "model.keras").is_file()


def test_tensorboard_events_hold_every_promised_tag(mock_run):
    train = events(mock_run.run_dir / "train")
    tags = set(train.Tags()["tensors"])
    for tag in [
        "batch_loss",
        "batch_accuracy",
        "learning_rate",
        "examples_per_second",
        "epoch_loss",
        "epoch_accuracy",
    ]:
        assert tag in tags, tag
    steps = [e.step for e in train.Tensors("batch_loss")]
    assert steps == [2, 4, 6, 8]
    assert all(tf.make_ndarray(e.tensor_proto) > 0 for e in train.Tensors("examples_per_second"))
    assert any(t.startswith("cnn/") or "kernel" in t for t in tags), "weight histograms missing"

    validation = events(mock_run.run_dir / "validation")
    assert {"epoch_loss", "epoch_accuracy", "predictions", "heatmaps", "confusion_matrix"} <= set(
        validation.Tags()["tensors"]
    )
    picture = validation.Tensors("confusion_matrix")[-1]
    png = tf.make_ndarray(picture.tensor_proto)[2]  # [width, height, png bytes]
    assert tf.io.decode_png(png).shape[-1] == 3

    root = events(mock_run.run_dir)
    assert "_hparams_/session_start_info" in root.Tags()["tensors"]


def test_export_has_both_signatures_and_agrees_with_the_model(mock_run):
    version_dir = mock_run.export_dir
    assert version_dir.name == "1" and (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    loaded = tf.saved_model.load(str(version_dir))
    assert {"serving_default", "predict_image_bytes", "explain_image_bytes"} <= set(
        loaded.signatures
    )

    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)
    served = loaded.signatures["serving_default"](images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(served, mock_run.model(x).numpy(), rtol=1e-5, atol=1e-6)

    pngs = tf.constant([tf.io.encode_png(tf.cast(image, tf.uint8)).numpy() for image in x.round()])
    by_bytes = loaded.signatures["predict_image_bytes"](image_bytes=pngs)
    np.testing.assert_allclose(
        by_bytes["probabilities"].numpy(), mock_run.model(x.round()).numpy(), atol=1e-5
    )
    assert by_bytes["labels"].numpy().tolist() == [
        str(c).encode() for c in by_bytes["classes"].numpy()
    ]


def test_tflite_variants_and_report(mock_run):
    out = mock_run.export_dir.parent / "tflite"
    report = json.loads((out / "report.json").read_text())
    rows = {row["variant"]: row for row in report["variants"]}
    assert set(rows) == {"float32", "float16", "dynamic", "int8"}
    for variant, row in rows.items():
        assert "error" not in row, row
        assert (out / f"{variant}.tflite").stat().st_size == row["size_bytes"]
        assert row["latency_ms"] > 0
    assert rows["float32"]["agreement"] == 1.0
    assert rows["float16"]["size_bytes"] < rows["float32"]["size_bytes"]
    assert "| int8 |" in (out / "report.md").read_text()
