"""The platform issue's list against the embedded server, each case as a user would hit it.

Slow header senders, request smuggling, HTTP/0.9, gzip bodies, JSON that RapidJSON (TF Serving)
refuses, image decode errors, TensorProtos whose values do not match their shape, the cap on
instances per request, memory given back after large batches, Prometheus output that parses,
and one access log line per request. Real server processes, real sockets, real gRPC stubs.
"""

import gzip
import json
import re
import socket
import threading
import time

import numpy as np
import pytest

from tests.serving.conftest import ServerProcess, b64, grpc_stubs, http, predict_request

IMG = np.zeros((28, 28, 1), np.float32).tolist()
PREDICT = "/v1/models/cnn:predict"
PNG_SIG = "predict_image_bytes"


def _exchange(port, payload: bytes, timeout=10.0) -> tuple[bytes, float]:
    """Everything the server sends back until it closes (or `timeout`), and the seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def _statuses(response: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)]


def _alive(server):
    status, doc = http("GET", f"{server.url}/v1/models/cnn", timeout=30)
    assert status == 200 and doc["model_version_status"][0]["state"] == "AVAILABLE"


# ---- HTTP: slow headers, smuggling, HTTP/0.9 ---------------------------------------------------


def test_slow_header_senders_do_not_lock_out_other_clients(server):
    """300 connections that send a header line every second (the issue: one every 8 s, 256 of
    them) hold no slot another client needs, and are cut off once the header time runs out
    (the shared server's header timeout is 3 s, from --rest-timeout-seconds 3)."""
    slow = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)
        sock.sendall(b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\n")
        slow.append(sock)
    stop = threading.Event()
    cut = set()

    def drip():
        while not stop.wait(1.0):
            for i, sock in enumerate(slow):
                if i in cut:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    cut.add(i)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        statuses, started = [], time.monotonic()
        while time.monotonic() - started < 6:
            t0 = time.monotonic()
            status, doc = http("POST", server.url + PREDICT, {"instances": [IMG]}, timeout=30)
            statuses.append((status, round(time.monotonic() - t0, 2)))
            time.sleep(0.3)
        assert all(s == 200 and t < 3 for s, t in statuses), statuses
        # Every slow sender is answered 408 or closed once its header time is up.
        deadline = time.monotonic() + 10
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                pytest.fail("a connection still sending headers after 13 s was not cut off")
            except OSError:
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
    finally:
        stop.set()
        dripper.join(timeout=10)
        for sock in slow:
            sock.close()
    _alive(server)


def test_stalled_body_gets_408(server):
    """The shared server's body timeout is 6 s (twice --rest-timeout-seconds 3)."""
    marker = f"/v1/models/cnn/versions/{time.monotonic_ns() % 10**9}:predict"
    payload = f"POST {marker} HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{{".encode()
    response, seconds = _exchange(server.rest_port, payload, timeout=20)
    assert _statuses(response) == [408], response[:300]
    assert 5 < seconds < 10, seconds
    time.sleep(0.3)
    lines = [line for line in server.log_path.read_text().splitlines() if marker in line]
    assert len(lines) == 1 and " 408 " in lines[0], lines


def test_conflicting_content_length_is_refused_not_smuggled(server):
    body = b'{"instances": []}'
    smuggled = b"GET /v1/models/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    lengths = f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + len(smuggled)}\r\n"
    payload = (
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\n"
        + lengths.encode()
        + b"\r\n"
        + body
        + smuggled
    )
    response, _ = _exchange(server.rest_port, payload)
    assert _statuses(response) == [400], response[:500]
    assert b"smuggled" not in response
    _alive(server)


@pytest.mark.parametrize(
    "payload",
    [
        # Transfer-Encoding and Content-Length together: the other classic smuggling vector.
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models/smuggled HTTP/1.1\r\n\r\n",
        # The same Content-Length twice, a list of them, or a sign: refused too.
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
        # Header folding, a space before the colon, a bare LF: ambiguous framing.
        b"GET /v1/models/cnn HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        b"POST /v1/models/cnn:predict HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}",
        b"GET /v1/models/cnn HTTP/1.1\nHost: x\n\n",
    ],
    ids=["te-and-cl", "same-cl-twice", "cl-list", "cl-sign", "obs-fold", "space-colon", "bare-lf"],
)
def test_ambiguous_framing_is_refused(server, payload):
    response, _ = _exchange(server.rest_port, payload)
    assert _statuses(response) == [400], response[:500]
    assert b"smuggled" not in response
    _alive(server)


