"""Errors as TF Serving reports them: a canonical status code name and a message.

The same error leaves the REST API as an HTTP status (TF Serving's http_server.cc mapping) with a
`{"error": "..."}` body, and the gRPC API as the matching `grpc.StatusCode`.
"""

import re

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
            return ServingError(name, op_message(exc.message))
    except ImportError:  # pragma: no cover - the embedded server always has TensorFlow
        pass
    if isinstance(exc, (TypeError, ValueError)):
        return invalid(_first_line(str(exc)))
    if isinstance(exc, MemoryError):
        return ServingError("RESOURCE_EXHAUSTED", "out of memory while serving the request")
    return ServingError("INTERNAL", f"{type(exc).__name__}: {_first_line(str(exc))}")


# What TF wraps around an op's own message when a graph function fails:
#   Graph execution error:\n\nDetected at node map/while/DecodeImage defined at (most recent
#   call last):\n  File "...", line 7, in f\n\n<the op's message>\n\t [[{{node ...}}]]
#   [Op:__inference_f_64]
# and in eager mode: {{function_node __wrapped__DecodeImage_device_...}} <message> [Op:DecodeImage]
_TF_NOISE = [
    re.compile(r"^\s*Graph execution error:\s*", re.MULTILINE),
    re.compile(r"^\s*Detected at node .*?(?:\(most recent call last\):)?\s*$", re.MULTILINE),
    re.compile(r"\[\[\{\{node [^}]*\}\}\]\]"),
    re.compile(r"\{\{function_node [^}]*\}\}"),
    re.compile(r"\[Op:[^\]]*\]"),
    re.compile(r"\s*\(defined at [^)]*\)"),
    re.compile(r"<stack traces unavailable>"),
]
_ROOT_ERRORS = re.compile(
    r"^\s*\d+ root error\(s\) found\.\s*$"
    r"|^\s*\(\d+\) [A-Z_]+:\s*"
    r"|^\s*\d+ (?:successful operations?|derived errors? ignored)\.?.*$",
    re.MULTILINE,
)


def op_message(text: str, limit: int = 2000) -> str:
    """The failing op's own message out of a TF error: no traceback, node or op tags."""
    for pattern in _TF_NOISE:
        text = pattern.sub("", text)
    text = _ROOT_ERRORS.sub("", text)
    # What is left of the traceback are indented `File "...", line N, in f` lines and the source
    # lines under them; the op's message is the unindented text.
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith((" ", "\t")) and "Additional GRPC" not in line
    ]
    if not lines:
        return _first_line(text, limit)
    out = []
    for line in lines:  # several root errors repeat the same message: keep each once
        if line not in out:
            out.append(line)
    return " ".join(out)[:limit]


def _first_line(text: str, limit: int = 2000) -> str:
    text = text.strip()
    # TensorFlow messages carry a long op/graph trace after the first lines; keep the useful part.
    lines = [line for line in text.splitlines() if line.strip()]
    head = " ".join(lines[:3]) if lines else text
    return head[:limit]


def grpc_code(code: str):
    import grpc

    return getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)
