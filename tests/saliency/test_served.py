"""The exports' `explain_image_bytes` signature (zoo/tasks.py), through the embedded server: a real
export of the cnn trained on the digits, served by `python -m serving serve` in its own process
(tests/serving/conftest.py's ServerProcess), answers over REST (row and columnar formats) and gRPC
with the Grad-CAM saliency computes on the Keras model, and the other signatures still answer."""

import numpy as np
import pytest
import tensorflow as tf

import saliency
from tests.serving.conftest import ServerProcess, b64, grpc_stubs, http, predict_request

MODEL = "cnn-classic"  # the recipe the export is named after


@pytest.fixture(scope="module")
def served(trained_cnn, tmp_path_factory):
    log = tmp_path_factory.mktemp("explain-served") / "server.log"
    proc = ServerProcess(trained_cnn.export_dir.parent.parent, log_path=log)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


@pytest.fixture(scope="module")
def digits(trained_cnn, test_digits):
    """Four held-out digits of four classes as PNG files, and the Grad-CAM of the Keras model."""
    images, _ = test_digits
    images = images[[3, 27, 55, 91]]
    pngs = [tf.io.encode_png(tf.cast(image, tf.uint8)).numpy() for image in images]
    expected = saliency.gradcam(saliency.Explainer(trained_cnn.model), images)
    return pngs, expected


def test_the_signature_is_exported_with_its_record(trained_cnn):
    loaded = tf.saved_model.load(str(trained_cnn.export_dir))
    assert set(loaded.signatures) == {
        "serving_default",
        "predict_image_bytes",
        "explain_image_bytes",
    }
    explain = loaded.signatures["explain_image_bytes"]
    assert list(explain.structured_input_signature[1]) == ["image_bytes"]
    outputs = explain.structured_outputs
    assert set(outputs) == {"heatmap", "classes", "labels", "probabilities"}
    assert outputs["heatmap"].shape.as_list() == [None, 28, 28]


def test_explain_image_bytes_over_rest(served, digits):
    pngs, expected = digits
    url = f"{served.url}/v1/models/{MODEL}:predict"
    row = {"signature_name": "explain_image_bytes", "instances": [b64(p) for p in pngs]}
    status, doc = http("POST", url, row)
    assert status == 200, doc
    predictions = doc["predictions"]
    assert set(predictions[0]) == {"heatmap", "classes", "labels", "probabilities"}
    heat = np.array([p["heatmap"] for p in predictions], np.float32)
    assert heat.shape == (4, 28, 28) and heat.min() >= 0 and heat.max() <= 1
    np.testing.assert_allclose(heat, expected.heatmaps.numpy(), atol=1e-4)
    assert [p["classes"] for p in predictions] == expected.classes.numpy().tolist()
    assert [p["labels"] for p in predictions] == [str(c) for c in expected.classes.numpy()]
    np.testing.assert_allclose(
        [p["probabilities"] for p in predictions], expected.probabilities.numpy(), atol=1e-5
    )

    columnar = {
        "signature_name": "explain_image_bytes",
        "inputs": {"image_bytes": [b64(p) for p in pngs]},
    }
    status, doc = http("POST", url, columnar)
    assert status == 200, doc
    np.testing.assert_allclose(doc["outputs"]["heatmap"], expected.heatmaps.numpy(), atol=1e-4)

    bad = {"signature_name": "explain_image_bytes", "instances": [b64(b"not an image")]}
    status, doc = http("POST", url, bad)
    assert status == 400 and "Unknown image file format" in doc["error"], doc


def test_explain_image_bytes_over_grpc_and_the_other_signatures_still_answer(served, digits):
    pngs, expected = digits
    channel, predict, _ = grpc_stubs(served.grpc_target)
    with channel:
        request = predict_request(MODEL, "explain_image_bytes", {"image_bytes": pngs})
        response = predict.Predict(request, timeout=60)
        heat = tf.make_ndarray(response.outputs["heatmap"])
        np.testing.assert_allclose(heat, expected.heatmaps.numpy(), atol=1e-4)
        request = predict_request(MODEL, "predict_image_bytes", {"image_bytes": pngs})
        classes = tf.make_ndarray(predict.Predict(request, timeout=60).outputs["classes"])
    assert classes.tolist() == expected.classes.numpy().tolist()
    status, doc = http("GET", f"{served.url}/v1/models/{MODEL}/metadata")
    assert status == 200
    assert "explain_image_bytes" in doc["metadata"]["signature_def"]["signature_def"]
