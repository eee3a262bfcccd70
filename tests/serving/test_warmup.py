"""Warmup records: TFRecord of PredictionLog in assets.extra/, written and replayed on load."""

import numpy as np
import pytest


def test_round_trip(tmp_path):
    import tensorflow as tf

    from serving.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests

    images = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1)
    path = write_warmup_requests(tmp_path, "cnn", "serving_default", {"images": images}, count=3)
    assert path == tmp_path / "assets.extra" / WARMUP_FILE
    assert [p.name for p in path.parent.iterdir()] == [WARMUP_FILE]  # no temporary left behind
    logs = read_warmup_requests(tmp_path)
    assert len(logs) == 3
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == (
            "cnn",
            "serving_default",
        )
        np.testing.assert_array_equal(tf.make_ndarray(request.inputs["images"]), images)
    # Plain TFRecords, as TF Serving reads them.
    assert sum(1 for _ in tf.data.TFRecordDataset(str(path))) == 3


def test_string_inputs(tmp_path):
    import tensorflow as tf

    from serving.warmup import read_warmup_requests, write_warmup_requests

    data = np.array([b"\x89PNG...", b"jpeg"], dtype=object)
    write_warmup_requests(tmp_path, "cnn", "predict_image_bytes", {"image_bytes": data})
    (log,) = read_warmup_requests(tmp_path)
    got = tf.make_ndarray(log.predict_log.request.inputs["image_bytes"])
    assert got.tolist() == data.tolist()


def test_limits_and_bad_files(tmp_path):
    import tensorflow as tf

    from serving.warmup import read_warmup_requests, warmup_path, write_warmup_requests

    assert read_warmup_requests(tmp_path) == []
    x = {"x": np.zeros((1,), np.float32)}
    for count in (0, 1001):
        with pytest.raises(ValueError, match="1000"):
            write_warmup_requests(tmp_path, "m", "serving_default", x, count=count)
    with pytest.raises(ValueError, match="at least one input"):
        write_warmup_requests(tmp_path, "m", "serving_default", {})
    write_warmup_requests(tmp_path, "m", "serving_default", x, count=1000)
    assert len(read_warmup_requests(tmp_path)) == 1000
    data = warmup_path(tmp_path).read_bytes()
    with open(warmup_path(tmp_path), "ab") as f:
        f.write(data[: len(data) // 1000])  # the records are identical: append a 1001st
    with pytest.raises(ValueError, match="more than 1000"):
        read_warmup_requests(tmp_path)
    warmup_path(tmp_path).write_bytes(b"\x00" * 40)  # not TFRecord framing
    with pytest.raises(tf.errors.DataLossError):
        read_warmup_requests(tmp_path)


def test_loaded_version_replays_its_warmup(cnn_store, tmp_path):
    import shutil

    from serving.server.errors import ServingError
    from serving.server.models import Servable
    from serving.warmup import write_warmup_requests

    assert Servable("cnn", 1, cnn_store.v1, batching=None).warmup() == 1
    broken = tmp_path / "1"
    shutil.copytree(cnn_store.v1, broken)
    write_warmup_requests(
        broken, "cnn", "predict_image_bytes", {"image_bytes": np.array([b"not a png"], object)}
    )
    with pytest.raises(ServingError, match="Warmup request 0 failed") as info:
        Servable("cnn", 1, broken, batching=None).warmup()
    assert info.value.code == "INVALID_ARGUMENT"
