"""TF Serving's gRPC API on the servicers generated in tensorflow-serving-api.

`tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and
`tensorflow.serving.ModelService` (GetModelStatus) with TF Serving's request and response protos,
so an unmodified TF Serving client (`prediction_service_pb2_grpc.PredictionServiceStub`) works.
Classify, Regress and MultiInference need tf.Example signatures and answer UNIMPLEMENTED.
"""

import logging
import time
from concurrent import futures

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.server import accesslog
from serving.server.errors import ServingError, from_exception, grpc_code, invalid
from serving.server.tensors import array_from_proto

log = logging.getLogger("serving.server.grpc")
LARGE_REQUEST_BYTES = 1 << 20

SIGNATURE_DEF = "signature_def"


def status_response(statuses) -> get_model_status_pb2.GetModelStatusResponse:
    from tensorflow.core.protobuf import error_codes_pb2

    response = get_model_status_pb2.GetModelStatusResponse()
    for s in statuses:
        entry = response.model_version_status.add()
        entry.version = s.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(s.state)
        entry.status.error_code = error_codes_pb2.Code.Value(s.error_code)
        entry.status.error_message = s.error_message
    return response


def signature_def_map(servable) -> get_model_metadata_pb2.SignatureDefMap:
    out = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in servable.signature_defs.items():
        out.signature_def[key].CopyFrom(signature_def)
    return out


_NUMERIC = {}  # numpy dtype -> DataType enum, for outputs packed as tensor_content


def fill_tensor_proto(proto, arr):
    """Write a numpy array into a TensorProto as tf.make_tensor_proto would, in place.

    Numeric arrays go in as tensor_content (raw little-endian bytes, what make_tensor_proto
    writes too) without make_tensor_proto's ~100 us of checks per call; strings and other
    types take the general path.
    """
    import tensorflow as tf

    if not _NUMERIC:
        for tf_dtype in (
            tf.float16, tf.float32, tf.float64, tf.int8, tf.int16, tf.int32, tf.int64,
            tf.uint8, tf.uint16, tf.uint32, tf.uint64, tf.complex64, tf.complex128,
        ):  # fmt: skip
            _NUMERIC[np.dtype(tf_dtype.as_numpy_dtype)] = tf_dtype.as_datatype_enum
    enum = _NUMERIC.get(arr.dtype)
    if enum is None or arr.dtype.byteorder == ">":
        proto.CopyFrom(tf.make_tensor_proto(arr))
        return
    proto.dtype = enum
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    proto.tensor_content = np.ascontiguousarray(arr).tobytes()


def _spec(model_spec):
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


class _Base:
    service = ""

    def __init__(
        self, manager, metrics, max_instances=None, max_tensor_bytes=1 << 30, trimmer=None
    ):
        self.manager = manager
        self.metrics = metrics
        self.max_instances = max_instances
        self.max_tensor_bytes = max_tensor_bytes
        self.trimmer = trimmer

    def _serve(self, api, model_name, context, fn, method=""):
        """fn()'s response, or the call aborted with the TF Serving status of its failure."""
        started, err = time.perf_counter(), None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a gRPC status
            err = from_exception(exc)
            if err.code in ("INTERNAL", "UNKNOWN"):
                log.exception("%s failed", api)
        finally:
            elapsed = time.perf_counter() - started
            code = err.code if err is not None else "OK"
            accesslog.request(
                _peer(context), "gRPC", f"/{self.service}/{method}", code, elapsed * 1e3
            )
            if self.metrics is not None:
                known = model_name if self.manager.has_model(model_name) else "unknown"
                self.metrics.observe(known, api, "GRPC", code, elapsed)
        context.abort(grpc_code(err.code), err.message)


def _peer(context) -> str:
    try:
        peer = context.peer()  # "ipv4:127.0.0.1:5555"
    except Exception:  # noqa: BLE001 - only for the log line
        return "-"
    return peer.split(":", 1)[1] if ":" in peer else peer


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    service = "tensorflow.serving.PredictionService"

    def Predict(self, request, context):
        large = request.ByteSize() >= LARGE_REQUEST_BYTES
        try:
            return self._serve(
                "predict",
                request.model_spec.name,
                context,
                lambda: self._predict(request),
                "Predict",
            )
        finally:
            if large and self.trimmer is not None:
                self.trimmer.request_done()

    def _predict(self, request):
        name, version, label = _spec(request.model_spec)
        servable = self.manager.servable(name, version, label)
        runner = servable.runner(request.model_spec.signature_name)
        inputs = {
            key: array_from_proto(key, proto, self.max_instances, self.max_tensor_bytes)
            for key, proto in request.inputs.items()
        }
        outputs = runner.run(inputs, list(request.output_filter))
        del inputs
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = runner.key
        for key, value in outputs.items():
            fill_tensor_proto(response.outputs[key], value)
        return response

    def GetModelMetadata(self, request, context):
        return self._serve(
            "get_model_metadata",
            request.model_spec.name,
            context,
            lambda: self._metadata(request),
            "GetModelMetadata",
        )

    def _metadata(self, request):
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF:
                raise invalid(f"Metadata field {field} is not supported")
        servable = self.manager.servable(*_spec(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF].Pack(signature_def_map(servable))
        return response

    def _unimplemented(self, api, request, context):
        def fail():
            raise ServingError(
                "UNIMPLEMENTED",
                f"{api} is not supported by the embedded server (it needs tf.Example "
                "signatures); use Predict",
            )

        return self._serve(api, request.model_spec.name, context, fail, api.capitalize())

    def Classify(self, request, context):
        return self._unimplemented("classify", request, context)

    def Regress(self, request, context):
        return self._unimplemented("regress", request, context)

    def MultiInference(self, request, context):
        def fail():
            raise ServingError("UNIMPLEMENTED", "MultiInference is not supported")

        return self._serve("multi_inference", "", context, fail, "MultiInference")


class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):
    service = "tensorflow.serving.ModelService"

    def GetModelStatus(self, request, context):
        return self._serve(
            "get_model_status",
            request.model_spec.name,
            context,
            lambda: self._status(request),
            "GetModelStatus",
        )

    def _status(self, request):
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        return status_response(self.manager.status(*_spec(request.model_spec)))

    def HandleReloadConfigRequest(self, request, context):
        def fail():
            raise ServingError(
                "UNIMPLEMENTED",
                "config reload is not supported by the embedded server; restart it with "
                "--model-config-file",
            )

        return self._serve("reload_config", "", context, fail, "HandleReloadConfigRequest")


def start_grpc_server(
    manager,
    metrics,
    host="127.0.0.1",
    port=8500,
    max_message_bytes=64 << 20,
    workers=16,
    max_instances=None,
    trimmer=None,
):
    """Start the gRPC server; (server, bound port). RuntimeError if it cannot bind.

    `workers` threads bound the calls in flight. A request tensor may hold at most
    `max_instances` rows and, materialised, 4 x `max_message_bytes` (a single value may fill a
    shape, so a small message can describe a large tensor).
    """
    limits = dict(
        max_instances=max_instances, max_tensor_bytes=4 * max_message_bytes, trimmer=trimmer
    )
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, metrics, **limits), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(manager, metrics, **limits), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if not bound:
        raise RuntimeError(f"cannot bind gRPC to {address}")
    server.start()
    return server, bound
