"""The embedded server against real HTTP and gRPC clients: status, metadata, predict, metrics.

Metadata is checked against `saved_model_cli show` and the SavedModel's own signature defs;
predictions against `tf.saved_model.load` on the same inputs.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.serving.conftest import b64, grpc_stubs, http, predict_request

AVAILABLE_V1 = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


def _close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("suffix", ["", "/versions/1", "/labels/stable"])
def test_model_status_rest(server, suffix):
    assert http("GET", f"{server.url}/v1/models/cnn{suffix}") == (200, AVAILABLE_V1)


def test_model_status_grpc(server):
    from tensorflow_serving.apis import get_model_status_pb2

    channel, _, models = grpc_stubs(server.grpc_target)
    with channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "cnn"
        (status,) = models.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0


def _saved_model_cli(version_dir: Path) -> dict:
    """{signature: {"inputs"/"outputs": {key: (dtype, shape, name)}}}: `saved_model_cli show`."""
    cli = Path(sys.executable).with_name("saved_model_cli")
    text = subprocess.run(
        [str(cli), "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    text = text.split("Concrete Functions:")[0]
    out, sig = {}, None
    pattern = re.compile(
        r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\S+)\s+shape: (.+?)\s+name: (\S+)"
    )
    for block in re.split(r"signature_def\['", text)[1:]:
        sig = block.split("'", 1)[0]
        out[sig] = {"inputs": {}, "outputs": {}}
        for kind, key, dtype, shape, name in pattern.findall(block):
            out[sig][kind][key] = (dtype, shape.strip(), name)
    return out


def _shape_text(tensor_shape: dict) -> str:
    if tensor_shape.get("unknown_rank"):
        return "unknown_rank"
    dims = [d["size"] for d in tensor_shape.get("dim", [])]
    return "(" + ", ".join(dims) + ")"


def test_metadata_matches_saved_model_cli(server, cnn_store):
    status, doc = http("GET", f"{server.url}/v1/models/cnn/metadata")
    assert status == 200
    assert doc["model_spec"] == {"name": "cnn", "signature_name": "", "version": "1"}
    served = doc["metadata"]["signature_def"]["signature_def"]
    cli = _saved_model_cli(cnn_store.v1)
    assert set(served) == set(cli) >= {"serving_default", "predict_image_bytes"}
    for sig, expected in cli.items():
        for kind in ("inputs", "outputs"):
            got = {
                key: (info["dtype"], _shape_text(info["tensor_shape"]), info["name"])
                for key, info in served[sig][kind].items()
            }
            assert got == expected[kind], (sig, kind)
    assert served["serving_default"]["method_name"] == "tensorflow/serving/predict"


def test_metadata_grpc_is_the_saved_models_signature_defs(server, cnn_store):
    from tensorflow.python.tools import saved_model_utils
    from tensorflow_serving.apis import get_model_metadata_pb2

    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "cnn"
        response = predict.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "cnn" and response.model_spec.version.value == 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    expected = saved_model_utils.get_meta_graph_def(str(cnn_store.v1), "serve").signature_def
    assert dict(sig_map.signature_def) == dict(expected)


def test_predict_row_format_matches_saved_model(server, cnn_store, reference):
    body = {"instances": cnn_store.images.tolist()}
    status, doc = http("POST", f"{server.url}/v1/models/cnn:predict", body)
    assert status == 200, doc
    _close(doc["predictions"], reference["v1"]["serving_default"]["probabilities"])


def test_predict_columnar_format_with_version_and_label(server, cnn_store, reference):
    expected = reference["v1"]["serving_default"]["probabilities"]
    for path in ("/versions/1", "/labels/stable", ""):
        body = {
            "signature_name": "serving_default",
            "inputs": {"images": cnn_store.images.tolist()},
        }
        status, doc = http("POST", f"{server.url}/v1/models/cnn{path}:predict", body)
        assert status == 200, doc
        _close(doc["outputs"], expected)


def test_predict_image_bytes_b64_row_and_columnar(server, cnn_store, reference):
    expected = reference["v1"]["predict_image_bytes"]
    url = f"{server.url}/v1/models/cnn:predict"
    row = {"signature_name": "predict_image_bytes", "instances": [b64(p) for p in cnn_store.pngs]}
    status, doc = http("POST", url, row)
    assert status == 200, doc
    predictions = doc["predictions"]
    assert len(predictions) == 4 and set(predictions[0]) == {"classes", "labels", "probabilities"}
    assert [p["classes"] for p in predictions] == expected["classes"].tolist()
    assert [p["labels"] for p in predictions] == [s.decode() for s in expected["labels"]]
    _close([p["probabilities"] for p in predictions], expected["probabilities"])

    columnar = {
        "signature_name": "predict_image_bytes",
        "inputs": {"image_bytes": [b64(p) for p in cnn_store.pngs]},
    }
    status, doc = http("POST", url, columnar)
    assert status == 200, doc
    assert doc["outputs"]["classes"] == expected["classes"].tolist()
    assert doc["outputs"]["labels"] == [s.decode() for s in expected["labels"]]
    _close(doc["outputs"]["probabilities"], expected["probabilities"])


def test_grpc_predict_matches_saved_model(server, cnn_store, reference):
    import tensorflow as tf

    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        dense = predict.Predict(
            predict_request("cnn", "serving_default", {"images": cnn_store.images}), timeout=30
        )
        raw = predict.Predict(
            predict_request(
                "cnn",
                "predict_image_bytes",
                {"image_bytes": np.array(cnn_store.pngs, object)},
                label="stable",
            ),
            timeout=30,
        )
        request = predict_request("cnn", "predict_image_bytes", {"image_bytes": cnn_store.pngs})
        request.output_filter.append("classes")
        filtered = predict.Predict(request, timeout=30)
    assert (dense.model_spec.name, dense.model_spec.version.value) == ("cnn", 1)
    assert dense.model_spec.signature_name == "serving_default"
    _close(
        tf.make_ndarray(dense.outputs["probabilities"]),
        reference["v1"]["serving_default"]["probabilities"],
    )
    expected = reference["v1"]["predict_image_bytes"]
    assert set(raw.outputs) == {"classes", "labels", "probabilities"}
    np.testing.assert_array_equal(tf.make_ndarray(raw.outputs["classes"]), expected["classes"])
    np.testing.assert_array_equal(tf.make_ndarray(raw.outputs["labels"]), expected["labels"])
    assert set(filtered.outputs) == {"classes"}


def test_prometheus_metrics_count_requests_per_model_and_status(server, cnn_store):
    url = f"{server.url}/v1/models/cnn:predict"
    assert http("POST", url, {"instances": cnn_store.images[:1].tolist()})[0] == 200
    assert http("POST", url, {"instances": [[1.0]]})[0] == 400
    status, text = http("GET", f"{server.url}/monitoring/prometheus/metrics")
    assert status == 200

    def value(pattern):
        m = re.search(pattern + r" (\d+(?:\.\d+)?)$", text, re.MULTILINE)
        assert m, f"{pattern} missing from:\n{text[:3000]}"
        return float(m[1])

    assert value(r':tensorflow:serving:request_count\{model_name="cnn",status="OK"\}') >= 1
    assert (
        value(r':tensorflow:serving:request_count\{model_name="cnn",status="INVALID_ARGUMENT"\}')
        >= 1
    )
    ok_predict = r'model_name="cnn",API="predict",entrypoint="REST",status="OK"'
    assert value(r":tensorflow:serving:request_latency_count\{" + ok_predict + r"\}") >= 1
    assert value(
        r":tensorflow:serving:request_latency_bucket\{" + ok_predict + r',le="\+Inf"\}'
    ) == value(r":tensorflow:serving:request_latency_count\{" + ok_predict + r"\}")
    assert value(r':tensorflow:serving:model_load_count\{model_name="cnn",status="OK"\}') == 1
