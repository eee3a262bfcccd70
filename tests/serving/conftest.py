"""Serving fixtures: tiny `cnn` exports in TF Serving's layout, and real server processes.

`cnn_store` builds two versions of a tiny image classifier (different weights) once per session,
exported with `keras.export.ExportArchive` and the export contract's two signatures:
`serving_default` (images float32 [N,28,28,1] -> probabilities) and `predict_image_bytes`
(image_bytes string [N] -> classes, labels, probabilities), plus warmup records and labels.txt.
`ServerProcess` runs `python -m serving serve ... --backend embedded` on 127.0.0.1 with ports
picked by the OS, waits for the ports it prints, and always stops it.
"""

import base64
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CLASS_NAMES = [f"digit_{i}" for i in range(10)]


# ---- exports ----------------------------------------------------------------------------------


def export_cnn(version_dir: Path, seed: int) -> Path:
    """Write one tiny cnn version (both signatures, warmup, labels) at version_dir."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from serving.warmup import write_warmup_requests

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1), name="images")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="cnn")
    names = tf.constant(CLASS_NAMES)

    def serve(images):
        return {"probabilities": model(images, training=False)}

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=1, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), (28, 28))

    def predict_image_bytes(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec([28, 28, 1], tf.float32)
        )
        probabilities = model(images, training=False)
        classes = tf.argmax(probabilities, axis=-1)
        return {
            "classes": classes,
            "labels": tf.gather(names, classes),
            "probabilities": probabilities,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "predict_image_bytes",
        predict_image_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    archive.write_out(str(version_dir), verbose=False)
    extra = version_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    (extra / "labels.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    write_warmup_requests(
        version_dir, "cnn", "serving_default", {"images": np.zeros((1, 28, 28, 1), np.float32)}
    )
    return version_dir


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8).reshape(28, 28), mode="L").save(buf, format="PNG")
    return buf.getvalue()


class Store:
    """Complete version directories to copy into an exports tree, and sample inputs."""

    def __init__(self, root: Path):
        self.root = root
        self.v1 = export_cnn(root / "v1", seed=1)
        self.v2 = export_cnn(root / "v2", seed=2)
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(4, 28, 28, 1)).astype(np.float32)
        self.pngs = [png_bytes(img) for img in self.images]

    def install(self, exports: Path, model: str, version: int, source: Path | None = None) -> Path:
        """Copy a version in the exporter's way: a hidden sibling renamed into place."""
        base = exports / model
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".tmp-{version}-{os.getpid()}"
        shutil.copytree(source or self.v1, tmp)
        final = base / str(version)
        os.rename(tmp, final)
        return final


@pytest.fixture(scope="session")
def cnn_store(tmp_path_factory) -> Store:
    return Store(tmp_path_factory.mktemp("cnn-store"))


@pytest.fixture(scope="session")
def reference(cnn_store):
    """Predictions of tf.saved_model.load on the store's inputs, per version and signature."""
    import tensorflow as tf

    out = {}
    for name, path in (("v1", cnn_store.v1), ("v2", cnn_store.v2)):
        loaded = tf.saved_model.load(str(path))
        dense = loaded.signatures["serving_default"](images=tf.constant(cnn_store.images))
        raw = loaded.signatures["predict_image_bytes"](image_bytes=tf.constant(cnn_store.pngs))
        out[name] = {
            "serving_default": {k: v.numpy() for k, v in dense.items()},
            "predict_image_bytes": {k: v.numpy() for k, v in raw.items()},
        }
    return out


# ---- server processes -------------------------------------------------------------------------


class ServerProcess:
    """`python -m serving serve EXPORTS --backend embedded` on 127.0.0.1, OS-chosen ports."""

    def __init__(self, export_dir, *extra, log_path: Path):
        cmd = [sys.executable, "-m", "serving", "serve", str(export_dir), "--backend", "embedded"]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--rest-port", "0", *map(str, extra)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.lines: queue.Queue = queue.Queue()
        self.stdout: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.rest_port = self.grpc_port = None

    def _pump(self):
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout=180.0):
        deadline = time.monotonic() + timeout
        while self.rest_port is None or self.grpc_port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                line = self.lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready in {timeout}s:\n{self.logs()}") from None
                continue
            if m := re.match(r"REST\s+http://127\.0\.0\.1:(\d+)", line):
                self.rest_port = int(m[1])
            if m := re.match(r"gRPC\s+127\.0\.0\.1:(\d+)", line):
                self.grpc_port = int(m[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def logs(self) -> str:
        self._log.flush()
        return "".join(self.stdout) + "\n--- stderr ---\n" + self.log_path.read_text()[-6000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def server(cnn_store, tmp_path_factory):
    """The shared server: exports/cnn/1 through a models.config with label stable=1."""
    root = tmp_path_factory.mktemp("served")
    exports = root / "exports"
    cnn_store.install(exports, "cnn", 1)
    from serving import config

    assert config.main([str(exports), "--out", str(root), "--label", "cnn:stable=1"]) == 0
    proc = ServerProcess(
        exports,
        "--model-config-file",
        root / "models.config",
        "--rest-timeout-seconds",
        3,
        "--max-body-bytes",
        8 << 20,
        log_path=root / "server.log",
    )
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
    # Whatever the tests threw at it, the server never hit an unexpected (internal) error.
    log = proc.log_path.read_text()
    assert "Traceback" not in log, log[-6000:]


# ---- clients ----------------------------------------------------------------------------------


def http(method, url, body=None, headers=None, timeout=30):
    """(status, parsed JSON or text) for one request; HTTP errors are returned, not raised."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(raw)
    return status, raw.decode("utf-8", errors="replace")


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def grpc_stubs(target):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target)
    return (
        channel,
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )


def predict_request(name, signature, inputs, version=None, label=None):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request
