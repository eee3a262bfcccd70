"""The embedded server's pieces without a server: TF error messages, gzip bodies, TensorProto
checks, strict JSON and the Prometheus text (no process, no sockets)."""

import gzip

import numpy as np
import pytest

from serving.server.errors import ServingError, from_exception, op_message
from serving.server.rest import gunzip
from serving.server.tensors import array_from_proto, parse_json_body

GRAPH_ERROR = (
    "Graph execution error:\n\nDetected at node map/while/decode_image/DecodeImage defined at "
    '(most recent call last):\n  File "serve.py", line 7, in <module>\n\n  File "serve.py", line '
    "4, in f\n    image = tf.io.decode_image(x)\n\nUnknown image file format. One of JPEG, PNG, "
    "GIF, BMP required.\n\t [[{{node map/while/decode_image/DecodeImage}}]] "
    "[Op:__inference_signature_wrapper_64]"
)


@pytest.mark.parametrize(
    "text,expected",
    [
        (GRAPH_ERROR, "Unknown image file format. One of JPEG, PNG, GIF, BMP required."),
        (
            "Graph execution error:\n\nDetected at node x defined at (most recent call last):\n"
            "<stack traces unavailable>\nInvalid PNG. Failed to initialize decoder.\n\t "
            "[[{{node x}}]] [Op:__inference_f_1]",
            "Invalid PNG. Failed to initialize decoder.",
        ),
        (
            "{{function_node __wrapped__DecodeImage_device_/job:localhost/replica:0/task:0/device:"
            "CPU:0}} Unknown image file format. [Op:DecodeImage]",
            "Unknown image file format.",
        ),
        (
            "2 root error(s) found.\n  (0) INVALID_ARGUMENT:  bad input\n\t [[{{node a}}]]\n"
            "  (1) INVALID_ARGUMENT:  bad input\n\t [[{{node a}}]]\n0 successful operations.\n"
            "0 derived errors ignored.",
            "bad input",
        ),
        ("Incompatible shapes: [2,3] vs. [4,3] [Op:AddV2]", "Incompatible shapes: [2,3] vs. [4,3]"),
    ],
)
def test_op_message(text, expected):
    assert op_message(text) == expected


def test_tf_errors_keep_their_code_and_lose_the_trace():
    import tensorflow as tf

    err = from_exception(tf.errors.InvalidArgumentError(None, None, GRAPH_ERROR))
    assert err.code == "INVALID_ARGUMENT" and err.http_status == 400
    assert err.message.startswith("Unknown image file format")


def test_gunzip_limits():
    data = b'{"instances": [1, 2, 3]}'
    assert gunzip(gzip.compress(data), 100) == data
    assert gunzip(gzip.compress(data) + gzip.compress(data), 100) == data + data  # two members
    with pytest.raises(ServingError) as info:
        gunzip(gzip.compress(b" " * 10_000), 9_999)
    assert info.value.http_status == 413
    for broken in (b"not gzip", gzip.compress(data)[:-8]):
        with pytest.raises(ServingError) as info:
            gunzip(broken, 100)
        assert info.value.http_status == 400


def _proto(values, shape, dtype=None):
    import tensorflow as tf

    return tf.make_tensor_proto(values, dtype=dtype, shape=shape)


def test_array_from_proto_follows_tf_fill_rules():
    import tensorflow as tf

    full = array_from_proto("x", _proto(np.arange(6, dtype=np.float32), None), 10, 1 << 20)
    assert full.shape == (6,)
    filled = array_from_proto("x", _proto([7.0], [3, 2], tf.float32), 10, 1 << 20)
    assert filled.shape == (3, 2) and (filled == 7).all()
    strings = array_from_proto("s", _proto([b"a"], [4], tf.string), 10, 1 << 20)
    assert strings.tolist() == [b"a"] * 4
    proto = tf.make_tensor_proto(np.zeros(3, np.float32))  # packed as tensor_content
    proto.tensor_shape.dim[0].size = 2
    with pytest.raises(ServingError, match="tensor_content of 12 bytes"):
        array_from_proto("x", proto, 10, 1 << 20)
    proto.ClearField("tensor_content")
    proto.float_val.extend([1.0, 2.0, 3.0])
    with pytest.raises(ServingError, match="has 3 values in float_val"):
        array_from_proto("x", proto, 10, 1 << 20)
    with pytest.raises(ServingError, match="--max-instances=10"):
        array_from_proto("x", _proto([0.0], [11, 2], tf.float32), 10, 1 << 20)
    with pytest.raises(ServingError, match="bytes"):
        array_from_proto("x", _proto([0.0], [1, 1 << 20], tf.float32), 10, 1 << 20)


@pytest.mark.parametrize(
    "body",
    [b'{"x": 1e400}', b'{"x": -1E+999}', b'{"x": [Infinity, 1e400]}', b"\xef\xbb\xbf{}"],
)
def test_json_refused(body):
    with pytest.raises(ServingError):
        doc = parse_json_body(body)
        # Without an Infinity literal the overflow shows when the float tensor is built.
        from serving.server.tensors import TensorSpecInfo, inputs_from_json

        spec = TensorSpecInfo("x", "float", np.float32, "float", None)
        inputs_from_json(_carry(doc, {"inputs": doc["x"]}), {"x": spec})


def _carry(doc, new):
    from serving.server.tensors import JsonDocument

    out = JsonDocument(new)
    out.inf_is_overflow = doc.inf_is_overflow
    return out


def test_json_literals_accepted():
    doc = parse_json_body(b'{"x": [NaN, Infinity, -Infinity, 1e308, 1e-400]}')
    assert np.isnan(doc["x"][0]) and doc["x"][1] == np.inf and doc["x"][4] == 0.0


def test_metrics_text_parses_with_tf_serving_names():
    from prometheus_client.parser import text_string_to_metric_families

    from serving.server.metrics import Metrics

    metrics = Metrics()
    metrics.observe("cnn", "predict", "REST", "OK", 0.002)
    metrics.observe('we"ird\nmodel', "predict", "GRPC", "INVALID_ARGUMENT", 0.5)
    metrics.load_attempt("cnn", "OK")
    metrics.set_available("cnn", 1)
    metrics.batch("cnn", 4)
    text = metrics.render()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    count = families[":tensorflow:serving:request_count"]
    assert count.type == "counter"
    assert {s.labels["model_name"] for s in count.samples} == {"cnn", 'we"ird\nmodel'}
    latency = families[":tensorflow:serving:request_latency"]
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
    assert buckets[0].labels["le"] == "10.0" and buckets[-1].labels["le"] == "+Inf"
    assert families["process_cpu_seconds"].type == "counter"  # prometheus_client's own
    assert ':tensorflow:serving:request_count{model_name="cnn",status="OK"} 1.0' in text


def test_grpc_outputs_round_trip_through_make_ndarray():
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    from serving.server.grpc_api import fill_tensor_proto

    for arr in (
        np.random.default_rng(0).random((3, 10)).astype(np.float32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.float64(3.5).reshape(()),
        np.zeros((0, 4), np.float16),
        np.array([True, False]),
        np.array([b"cat", b"dog"], dtype=object),
        np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    ):
        proto = tensor_pb2.TensorProto()
        fill_tensor_proto(proto, arr)
        back = tf.make_ndarray(proto)
        assert back.dtype == arr.dtype and back.shape == arr.shape
        np.testing.assert_array_equal(back, arr)
