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
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.server.errors import ServingError, from_exception, grpc_code, invalid

log = logging.getLogger("serving.server.grpc")

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


def _spec(model_spec):
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


class _Base:
    def __init__(self, manager, metrics):
        self.manager = manager
        self.metrics = metrics

    def _serve(self, api, model_name, context, fn):
        """fn()'s response, or the call aborted with the TF Serving status of its failure."""
        started, err = time.monotonic(), None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a gRPC status
            err = from_exception(exc)
            if err.code in ("INTERNAL", "UNKNOWN"):
                log.exception("%s failed", api)
        finally:
            if self.metrics is not None:
                known = model_name if model_name in self.manager.model_names() else "unknown"
                code = err.code if err is not None else "OK"
                self.metrics.observe(known, api, "GRPC", code, time.monotonic() - started)
        context.abort(grpc_code(err.code), err.message)


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    def Predict(self, request, context):
        return self._serve(
            "predict", request.model_spec.name, context, lambda: self._predict(request)
        )

    def _predict(self, request):
        import tensorflow as tf

        name, version, label = _spec(request.model_spec)
        servable = self.manager.servable(name, version, label)
        runner = servable.runner(request.model_spec.signature_name)
        inputs = {}
        for key, proto in request.inputs.items():
            try:
                inputs[key] = tf.make_ndarray(proto)
            except Exception as exc:  # noqa: BLE001
                raise invalid(f"Failed to convert input tensor {key!r}: {exc}") from None
        outputs = runner.run(inputs, list(request.output_filter))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = runner.key
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        return self._serve(
            "get_model_metadata", request.model_spec.name, context, lambda: self._metadata(request)
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

        return self._serve(api, request.model_spec.name, context, fail)

    def Classify(self, request, context):
        return self._unimplemented("classify", request, context)

    def Regress(self, request, context):
        return self._unimplemented("regress", request, context)

    def MultiInference(self, request, context):
        def fail():
            raise ServingError("UNIMPLEMENTED", "MultiInference is not supported")

        return self._serve("multi_inference", "", context, fail)


class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):
    def GetModelStatus(self, request, context):
        return self._serve(
            "get_model_status", request.model_spec.name, context, lambda: self._status(request)
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

        return self._serve("reload_config", "", context, fail)


def start_grpc_server(
    manager, metrics, host="127.0.0.1", port=8500, max_message_bytes=64 << 20, workers=16
):
    """Start the gRPC server; (server, bound port). RuntimeError if it cannot bind."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(manager, metrics), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if not bound:
        raise RuntimeError(f"cannot bind gRPC to {address}")
    server.start()
    return server, bound
