"""Versions under load: a new version is served within seconds with no failed request, a broken
or half-written version never replaces the one serving, and warmup runs on load.

One server for the module, discovering exports/ itself (no config file), polling every 0.5 s,
with server-side batching on, so the switch also exercises the batcher. The tests run in order:
v1 -> v2 (switch under load) -> broken v3 -> slowly written v4 -> v5 with failing warmup.
"""

import os
import re
import threading
import time

import numpy as np
import pytest

from tests.serving.conftest import ServerProcess, grpc_stubs, http, predict_request

POLL = 0.5


@pytest.fixture(scope="module")
def versioned(cnn_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("versions")
    exports = root / "exports"
    cnn_store.install(exports, "cnn", 1)
    proc = ServerProcess(
        exports,
        "--poll-seconds",
        POLL,
        "--enable-batching",
        "--max-batch-size",
        8,
        "--batch-timeout-ms",
        5,
        log_path=root / "server.log",
    )
    try:
        yield proc.wait_ready(), exports
    finally:
        proc.stop()


def _statuses(server):
    status, doc = http("GET", f"{server.url}/v1/models/cnn")
    assert status == 200, doc
    return {int(s["version"]): s for s in doc["model_version_status"]}


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _which(predictions, reference, signature="serving_default"):
    got = np.asarray(predictions, np.float32)
    for name in ("v1", "v2"):
        if np.allclose(got, reference[name][signature]["probabilities"][:1], atol=1e-5):
            return name
    return "?"


class Load:
    """REST and gRPC clients predicting in a loop; every answer and error is recorded."""

    def __init__(self, server, images, rest_threads=3, grpc_threads=2):
        self.server, self.images = server, images
        self.stop = threading.Event()
        self.errors: list = []
        self.rest: list = []  # (time, predictions)
        self.grpc: list = []  # (time, version)
        self.threads = [threading.Thread(target=self._rest) for _ in range(rest_threads)]
        self.threads += [threading.Thread(target=self._grpc) for _ in range(grpc_threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _rest(self):
        body = {"instances": self.images[:1].tolist()}
        while not self.stop.is_set():
            try:
                status, doc = http("POST", f"{self.server.url}/v1/models/cnn:predict", body)
            except Exception as exc:  # noqa: BLE001 - recorded as a failed request
                self.errors.append(("REST", repr(exc)))
                continue
            if status != 200:
                self.errors.append(("REST", status, doc))
            else:
                self.rest.append((time.monotonic(), doc["predictions"]))

    def _grpc(self):
        channel, predict, _ = grpc_stubs(self.server.grpc_target)
        request = predict_request("cnn", "serving_default", {"images": self.images[:1]})
        with channel:
            while not self.stop.is_set():
                try:
                    response = predict.Predict(request, timeout=30)
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(("gRPC", repr(exc)))
                    continue
                self.grpc.append((time.monotonic(), response.model_spec.version.value))

    def latest_grpc_version(self):
        return self.grpc[-1][1] if self.grpc else None


def test_new_version_is_served_within_seconds_without_failed_requests(
    versioned, cnn_store, reference
):
    server, exports = versioned
    with Load(server, cnn_store.images) as load:
        _wait(lambda: len(load.grpc) > 5 and len(load.rest) > 5, 60, "load to start")
        assert load.latest_grpc_version() == 1
        dropped = time.monotonic()
        cnn_store.install(exports, "cnn", 2, source=cnn_store.v2)
        _wait(lambda: load.latest_grpc_version() == 2, 30, "version 2 to be served")
        switch_seconds = time.monotonic() - dropped
        time.sleep(1.0)  # keep the load on after the switch
    assert load.errors == [], load.errors[:5]
    assert switch_seconds < 10, f"version 2 took {switch_seconds:.1f}s"
    # Every REST answer came from v1 or v2, and v2 answered everything after the switch.
    versions = [_which(p, reference) for _, p in load.rest]
    assert "?" not in versions
    switched_at = next(t for t, v in load.grpc if v == 2)
    assert all(_which(p, reference) == "v2" for t, p in load.rest if t > switched_at + 1.0)
    assert [v for _, v in load.grpc] == sorted(v for _, v in load.grpc)  # never back to v1
    states = _statuses(server)
    assert states[2]["state"] == "AVAILABLE" and states[1]["state"] == "END"
    # Batching was on: concurrent requests shared batches.
    _, text = http("GET", f"{server.url}/monitoring/prometheus/metrics")
    batches = float(re.search(r'batching:batch_count\{model_name="cnn"\} (\S+)', text)[1])
    requests = float(
        re.search(r'batching:batched_request_count\{model_name="cnn"\} (\S+)', text)[1]
    )
    assert requests > batches > 0
    print(
        f"switch to v2 served after {switch_seconds:.2f}s; {len(load.rest)} REST and "
        f"{len(load.grpc)} gRPC requests, 0 failed; {requests / batches:.2f} requests/batch"
    )


def test_broken_version_leaves_previous_serving(versioned, cnn_store, reference):
    server, exports = versioned
    tmp = exports / "cnn" / ".tmp-3"
    (tmp / "variables").mkdir(parents=True)
    (tmp / "saved_model.pb").write_bytes(b"\x08garbage, not a SavedModel proto" * 10)
    with Load(server, cnn_store.images, rest_threads=2, grpc_threads=1) as load:
        os.rename(tmp, exports / "cnn" / "3")
        state = _wait(
            lambda: _statuses(server).get(3, {}).get("state") == "END" and _statuses(server)[3],
            30,
            "version 3 to fail",
        )
        time.sleep(1.0)
    assert state["status"]["error_code"] != "OK" and state["status"]["error_message"]
    assert load.errors == [], load.errors[:5]
    assert {v for _, v in load.grpc} == {2}
    assert {_which(p, reference) for _, p in load.rest} == {"v2"}
    assert _statuses(server)[2]["state"] == "AVAILABLE"
    # The failure does not repeat at every poll: the same broken files are tried once.
    time.sleep(3 * POLL)
    _, text = http("GET", f"{server.url}/monitoring/prometheus/metrics")
    failed = re.findall(r'model_load_count\{model_name="cnn",status="(?!OK)[A-Z_]+"\} (\S+)', text)
    assert [float(n) for n in failed] == [1.0]


def test_directory_still_being_written_is_not_loaded(versioned, cnn_store):
    """A writer that copies in place (no rename) is waited for: the version loads only once its
    files stop changing, never half-written."""
    server, exports = versioned
    final = exports / "cnn" / "4"
    final.mkdir()
    for item in cnn_store.v1.iterdir():
        if item.name != "saved_model.pb":
            target = final / item.name
            if item.is_dir():
                import shutil

                shutil.copytree(item, target)
            else:
                target.write_bytes(item.read_bytes())
    data = (cnn_store.v1 / "saved_model.pb").read_bytes()
    seen = set()
    with open(final / "saved_model.pb", "wb") as f:
        for i in range(0, len(data), len(data) // 30 + 1):
            f.write(data[i : i + len(data) // 30 + 1])
            f.flush()
            seen.add(_statuses(server).get(4, {}).get("state"))
            time.sleep(0.1)
    assert seen == {None}, f"version 4 was touched while being written: {seen}"
    state = _wait(
        lambda: _statuses(server).get(4, {}).get("state") == "AVAILABLE" and _statuses(server),
        30,
        "version 4 to load",
    )
    assert state[4]["status"]["error_code"] == "OK"
    assert state[2]["state"] == "END"


def test_version_whose_warmup_fails_is_not_served(versioned, cnn_store):
    from serving.warmup import write_warmup_requests

    server, exports = versioned
    log = server.log_path.read_text()
    assert re.search(r"version: 4\} in [\d.]+s \(1 warmup request", log), log[-3000:]
    tmp = exports / "cnn" / ".tmp-5"
    import shutil

    shutil.copytree(cnn_store.v1, tmp)
    write_warmup_requests(tmp, "cnn", "serving_default", {"wrong": np.zeros((1, 3), np.float32)})
    os.rename(tmp, exports / "cnn" / "5")
    state = _wait(
        lambda: _statuses(server).get(5, {}).get("state") == "END" and _statuses(server),
        30,
        "version 5 to fail its warmup",
    )
    assert state[5]["status"]["error_code"] == "INVALID_ARGUMENT"
    assert "Warmup request 0 failed" in state[5]["status"]["error_message"]
    assert state[4]["state"] == "AVAILABLE"
    channel, predict, _ = grpc_stubs(server.grpc_target)
    with channel:
        request = predict_request("cnn", "", {"images": cnn_store.images[:1]})
        assert predict.Predict(request, timeout=30).model_spec.version.value == 4
