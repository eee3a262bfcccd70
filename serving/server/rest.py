"""TF Serving's REST API (g3doc/api/api_rest.md) on uvicorn (httptools/llhttp) and Starlette.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or columnar predict
    GET  /monitoring/prometheus/metrics                          Prometheus text format

Errors are `{"error": "..."}` with TF Serving's HTTP status for the error code.

Why this stack: llhttp (through httptools) is the strict parser Node.js ships; it refuses the
request-smuggling shapes (two Content-Length headers, Transfer-Encoding with Content-Length,
header folding, bare LF) that h11 and http.server accept. uvicorn runs it on asyncio, so an idle
or slow connection costs a socket, not a thread. What uvicorn lacks is added through its documented
extension point, a protocol class passed as `Config(http=...)` (`_Protocol` below): a deadline for
the request head (slow header senders are cut off with 408), limits on the request line (414) and
head size / header count (431), HTTP/0.9 and unknown versions (400 / 505), an idle timeout from the
moment a connection opens, a cap on open connections (503) and a bounded discard of a body the
server refused (413) so the client reads the answer instead of a reset.

Handlers (JSON parsing, the signature call) run on a fixed pool of worker threads, off the event
loop; the pool's size bounds the predicts in flight and so the memory they hold. Bodies are read
under a deadline (408) and a size limit (413), `Content-Encoding: gzip` is decompressed within the
same limit, other encodings get 415. Each request leaves one access log line (method, path,
status, milliseconds) on the `serving.server.access` logger (see accesslog.py).
"""

import asyncio
import collections
import logging
import re
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import unquote

import httptools
import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.server import accesslog, tensors
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
JSON = "application/json"
LARGE_REQUEST_BYTES = 1 << 20  # after requests this large, freed memory is handed back to the OS
REJECTED = "serving.rejected"  # scope key: the status the connection answered by itself


@dataclass
class Limits:
    """What one connection and one request may take."""

    max_body_bytes: int = 64 << 20
    idle_timeout_s: float = 30.0  # a connection with no request under way
    header_timeout_s: float = 10.0  # first byte of a request to the end of its headers
    body_timeout_s: float = 60.0  # end of the headers to the end of the body
    max_connections: int = 1024
    max_line_bytes: int = 65536  # request line (414 beyond)
    max_head_bytes: int = 65536  # request line + headers (431 beyond)
    max_headers: int = 100  # header fields (431 beyond)
    workers: int = 16  # threads running handlers: predicts in flight
    max_instances: int | None = 1024


# ---- the connection: uvicorn's httptools protocol with the limits it lacks ---------------------

_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/(\d)\.(\d)\r?")
_HTTP09_LINE = re.compile(rb"[A-Za-z]+ \S+\r?")


