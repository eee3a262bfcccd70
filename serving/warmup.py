"""SavedModel warmup records, as TF Serving reads them (g3doc/saved_model_warmup.md).

`assets.extra/tf_serving_warmup_requests` inside a version directory is a TFRecord file whose
records are serialized `PredictionLog` protos; TF Serving (and the embedded server) replay them
when the version loads, so the first real request does not pay for lazy initialisation. At most
1000 records.

    write_warmup_requests("exports/cnn/3", "cnn", "serving_default",
                          {"images": np.zeros((1, 28, 28, 1), np.float32)})
"""

import os
from pathlib import Path

import numpy as np

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir) -> Path:
    return Path(version_dir) / WARMUP_DIR / WARMUP_FILE


def write_warmup_requests(
    version_dir, model_name: str, signature_name: str, inputs: dict, count: int = 1
) -> Path:
    """Write `count` copies of one PredictRequest (predict_log.request) as the warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    if not 1 <= count <= MAX_WARMUP_RECORDS:
        raise ValueError(
            f"count must be in 1..{MAX_WARMUP_RECORDS} (TF Serving's limit), got {count}"
        )
    if not inputs:
        raise ValueError("inputs must name at least one input tensor")
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    record = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    ).SerializeToString()

    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{WARMUP_FILE}.tmp-{os.getpid()}")
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for _ in range(count):
            writer.write(record)
    os.replace(tmp, path)
    return path


def read_warmup_requests(version_dir) -> list:
    """The PredictionLog records of a version's warmup file ([] when it has none).

    Raises ValueError for more than MAX_WARMUP_RECORDS records and tf.errors.DataLossError for a
    corrupt file: a version whose warmup cannot run does not load, as in TF Serving.
    """
    path = warmup_path(version_dir)
    if not path.is_file():
        return []
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        if len(logs) == MAX_WARMUP_RECORDS:
            raise ValueError(
                f"{path}: more than {MAX_WARMUP_RECORDS} warmup records (TF Serving's limit)"
            )
        logs.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    return logs
