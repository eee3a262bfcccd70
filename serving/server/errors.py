"""Errors as TF Serving reports them: a canonical status code name and a message.

The same error leaves the REST API as an HTTP status (TF Serving's http_server.cc mapping) with a
`{"error": "..."}` body, and the gRPC API as the matching `grpc.StatusCode`.
"""

# Canonical code name -> HTTP status, as TF Serving's ToHTTPStatusCode maps them.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request or load failure with a canonical code (`INVALID_ARGUMENT`, `NOT_FOUND`, ...)."""

    def __init__(self, code: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code if code in HTTP_STATUS else "UNKNOWN"
        self.message = message
        # A few transport-level errors (413 body too large, 408 slow body) have no canonical code
        # of their own; they carry the HTTP status explicitly.
        self.http_status = http_status or HTTP_STATUS[self.code]

    def __str__(self):
        return f"{self.code}: {self.message}"


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def from_exception(exc: BaseException) -> ServingError:
    """Map anything raised while serving to a ServingError; TF op errors keep their code."""
    if isinstance(exc, ServingError):
        return exc
    try:
        import tensorflow as tf

        if isinstance(exc, tf.errors.OpError):
            from tensorflow.core.protobuf import error_codes_pb2

            name = error_codes_pb2.Code.Name(exc.error_code)
            return ServingError(name, _first_line(exc.message))
    except ImportError:  # pragma: no cover - the embedded server always has TensorFlow
        pass
    if isinstance(exc, (TypeError, ValueError)):
        return invalid(_first_line(str(exc)))
    if isinstance(exc, MemoryError):
        return ServingError("RESOURCE_EXHAUSTED", "out of memory while serving the request")
    return ServingError("INTERNAL", f"{type(exc).__name__}: {_first_line(str(exc))}")


def _first_line(text: str, limit: int = 2000) -> str:
    text = text.strip()
    # TensorFlow messages carry a long op/graph trace after the first lines; keep the useful part.
    lines = [line for line in text.splitlines() if line.strip()]
    head = " ".join(lines[:3]) if lines else text
    return head[:limit]


def grpc_code(code: str):
    import grpc

    return getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)