def test_http09_request_line_gets_400_at_once(server):
    for payload in (b"GET /v1/models/cnn\r\n", b"GET /v1/models/cnn\r\n\r\n"):
        response, seconds = _exchange(server.rest_port, payload, timeout=10)
        assert _statuses(response) == [400], response[:300]
        assert seconds < 2, f"the socket was held {seconds:.1f}s"
        head, _, body = response.partition(b"\r\n\r\n")
        assert "error" in json.loads(body), body
    _alive(server)


def test_unsupported_http_versions(server):
    for version in (b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2"):
        response, _ = _exchange(server.rest_port, b"GET /v1/models/cnn " + version + b"\r\n\r\n")
        assert _statuses(response) == [505], (version, response[:300])


# ---- bodies: gzip, encodings, numbers ---------------------------------------------------------


def test_gzip_body_is_decompressed(server, cnn_store, reference):
    body = gzip.compress(json.dumps({"instances": cnn_store.images.tolist()}).encode())
    for encoding in ("gzip", "GZip", "x-gzip"):
        status, doc = http(
            "POST", server.url + PREDICT, body, headers={"Content-Encoding": encoding}
        )
        assert status == 200, doc
        np.testing.assert_allclose(
            np.asarray(doc["predictions"], np.float32),
            reference["v1"]["serving_default"]["probabilities"],
            rtol=1e-6,
            atol=1e-7,
        )


def test_gzip_bomb_unknown_and_broken_encodings(server):
    # 64 MiB of spaces compress to ~64 KB; the server's body limit is 8 MiB (decompressed).
    bomb = gzip.compress(b"{" + b" " * (64 << 20) + b"}", compresslevel=9)
    assert len(bomb) < 200_000
    status, doc = http("POST", server.url + PREDICT, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "exceeds the limit" in doc["error"], doc
    status, doc = http("POST", server.url + PREDICT, b"{}", headers={"Content-Encoding": "br"})
    assert status == 415 and "br" in doc["error"], doc
    status, doc = http(
        "POST", server.url + PREDICT, b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert status == 400 and "gzip" in doc["error"].lower(), doc
    truncated = gzip.compress(json.dumps({"instances": [IMG]}).encode())[:-20]
    status, doc = http(
        "POST", server.url + PREDICT, truncated, headers={"Content-Encoding": "gzip"}
    )
    assert status == 400, doc
    _alive(server)


@pytest.mark.parametrize(
    "body,message",
    [
        (b'{"instances": [[' + b"1e400," * 783 + b"1e400]]}", "Number too big"),
        (b'{"inputs": {"images": -1e400}}', "Number too big"),
        (b'{"instances": [' + b"1" + b"0" * 400 + b".5]}", "Number too big"),
        (json.dumps({"instances": [IMG]}).encode("utf-16"), "JSON Parse error"),
        (json.dumps({"instances": [IMG]}).encode("utf-16-le"), "JSON Parse error"),
        (b"\xef\xbb\xbf" + json.dumps({"instances": [IMG]}).encode(), "JSON Parse error"),
        (b'{"instances": ["\xc3\x28"]}', "JSON Parse error"),
    ],
    ids=["1e400", "minus-1e400", "long-mantissa", "utf16-bom", "utf16-le", "utf8-bom", "bad-utf8"],
)
def test_json_that_tf_serving_refuses(server, body, message):
    status, doc = http("POST", server.url + PREDICT, body)
    assert status == 400, doc
    assert message in doc["error"], doc


def test_nan_and_infinity_literals_still_accepted(server):
    image = json.dumps([[[0.0]] * 28] * 27 + [[[float("nan")]] * 14 + [[float("inf")]] * 14])
    assert "NaN" in image and "Infinity" in image
    status, doc = http("POST", server.url + PREDICT, f'{{"instances": [{image}]}}'.encode())
    assert status == 200, doc


# ---- image decode errors keep their reason ----------------------------------------------------


def test_image_decode_error_is_the_ops_message(server):
    import grpc

    status, doc = http(
        "POST",
        server.url + PREDICT,
        {"signature_name": PNG_SIG, "instances": [b64(b"not an image at all")]},
    )
    assert status == 400, doc
    assert doc["error"].startswith("Unknown image file format. One of JPEG"), doc
    for noise in ("Graph execution error", "Detected at node", "[[{{node", "[Op:", "File "):
        assert noise not in doc["error"], doc
    status, doc = http(
        "POST",
        server.url + PREDICT,
        {"signature_name": PNG_SIG, "instances": [b64(b"\x89PNG\r\n\x1a\n" + b"x" * 40)]},
    )
    assert status == 400 and doc["error"].startswith("Invalid PNG"), doc
    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        request = predict_request("cnn", PNG_SIG, {"image_bytes": np.array([b"junk"])})
        with pytest.raises(grpc.RpcError) as info:
            predict.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("Unknown image file format"), info.value.details()


# ---- gRPC TensorProtos validated before they are materialised ---------------------------------


def _grpc_error(server, request):
    import grpc

    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            predict.Predict(request, timeout=30)
        good = predict_request("cnn", "", {"images": np.zeros((1, 28, 28, 1), np.float32)})
        assert predict.Predict(good, timeout=30).model_spec.version.value == 1
    return info.value.code().name, info.value.details()


def _proto_request(shape, values=None, content=None, unknown_rank=False):
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cnn"
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for d in shape:
        tensor.tensor_shape.dim.add(size=d)
    tensor.tensor_shape.unknown_rank = unknown_rank
    if values is not None:
        tensor.float_val.extend(values)
    if content is not None:
        tensor.tensor_content = content
    request.inputs["images"].CopyFrom(tensor)
    return request


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(shape=[1, 28, 28, 1], values=[0.5] * 3), "has 3 values"),
        (dict(shape=[2, 28, 28, 1], values=[0.5] * 785), "has 785 values"),
        (dict(shape=[1, 28, 28, 1], content=b"\x00" * 7), "tensor_content of 7 bytes"),
        (dict(shape=[], values=[0.5], unknown_rank=True), "unknown rank"),
        (dict(shape=[1, -1, 28, 1], values=[0.5]), "negative"),
        (dict(shape=[5000, 28, 28, 1], values=[0.5]), "more than the server's limit"),
        (dict(shape=[1, 28, 28, 1 << 40], values=[0.5]), "bytes"),
    ],
    ids=["too-few", "too-many", "content-size", "unknown-rank", "negative-dim", "cap", "huge"],
)
def test_grpc_tensor_proto_validation(server, kwargs, message):
    request = _proto_request(**kwargs)
    if "shape" in kwargs and kwargs["shape"] and kwargs["shape"][0] == 5000:
        assert request.ByteSize() <= 100  # 100 bytes asking for 5,000 images
    started = time.monotonic()
    code, details = _grpc_error(server, request)
    assert code == "INVALID_ARGUMENT", details
    assert message in details and "'images'" in details, details
    assert "index can't contain negative values" not in details
    assert time.monotonic() - started < 5