def _raw_response(status: int, message: str) -> bytes:
    body = tensors.dumps({"error": message})
    reason = _REASONS.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Payload Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class _Protocol(HttpToolsProtocol):
    """One HTTP/1.1 connection. Subclassed per server with `limits` set (see RestServer)."""

    limits: Limits = Limits()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._line = b""  # the request line's bytes until its end is seen
        self._line_checked = False
        self._headers_seen = 0
        self._head_size = 0
        self._feeding = False
        self._head_timer = None
        self._body_timer = None
        self._discarded = 0
        self._closed = False
        self._lingering = False

    # -- connection --

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets this only on sockets made with proto=IPPROTO_TCP. Without it, Nagle
            # holds the body behind the unacknowledged headers: 40 ms a keep-alive request.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(_Transport(transport, self))
        if len(self.connections) > self.limits.max_connections:
            self._reject(503, "Too many open connections")
            return
        # uvicorn arms its keep-alive timer only after a first response; a connection that never
        # sends anything is closed after the same idle time.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout_s, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc):
        self._closed = True
        self._cancel_timers()
        super().connection_lost(exc)

    def _linger(self):
        """The answer is out but the request's body is still arriving (a refused upload):
        read and drop it for a while, then close, so the client reads the answer instead of a
        connection reset. Bounded by time (2 s) and bytes (see on_body)."""
        if self._lingering:
            self._hard_close()
            return
        self._lingering = True
        if self.transport.raw.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(2.0, self._hard_close)

    def _hard_close(self):
        self._closed = True
        self.transport.flush()
        self.transport.raw.close()

    def _cancel_timers(self):
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _reject(self, status: int, message: str):
        """Answer a request the parser or a limit refused, and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        method = path = "-"
        if self.scope and "method" in self.scope:
            method, path = self.scope["method"], self.scope.get("path", "-")
        elif self._line:
            parts = self._line.split(b" ", 2)
            method = parts[0][:16].decode("latin-1")
            path = parts[1][:200].decode("latin-1") if len(parts) > 1 else "-"
        accesslog.request(_peer(self.client), method, path, status, 0.0, message)
        if self.scope is not None:
            self.scope[REJECTED] = status  # the handler, if one runs, logs no second line
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self.transport.close()  # mid-response: nothing more can be said
                return
            # The handler, if one runs, finds the connection gone and answers nothing.
            cycle.response_started = cycle.response_complete = cycle.disconnected = True
            cycle.message_event.set()
        try:
            self.transport.write(_raw_response(status, message))
        finally:
            self.transport.close()

    # -- bytes in --

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._closed:
            return
        if self._in_head:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout_s, self._head_timed_out
                )
            self._head_bytes += len(data)
            if not self._line_checked and self._check_request_line(data):
                return
        self._feeding = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades here; the request is served as plain HTTP/1.1
        except httptools.HttpParserInvalidMethodError:
            line_ok = self._line_checked and _REQUEST_LINE.match(self._line)
            self._reject(501 if line_ok else 400, "Unsupported or malformed HTTP method")
        except httptools.HttpParserError as exc:
            reason = str(exc) or "malformed request"
            if "HTTP version" in reason:
                self._reject(505, "HTTP version not supported")
            elif "Transfer-Encoding" in reason and "Content-Length" not in reason:
                self._reject(501, f"Transfer-Encoding not supported: {reason}")
            else:
                self._reject(400, f"Malformed HTTP request: {reason}")
        finally:
            self._feeding = False
        if self._in_head and self._head_bytes > self.limits.max_head_bytes and not self._closed:
            # Still no end of headers after this many bytes: refuse before llhttp buffers more.
            self._reject(431, "Request header fields too large")

    def _check_request_line(self, data: bytes) -> bool:
        """Validate the request line once it is complete; True when the request was refused."""
        limit = self.limits.max_line_bytes
        self._line += data[: limit + 2 - len(self._line)]
        end = self._line.find(b"\n")
        if end < 0:
            if len(self._line) > limit:
                self._reject(414, f"Request line longer than {limit} bytes")
                return True
            return False
        self._line_checked = True
        self._line = line = self._line[:end]
        m = _REQUEST_LINE.fullmatch(line)
        if m is None:
            if _HTTP09_LINE.fullmatch(line):
                self._reject(400, "HTTP/0.9 requests are not supported (no HTTP version)")
            else:
                self._reject(400, "Malformed HTTP request line")
            return True
        if (m[3], m[4]) not in ((b"1", b"1"), (b"1", b"0")):
            self._reject(505, f"HTTP version {m[3].decode()}.{m[4].decode()} not supported")
            return True
        return False

    def _head_timed_out(self):
        self._head_timer = None
        if self._in_head and not self._closed:
            self._reject(408, "Timed out reading the request headers")

    def _body_timed_out(self):
        # The body did not arrive in time: 408 if nothing was answered yet (the handler waiting
        # for it then finds the client gone), else the connection is closed (a refused upload
        # still arriving).
        self._body_timer = None
        if self._closed or self._in_head:
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self._reject(408, "Timed out reading the request body")
        else:
            self._closed = True
            self.transport.close()

    # -- parser callbacks --

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._headers_seen = 0
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers_seen += 1
        self._head_size += len(name) + len(value) + 4
        if self._headers_seen <= self.limits.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._closed:
            return
        if self._headers_seen > self.limits.max_headers:
            self._reject(431, f"More than {self.limits.max_headers} header fields")
            return
        if self._head_size > self.limits.max_head_bytes:
            self._reject(431, "Request header fields too large")
            return
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._reject(505, f"HTTP version {version} not supported")
            return
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timed_out)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._closed:
            return
        if self.cycle.response_complete:
            self._discarded += len(body)  # a refused body still arriving: dropped, up to a bound
            if self._discarded > 2 * self.limits.max_body_bytes:
                self._closed = True
                self.transport.close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._closed:
            return
        if self._lingering:
            self._hard_close()
            return
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._line = b""
        self._discarded = 0
        # A request that starts in the middle of this chunk: its first bytes were not seen here,
        # so its request line is left to the parser (llhttp still refuses what is malformed).
        self._line_checked = self._feeding

    def on_response_complete(self) -> None:
        if self._closed:
            return
        super().on_response_complete()


class _Transport:
    """The connection's transport as uvicorn sees it.

    uvicorn writes a response's status line and headers, then its body, in two writes: two
    send() calls. The head is held until the body follows (or the loop's next turn), so a response
    leaves in one. Closing while a refused body is still arriving lingers (see _Protocol._linger)
    instead of resetting the connection."""

    __slots__ = ("raw", "_protocol", "_held")

    def __init__(self, raw, protocol):
        self.raw = raw
        self._protocol = protocol
        self._held = None

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def write(self, data):
        if self._held is not None:
            data = self._held + data
            self._held = None
        elif data.endswith(b"\r\n\r\n") and data.startswith(b"HTTP/1.1 "):
            self._held = data
            self._protocol.loop.call_soon(self.flush)
            return
        self.raw.write(data)

    def flush(self):
        if self._held is not None:
            data, self._held = self._held, None
            if not self.raw.is_closing():
                self.raw.write(data)

    def write_eof(self):
        self.flush()
        self.raw.write_eof()

    def close(self):
        self.flush()
        p = self._protocol
        if not p._closed and not p._in_head and p.cycle is not None and p.cycle.response_complete:
            p._linger()
        else:
            self.raw.close()


def _peer(client) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


# ---- the application: routing, bodies, handlers ------------------------------------------------


class Workers:
    """A fixed pool of threads running blocking calls for the event loop.

    `await workers.run(fn, *args)`: like loop.run_in_executor, with less machinery between the
    loop and the thread (no concurrent.futures.Future chained to an asyncio one; the result comes
    back through one call_soon_threadsafe), and the most recently idle thread takes the next call:
    under light load one warm thread (its CPU caches, TensorFlow's per-thread state) serves
    request after request instead of all of them in turn.
    """

    def __init__(self, n: int, name: str = "rest"):
        self._lock = threading.Lock()
        self._idle: list = []  # a stack of [event, job] slots of idle threads
        self._pending: collections.deque = collections.deque()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    async def run(self, fn, *args):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = (loop, future, fn, args)
        with self._lock:
            if self._idle:
                slot = self._idle.pop()
                slot[1] = job
                slot[0].set()
            else:
                self._pending.append(job)
        return await future

    def _work(self):
        slot = [threading.Event(), None]
        while True:
            with self._lock:
                if self._stopping:
                    return
                job = self._pending.popleft() if self._pending else None
                if job is None:
                    slot[0].clear()
                    self._idle.append(slot)
            if job is None:
                slot[0].wait()
                job, slot[1] = slot[1], None
                if job is None:
                    return  # shutdown
            loop, future, fn, args = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                result, error = None, exc
            del job, args
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: the server is stopping
                pass
            del future, result, error

    def shutdown(self):
        with self._lock:
            self._stopping = True
            idle, self._idle = self._idle, []
        for slot in idle:
            slot[0].set()


def _settle(future, result, error):
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _TooLarge(ServingError):
    def __init__(self, n, limit, what="Request body"):
        super().__init__(
            "RESOURCE_EXHAUSTED",
            f"{what} of {n} bytes exceeds the limit of {limit} bytes",
            http_status=413,
        )


class RestApi:
    """The request handlers; `app` is the ASGI application serving them: every request becomes
    a Starlette Request, `endpoint` answers it with a Starlette Response. There is no Starlette
    router or middleware in between: routing is TF Serving's own table (the regexes above), and
    `endpoint` answers every failure itself."""

    def __init__(self, manager, metrics, limits: Limits, trimmer=None):
        self.manager = manager
        self.metrics = metrics
        self.limits = limits
        self.trimmer = trimmer
        self.workers = Workers(limits.workers)
        self.app = self._asgi

    async def _asgi(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        scope = request.scope
        method = scope["method"]
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        status, api, model, code = 500, "", "", "OK"
        try:
            body = await self._read_body(request)
            if path == METRICS_PATH and method in ("GET", "HEAD"):
                text = await self.workers.run(self._metrics_text)
                status = 200
                response = Response(text, 200, media_type="text/plain; version=0.0.4")
            else:
                encoding = request.headers.get("content-encoding")
                status, payload, api, model, code = await self.workers.run(
                    self.handle, method, path, body, encoding
                )
                response = Response(payload, status, media_type=JSON)
        except ClientDisconnect:
            status, code = scope.get(REJECTED, 499), "CANCELLED"
            if status == 408:
                code = "DEADLINE_EXCEEDED"
            response = Response(b"", 499)
        except ServingError as err:  # from reading the body: 413
            status, code = err.http_status, err.code
            headers = {"connection": "close"} if status == 408 else None
            response = Response(_error_body(err), status, headers, media_type=JSON)
        elapsed = time.perf_counter() - started
        if REJECTED not in scope:  # else the connection's own answer was logged
            accesslog.request(_peer(scope.get("client")), method, path, status, elapsed * 1e3)
        if api and self.metrics is not None:
            known = model if self.manager.has_model(model) else ""
            self.metrics.observe(known or "unknown", api, "REST", code, elapsed)
        return response

    async def _read_body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and int(length) > limit:  # llhttp has checked it is a number
            raise _TooLarge(int(length), limit)
        if length == "0" or (length is None and "transfer-encoding" not in request.headers):
            return b""
        # The body's deadline is the connection's (_Protocol._body_timed_out answers 408).
        parts, total, receive = [], 0, request.receive
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise _TooLarge(total, limit)
            parts.append(chunk)
            if not message.get("more_body", False):
                return parts[0] if len(parts) == 1 else b"".join(parts)

    def _metrics_text(self) -> bytes:
        return self.metrics.render().encode() if self.metrics is not None else b""

    # -- in a worker thread --

    def handle(self, method, path, body, encoding):
        """(HTTP status, JSON bytes, api, model, code) for one request; never raises."""
        ctx = {"api": "", "model": ""}
        size = len(body)
        try:
            if encoding is not None:
                body = self._decode(encoding, body)
                size = max(size, len(body))
            doc = self._route(method, path, body, ctx)
            return 200, tensors.dumps(doc), ctx["api"], ctx["model"], "OK"
        except Exception as exc:  # noqa: BLE001 - every failure is answered, never raised
            err = from_exception(exc)
            if err.code in ("INTERNAL", "UNKNOWN"):
                log.exception("%s %s failed", method, path)
            return err.http_status, _error_body(err), ctx["api"], ctx["model"], err.code
        finally:
            del body
            if self.trimmer is not None and size >= LARGE_REQUEST_BYTES:
                self.trimmer.request_done()

    def _decode(self, encoding: str, body: bytes) -> bytes:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        for coding in reversed(codings):  # applied in order listed, undone in reverse
            if coding == "identity":
                continue
            if coding not in ("gzip", "x-gzip"):
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"Unsupported Content-Encoding: {coding} (supported: gzip, identity)",
                    http_status=415,
                )
            body = gunzip(body, self.limits.max_body_bytes)
        return body

    def _route(self, method, path, body, ctx):
        """The response document for one request; raises ServingError."""
        manager = self.manager
        if method == "POST":
            m = _PREDICT.fullmatch(path)
            if m:
                name, version, label, verb = m.groups()
                ctx["api"], ctx["model"] = verb.lower(), unquote(name)
                version, label = _version(version), unquote(label) if label else None
                if ctx["api"] != "predict":
                    raise ServingError(
                        "UNIMPLEMENTED",
                        f"{ctx['api']} is not supported by the embedded server (it needs "
                        "tf.Example signatures); use :predict",
                    )
                return self._predict(ctx["model"], version, label, body)
        elif method in ("GET", "HEAD"):
            m = _STATUS.fullmatch(path)
            if m:
                name, version, label, sub = m.groups()
                if not name:
                    raise invalid("Missing model name in request.")
                ctx["api"] = "get_model_metadata" if sub else "get_model_status"
                ctx["model"] = name = unquote(name)
                version, label = _version(version), unquote(label) if label else None
                if sub:
                    return metadata_json(manager, name, version, label)
                return status_json(manager, name, version, label)
        if path.lower().startswith("/v1/"):
            raise invalid(f"Malformed request: {method} {path}")
        raise ServingError("NOT_FOUND", f"Not found: {method} {path}")

    def _predict(self, name, version, label, body):
        doc = tensors.parse_json_body(body)
        del body
        signature = tensors.signature_name_from_json(doc)
        servable = self.manager.servable(name, version, label)
        runner = servable.runner(signature, code="INVALID_ARGUMENT")
        inputs, fmt = tensors.inputs_from_json(doc, runner.inputs, self.limits.max_instances)
        del doc  # the parsed JSON is the largest thing a request holds: free it before the call
        outputs = runner.run(inputs)
        del inputs
        return tensors.outputs_to_json(outputs, fmt)

    def close(self):
        self.workers.shutdown()


def gunzip(data: bytes, limit: int) -> bytes:
    """A gzip body (one or more members) decompressed, refused (413) past `limit` bytes."""
    out, total = [], 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data, limit + 1 - total)
        except zlib.error as exc:
            raise invalid(f"Malformed gzip request body: {exc}") from None
        total += len(chunk)
        if total > limit or d.unconsumed_tail:
            raise _TooLarge(f"more than {limit}", limit, "Decompressed request body")
        if not d.eof:
            raise invalid("Malformed gzip request body: truncated")
        out.append(chunk)
        data = d.unused_data
    return b"".join(out)


def _error_body(err: ServingError) -> bytes:
    return tensors.dumps({"error": err.message})


def _version(text):
    if text is None:
        return None
    value = int(text)
    if value > _INT64_MAX:
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return value


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


class RestServer:
    """uvicorn serving the API on its own thread and event loop; the socket is bound at once."""

    def __init__(
        self, manager, metrics, host="127.0.0.1", port=8501, limits=None, trimmer=None, **legacy
    ):
        limits = limits or Limits()
        if "max_body_bytes" in legacy:
            limits.max_body_bytes = legacy.pop("max_body_bytes")
        if "timeout_s" in legacy:
            limits.idle_timeout_s = legacy.pop("timeout_s")
        if legacy:
            raise TypeError(f"unexpected arguments: {sorted(legacy)}")
        self.limits = limits
        self.api = RestApi(manager, metrics, limits, trimmer)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        protocol = type("Protocol", (_Protocol,), {"limits": limits})
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        config = uvicorn.Config(
            self.api.app,
            http=protocol,
            loop="asyncio",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            server_header=False,
            headers=[("server", "TensorFlowServing-embedded")],
            timeout_keep_alive=limits.idle_timeout_s,
            timeout_graceful_shutdown=2,
            backlog=1024,
        )
        self.server = uvicorn.Server(config)
        self._thread = None

    def start(self, timeout=30.0):
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="rest", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the REST server did not start")
            time.sleep(0.01)

    def stop(self):
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.api.close()
