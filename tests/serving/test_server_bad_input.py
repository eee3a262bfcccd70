"""Bad input never takes the embedded server down: each malformed request gets TF Serving's error
code, and the server answers a good request right after it.

REST: 45 distinct malformed requests (JSON, dtype, shape, b64, signature, routing, size), then raw
sockets for what urllib cannot send (bad headers, slow, dropped and idle connections). gRPC: the
same families through the tensorflow-serving-api stubs.
"""

import base64
import json
import socket
import threading
import time

import numpy as np
import pytest

from tests.serving.conftest import b64, grpc_stubs, http, predict_request

IMG = np.zeros((28, 28, 1), np.float32).tolist()
PNG_SIG = "predict_image_bytes"
PREDICT = "/v1/models/cnn:predict"


def _raw(body: str) -> bytes:
    return body.encode()


# (method, path, body, expected HTTP status, substring of the error message)
REST_CASES = [
    ("POST", PREDICT, b"", 400, "document is empty"),
    ("POST", PREDICT, b"   \n", 400, "document is empty"),
    ("POST", PREDICT, b"{", 400, "JSON Parse error"),
    ("POST", PREDICT, b'{"instances": [1, 2,]}', 400, "JSON Parse error"),
    ("POST", PREDICT, b"[1, 2]", 400, "Is not object"),
    ("POST", PREDICT, b'"instances"', 400, "Is not object"),
    ("POST", PREDICT, b'{"instances": "\xff\xfe"}', 400, "JSON Parse error"),
    ("POST", PREDICT, b"[" * 200_000 + b"]" * 200_000, 400, "JSON Parse error"),
    ("POST", PREDICT, {}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", PREDICT, {"instances": [IMG], "inputs": [IMG]}, 400, "only one of"),
    ("POST", PREDICT, {"instances": 5}, 400, "list/array"),
    ("POST", PREDICT, {"instances": []}, 400, "No values"),
    ("POST", PREDICT, {"signature_name": 7, "instances": [IMG]}, 400, "must be a string"),
    ("POST", PREDICT, {"signature_name": "nope", "instances": [IMG]}, 400, '"nope" not found'),
    ("POST", PREDICT, {"instances": [[["a"] * 1] * 28] * 1}, 400, "not of expected type: float"),
    ("POST", PREDICT, {"instances": [[[[True]] * 28] * 28]}, 400, "not of expected type"),
    ("POST", PREDICT, {"instances": [[[[None]] * 28] * 28]}, 400, "not of expected type"),
    ("POST", PREDICT, {"instances": [[[[1e40]] * 28] * 28]}, 400, "loss of precision"),
    ("POST", PREDICT, {"instances": [[[1.0, 2.0], [3.0]]]}, 400, "unexpected size"),
    ("POST", PREDICT, {"instances": [[1.0, 2.0]]}, 400, "expects [-1,28,28,1]"),
    ("POST", PREDICT, {"instances": [[[[[0.0]]] * 28] * 28]}, 400, "expects [-1,28,28,1]"),
    ("POST", PREDICT, {"instances": [IMG, [[0.0] * 28] * 28]}, 400, "incorrect level"),
    ("POST", PREDICT, {"instances": [[[0.0], [[0.0]]]]}, 400, "unexpected level"),
    ("POST", PREDICT, {"instances": [{"b64": "AAAA"}]}, 400, "not of expected type: float"),
    ("POST", PREDICT, {"instances": [{"wrong": IMG}]}, 400, "keys must be equal to: images"),
    ("POST", PREDICT, {"instances": [{"images": IMG}, IMG]}, 400, "Expecting object but got list"),
    ("POST", PREDICT, {"instances": [IMG, {"images": IMG}]}, 400, "Expecting value/list"),
    ("POST", PREDICT, {"inputs": {"images": [IMG], "extra": [1]}}, 400, "extra"),
    ("POST", PREDICT, {"inputs": {"other": [IMG]}}, 400, "Missing named input: images"),
    ("POST", PREDICT, {"inputs": "not a tensor"}, 400, "not of expected type: float"),
    (
        "POST",
        PREDICT,
        {"signature_name": PNG_SIG, "instances": [{"b64": "!!not base64!!"}]},
        400,
        "Unable to base64 decode",
    ),
    (
        "POST",
        PREDICT,
        {"signature_name": PNG_SIG, "instances": [b64(b"not an image at all")]},
        400,
        "",
    ),
    ("POST", PREDICT, {"signature_name": PNG_SIG, "instances": ["plain text"]}, 400, ""),
    (
        "POST",
        PREDICT,
        {"signature_name": PNG_SIG, "instances": [{"b64": "AAAA", "extra": 1}]},
        400,
        "keys must be equal to: image_bytes",
    ),
    ("POST", PREDICT, {"signature_name": PNG_SIG, "instances": [1.5]}, 400, "expected type"),
    ("POST", "/v1/models/nope:predict", {"instances": [IMG]}, 404, "Servable not found"),
    ("POST", "/v1/models/cnn/versions/9:predict", {"instances": [IMG]}, 404, "Specific(cnn, 9)"),
    ("POST", "/v1/models/cnn/labels/nope:predict", {"instances": [IMG]}, 400, "Unrecognized"),
    ("POST", "/v1/models/cnn/versions/abc:predict", {"instances": [IMG]}, 400, "Malformed"),
    ("POST", "/v1/models/cnn/versions/" + "9" * 30 + ":predict", {}, 400, "Failed to convert"),
    ("POST", "/v1/models/cnn:explode", {"instances": [IMG]}, 400, "Malformed request"),
    ("POST", "/v1/models/cnn:classify", {"examples": [{"x": 1}]}, 501, "not supported"),
    ("GET", PREDICT, None, 400, "Malformed request"),
    ("POST", "/v1/models/cnn", {"instances": [IMG]}, 400, "Malformed request"),
    ("DELETE", "/v1/models/cnn", None, 400, "Malformed request"),
    ("GET", "/v1/models", None, 400, "Missing model name"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found"),
    ("GET", "/v1/models/cnn/versions/7", None, 404, "Could not find version 7"),
    ("GET", "/v1/models/cnn/labels/nope/metadata", None, 400, "Unrecognized servable version"),
    ("GET", "/index.html", None, 404, "Not found"),
    ("POST", PREDICT, b"{" + b" " * (9 << 20) + b"}", 413, "exceeds the limit"),
]


def _alive(server):
    status, doc = http("GET", f"{server.url}/v1/models/cnn", timeout=30)
    assert status == 200 and doc["model_version_status"][0]["state"] == "AVAILABLE"


def test_suite_has_at_least_30_distinct_requests():
    distinct = {
        (m, p, json.dumps(b) if not isinstance(b, bytes) else b) for m, p, b, *_ in REST_CASES
    }
    assert len(distinct) == len(REST_CASES) >= 30


@pytest.mark.parametrize(
    "method,path,body,status,message", REST_CASES, ids=[str(i) for i in range(len(REST_CASES))]
)
def test_rest_bad_request(server, method, path, body, status, message):
    got_status, doc = http(method, server.url + path, body)
    assert got_status == status, doc
    assert isinstance(doc, dict) and set(doc) == {"error"}, doc
    assert message in doc["error"]
    _alive(server)


# ---- raw sockets: headers urllib will not send, slow and dropped clients ----------------------


def _exchange(server, payload: bytes, timeout=20) -> bytes:
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "payload,status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /v1/models/cnn HTTP/9.9\r\n\r\n", 505),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /v1/models/cnn HTTP/1.1\r\n" + b"X-H: 1\r\n" * 150 + b"\r\n", 431),
        (b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
        (b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"POST /v1/models/cnn:predict HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"POST /v1/models/cnn:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (b"BREW /v1/models/cnn HTTP/1.1\r\n\r\n", 501),
    ],
    ids=[
        "garbage",
        "http-version",
        "long-uri",
        "many-headers",
        "bad-length",
        "negative-length",
        "huge-length",
        "gzip",
        "bad-chunk",
        "unknown-method",
    ],
)
def test_raw_bad_request(server, payload, status):
    response = _exchange(server, payload)
    assert _status(response) == status, response[:300]
    _alive(server)


def test_chunked_body_is_accepted(server):
    body = json.dumps({"instances": [IMG]}).encode()
    chunks = b"".join(
        f"{len(body[i : i + 1000]):x}\r\n".encode() + body[i : i + 1000] + b"\r\n"
        for i in range(0, len(body), 1000)
    )
    request = (
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    response = _exchange(server, request)
    assert _status(response) == 200, response[:300]
    assert len(json.loads(response.partition(b"\r\n\r\n")[2])["predictions"]) == 1


def test_dropped_connections_mid_request(server):
    for payload in (
        b'POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{"inst',
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Le",
        b"GET /v1/models/cnn HT",
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
    ):
        sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
        sock.sendall(payload)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST: the client is gone
    _alive(server)


def test_slow_and_idle_clients_do_not_block_others(server):
    """Idle sockets and a client trickling its body: others are served meanwhile, the slow
    ones are cut off (server started with --rest-timeout-seconds 3)."""
    idle = [
        socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) for _ in range(40)
    ]
    for sock in idle[:20]:
        sock.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Len")  # partial headers
    trickle = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
    trickle.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
    result = {}

    def drip():
        started = time.monotonic()
        try:
            for _ in range(40):
                trickle.sendall(b" ")
                time.sleep(0.5)
        except OSError:
            pass
        result["cut_after"] = time.monotonic() - started

    dripper = threading.Thread(target=drip)
    dripper.start()
    started = time.monotonic()
    _alive(server)
    status, doc = http("POST", server.url + PREDICT, {"instances": [IMG]})
    assert status == 200, doc
    assert time.monotonic() - started < 10
    dripper.join(timeout=60)
    assert result["cut_after"] < 19, "a body trickled for 20 s was not cut off"
    # Idle sockets are closed by the server once the timeout passes.
    deadline = time.monotonic() + 15
    for sock in idle:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            pytest.fail("an idle connection was kept open past the server timeout")
        except OSError:
            data = b""
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
        sock.close()
    trickle.close()
    _alive(server)


# ---- gRPC ---------------------------------------------------------------------------------------


def _grpc_cases():
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
    )

    img = np.zeros((1, 28, 28, 1), np.float32)
    bad_content = predict_request("cnn", "serving_default", {"images": img})
    bad_content.inputs["images"].tensor_content = b"\x00" * 7
    metadata_none = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_none.model_spec.name = "cnn"
    metadata_other = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["nope"])
    metadata_other.model_spec.name = "cnn"
    status_nope = get_model_status_pb2.GetModelStatusRequest()
    status_nope.model_spec.name = "nope"
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "cnn"
    filtered = predict_request("cnn", "serving_default", {"images": img})
    filtered.output_filter.append("nope")
    return [
        ("Predict", predict_request("nope", "", {"images": img}), "NOT_FOUND"),
        ("Predict", predict_request("cnn", "", {"images": img}, version=9), "NOT_FOUND"),
        ("Predict", predict_request("cnn", "", {"images": img}, label="x"), "INVALID_ARGUMENT"),
        ("Predict", predict_request("cnn", "nope", {"images": img}), "FAILED_PRECONDITION"),
        ("Predict", predict_request("cnn", "", {"images": np.array([b"x"])}), "INVALID_ARGUMENT"),
        (
            "Predict",
            predict_request("cnn", "", {"images": img.astype(np.int32)}),
            "INVALID_ARGUMENT",
        ),
        (
            "Predict",
            predict_request("cnn", "", {"images": np.zeros((1, 5), np.float32)}),
            "INVALID_ARGUMENT",
        ),
        ("Predict", predict_request("cnn", "", {}), "INVALID_ARGUMENT"),
        ("Predict", predict_request("cnn", "", {"images": img, "x": img}), "INVALID_ARGUMENT"),
        (
            "Predict",
            predict_request("cnn", PNG_SIG, {"image_bytes": np.array([b"junk"])}),
            "INVALID_ARGUMENT",
        ),
        ("Predict", bad_content, "INVALID_ARGUMENT"),
        ("Predict", filtered, "INVALID_ARGUMENT"),
        (
            "Predict",
            predict_request("cnn", "", {"images": np.zeros((9000, 28, 28, 1), np.float32)}),
            "RESOURCE_EXHAUSTED",
        ),
        ("GetModelMetadata", metadata_none, "INVALID_ARGUMENT"),
        ("GetModelMetadata", metadata_other, "INVALID_ARGUMENT"),
        ("GetModelStatus", status_nope, "NOT_FOUND"),
        ("Classify", classify, "UNIMPLEMENTED"),
    ]


def test_grpc_bad_requests(server):
    import grpc

    channel, predict, models = grpc_stubs(server.grpc_target)
    good = predict_request("cnn", "", {"images": np.zeros((1, 28, 28, 1), np.float32)})
    with channel:
        cases = _grpc_cases()
        assert len(cases) >= 15
        for method, request, code in cases:
            stub = models if method == "GetModelStatus" else predict
            with pytest.raises(grpc.RpcError) as info:
                getattr(stub, method)(request, timeout=30)
            assert info.value.code().name == code, (method, info.value.details())
            assert predict.Predict(good, timeout=30).model_spec.version.value == 1
    _alive(server)


def test_b64_accepts_url_safe_alphabet(server, cnn_store):
    encoded = base64.urlsafe_b64encode(cnn_store.pngs[0]).decode()
    body = {"signature_name": PNG_SIG, "instances": [{"b64": encoded}]}
    status, doc = http("POST", server.url + PREDICT, body)
    assert status == 200, doc