def test_grpc_single_value_fills_the_shape(server):
    import tensorflow as tf

    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        response = predict.Predict(_proto_request([3, 28, 28, 1], values=[0.0]), timeout=30)
    assert tf.make_ndarray(response.outputs["probabilities"]).shape == (3, 10)


# ---- the cap on instances per request ---------------------------------------------------------


def test_rest_instances_above_the_cap_get_400(server):
    for body in (
        {"instances": [0] * 1025},
        {"inputs": {"images": [0] * 1025}},
        {"inputs": [0] * 1025},
        {"signature_name": PNG_SIG, "instances": [{"image_bytes": b64(b"x")}] * 1025},
    ):
        status, doc = http("POST", server.url + PREDICT, body)
        assert status == 400, doc
        assert "1025" in doc["error"] and "--max-instances=1024" in doc["error"], doc
    _alive(server)


# ---- memory ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_server(cnn_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    exports = root / "exports"
    cnn_store.install(exports, "cnn", 1)
    proc = ServerProcess(exports, "--max-instances", 4096, log_path=root / "server.log")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def _rss_mb(pid) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def test_memory_is_given_back_after_large_batches(big_server):
    """Four clients at once, three rounds, each request 3,000 images as JSON (~13 MB): the
    server's resident memory climbs while they run and falls back within 250 MB of where it
    started once they are done."""
    import tensorflow as tf

    server = big_server
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3000, 28, 28, 1)).astype(np.float32)
    body = json.dumps({"instances": images.tolist()}).encode()
    request = predict_request("cnn", "", {"images": images})
    _alive(server)
    http("POST", server.url + PREDICT, {"instances": [IMG]})
    time.sleep(1.0)
    before = _rss_mb(server.proc.pid)
    peak, failures = before, []

    def rest_client():
        status, doc = http("POST", server.url + PREDICT, body, timeout=120)
        if status != 200:
            failures.append((status, str(doc)[:200]))

    def grpc_client():
        channel, predict, _ = grpc_stubs(server.grpc_target)
        with channel:
            response = predict.Predict(request, timeout=120)
            assert tf.make_ndarray(response.outputs["probabilities"]).shape == (3000, 10)

    for _ in range(3):
        threads = [threading.Thread(target=rest_client) for _ in range(3)]
        threads.append(threading.Thread(target=grpc_client))
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, _rss_mb(server.proc.pid))
            time.sleep(0.05)
    assert failures == [], failures
    time.sleep(1.5)
    after = _rss_mb(server.proc.pid)
    print(f"RSS before {before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
    assert after - before < 250, f"RSS before {before:.0f} MB, peak {peak:.0f}, after {after:.0f}"


# ---- metrics and the access log ---------------------------------------------------------------


def test_prometheus_text_parses_with_tf_serving_names(server):
    from prometheus_client.parser import text_string_to_metric_families

    assert http("POST", server.url + PREDICT, {"instances": [IMG]})[0] == 200
    status, text = http("GET", f"{server.url}/monitoring/prometheus/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families[":tensorflow:serving:request_count"].type == "counter"
    assert families[":tensorflow:serving:request_latency"].type == "histogram"
    assert families[":tensorflow:serving:model_load_count"].type == "counter"
    assert families[":tensorflow:serving:model_versions_available"].type == "gauge"
    # Sample names as TF Serving writes them: no _total, no _created.
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert re.search(r'^:tensorflow:serving:request_count\{model_name="cnn",', text, re.M)
    tf_serving = [line for line in text.splitlines() if ":tensorflow:serving:" in line]
    assert not [line for line in tf_serving if "_total" in line or "_created" in line]
    latency = families[":tensorflow:serving:request_latency"]
    names = {s.name for s in latency.samples}
    assert names == {
        ":tensorflow:serving:request_latency_bucket",
        ":tensorflow:serving:request_latency_sum",
        ":tensorflow:serving:request_latency_count",
    }
    ok = [
        s for s in latency.samples if s.name.endswith("_count") and s.labels.get("API") == "predict"
    ]
    assert ok and all(set(s.labels) == {"model_name", "API", "entrypoint", "status"} for s in ok)


def test_one_access_log_line_per_request(server):
    marker = f"/v1/models/cnn/labels/access-{time.monotonic_ns()}"
    http("GET", server.url + marker)
    http("POST", server.url + PREDICT, {"instances": [IMG]})
    time.sleep(0.3)
    log = server.log_path.read_text()
    lines = [line for line in log.splitlines() if marker in line]
    assert len(lines) == 1, lines
    assert re.search(r"GET " + re.escape(marker) + r" 400 \d+\.\d+ ms", lines[0]), lines[0]
    assert re.search(r"POST /v1/models/cnn:predict 200 \d+\.\d+ ms", log)
