"""TF Serving's REST API (g3doc/api/api_rest.md) on the standard library's HTTP server.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or columnar predict
    GET  /monitoring/prometheus/metrics                          Prometheus text format

Errors are `{"error": "..."}` with TF Serving's HTTP status for the error code. The server
protects itself: a cap on body size (413), on time to send the body (408) and on idle sockets,
a cap on open connections (503 beyond it), and every handler failure becomes a JSON error.
"""

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from serving.server import tensors
from serving.server.errors import ServingError, from_exception, invalid

log = logging.getLogger("serving.server.rest")

METRICS_PATH = "/monitoring/prometheus/metrics"
_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1


class _ClientGone(Exception):
    """The client closed the connection before sending its whole request."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TensorFlowServing-embedded"
    sys_version = ""
    timeout = 30  # per socket operation; set per server below

    # ---- plumbing ----

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code, message=None, explain=None):
        """Errors found by http.server itself (bad request line, huge headers): JSON, then close."""
        self.close_connection = True
        # http.server answers an unparsable request line HTTP/0.9-style (body, no status line);
        # nobody speaks 0.9 any more, so answer with a proper status line.
        self.request_version = "HTTP/1.1"
        try:
            reason = self.responses.get(code, ("error",))[0]
            self._send_json(code, {"error": message or reason})
        except OSError:
            pass

    def setup(self):
        super().setup()
        # Responses go out in one write; without this, Nagle + delayed ACK add ~40 ms to each
        # keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, code: int, body: bytes, content_type: str):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()  # status line, headers and body in a single send

    def _send_json(self, code: int, doc):
        self._send(code, tensors.dumps(doc), "application/json")

    def _read_body(self) -> bytes:
        limit = self.server.max_body_bytes
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding and encoding != "identity":
            if encoding != "chunked":
                self.close_connection = True
                raise ServingError("UNIMPLEMENTED", f"Transfer-Encoding {encoding!r} not supported")
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise invalid(f"Invalid Content-Length: {length!r}") from None
        if n > limit:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise _too_large(n, limit)
        return self._read_exact(n, time.monotonic() + self.server.body_timeout_s)

    def _read_exact(self, n: int, deadline: float) -> bytes:
        parts, remaining = [], n
        while remaining > 0:
            if time.monotonic() > deadline:
                self.close_connection = True
                raise ServingError(
                    "DEADLINE_EXCEEDED", "Timed out reading the request body", http_status=408
                )
            chunk = self.rfile.read1(min(remaining, 1 << 20))
            if not chunk:
                raise _ClientGone()
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _read_chunked(self, limit: int) -> bytes:
        deadline = time.monotonic() + self.server.body_timeout_s
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1026)
            if not line:
                raise _ClientGone()
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise invalid("Malformed chunked request body") from None
            if size == 0:
                while True:  # trailer headers, up to the blank line
                    trailer = self.rfile.readline(65537)
                    if not trailer:
                        raise _ClientGone()
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise _too_large(total, limit)
            parts.append(self._read_exact(size, deadline))
            self._read_exact(2, deadline)  # CRLF after the chunk

    # ---- requests ----

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_HEAD(self):
        self._handle()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _handle(self):
        started = time.monotonic()
        self._api, self._model, code = "", "", "OK"
        try:
            body = self._read_body()
            path = urlsplit(self.path).path
            if path == METRICS_PATH and self.command in ("GET", "HEAD"):
                text = self.server.metrics.render().encode() if self.server.metrics else b""
                self._send(200, text, "text/plain; version=0.0.4")
                return
            self._send_json(200, self._route(self.command, path, body))
        except _ClientGone:
            self.close_connection = True
            code = "CANCELLED"
        except TimeoutError:
            self.close_connection = True
            code = "DEADLINE_EXCEEDED"
            self._try_send_error(
                ServingError("DEADLINE_EXCEEDED", "Timed out reading the request", http_status=408)
            )
        except ConnectionError:  # the client went away while we answered
            self.close_connection = True
            code = "CANCELLED"
        except Exception as exc:  # noqa: BLE001 - every failure is answered, never raised
            err = from_exception(exc)
            if err.code in ("INTERNAL", "UNKNOWN"):
                log.exception("%s %s failed", self.command, self.path)
            code = err.code
            self._try_send_error(err)
        finally:
            if self._api and self.server.metrics is not None:
                known = self._model if self._model in self.server.manager.model_names() else ""
                self.server.metrics.observe(
                    known or "unknown", self._api, "REST", code, time.monotonic() - started
                )

    def _try_send_error(self, err: ServingError):
        try:
            self._send_json(err.http_status, {"error": err.message})
            if err.http_status == 413:
                self._discard_unread_body()
        except OSError:
            self.close_connection = True

    def _discard_unread_body(self, seconds=2.0):
        """After answering 413 without reading the body, read and drop what the client is still
        sending for a moment, so it gets to read the answer instead of a connection reset."""
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        budget = 4 * self.server.max_body_bytes
        self.connection.settimeout(0.5)
        while budget > 0 and time.monotonic() < deadline:
            try:
                chunk = self.connection.recv(1 << 16)
            except OSError:
                break
            if not chunk:
                break
            budget -= len(chunk)

    def _route(self, method, path, body):
        """The response document for one request; raises ServingError."""
        manager = self.server.manager
        if method == "POST":
            m = _PREDICT.fullmatch(path)
            if m:
                name, version, label, verb = m.groups()
                self._api, self._model = verb.lower(), unquote(name)
                version, label = _version(version), unquote(label) if label else None
                if self._api != "predict":
                    raise ServingError(
                        "UNIMPLEMENTED",
                        f"{self._api} is not supported by the embedded server (it needs "
                        "tf.Example signatures); use :predict",
                    )
                return self._predict(manager, self._model, version, label, body)
        elif method in ("GET", "HEAD"):
            m = _STATUS.fullmatch(path)
            if m:
                name, version, label, sub = m.groups()
                if not name:
                    raise invalid("Missing model name in request.")
                self._api = "get_model_metadata" if sub else "get_model_status"
                self._model = name = unquote(name)
                version, label = _version(version), unquote(label) if label else None
                if sub:
                    return metadata_json(manager, name, version, label)
                return status_json(manager, name, version, label)
        if path.lower().startswith("/v1/"):
            raise invalid(f"Malformed request: {method} {path}")
        raise ServingError("NOT_FOUND", f"Not found: {method} {path}")

    def _predict(self, manager, name, version, label, body):
        doc = tensors.parse_json_body(body)
        signature = tensors.signature_name_from_json(doc)
        servable = manager.servable(name, version, label)
        runner = servable.runner(signature, code="INVALID_ARGUMENT")
        inputs, fmt = tensors.inputs_from_json(doc, runner.inputs)
        outputs = runner.run(inputs)
        return tensors.outputs_to_json(outputs, fmt)


def _version(text):
    if text is None:
        return None
    value = int(text)
    if value > _INT64_MAX:
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return value


def _too_large(n, limit):
    return ServingError(
        "RESOURCE_EXHAUSTED",
        f"Request body of {n} bytes exceeds the limit of {limit} bytes",
        http_status=413,
    )


# ---- JSON views of the status and metadata protos (shared with gRPC's protos) ----------------


def status_json(manager, name, version, label) -> dict:
    from google.protobuf import json_format

    from serving.server.grpc_api import status_response

    response = status_response(manager.status(name, version, label))
    return json_format.MessageToDict(
        response, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )


def metadata_json(manager, name, version, label) -> dict:
    from google.protobuf import json_format

    from serving.server.grpc_api import signature_def_map

    servable = manager.servable(name, version, label)
    opts = dict(always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    return {
        "model_spec": {
            "name": servable.name,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {
            "signature_def": json_format.MessageToDict(signature_def_map(servable), **opts)
        },
    }


# ---- the server ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address, handler, *, manager, metrics, max_body_bytes, body_timeout_s, max_connections
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.manager = manager
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            body = json.dumps({"error": "Too many open connections"}).encode()
            try:
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class RestServer:
    def __init__(
        self,
        manager,
        metrics,
        host="127.0.0.1",
        port=8501,
        max_body_bytes=64 << 20,
        timeout_s=30.0,
        max_connections=256,
    ):
        handler = type("Handler", (_Handler,), {"timeout": timeout_s})
        self.httpd = _Server(
            (host, port),
            handler,
            manager=manager,
            metrics=metrics,
            max_body_bytes=max_body_bytes,
            body_timeout_s=max(timeout_s, 1.0) * 2,
            max_connections=max_connections,
        )
        self.port = self.httpd.server_address[1]
        self._thread = None

    def start(self):
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="rest", daemon=True
        )
        self._thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
