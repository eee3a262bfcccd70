"""The access log: one line per request (client, method, path, status, milliseconds).

`request(...)` only queues a tuple (about a microsecond); a writer thread wakes every `interval`
seconds (not at each request: a wake-up per request costs a thread switch and a turn of the GIL),
turns what is queued into LogRecords of the `serving.server.access` logger, formats them with the
server log's format and writes them to stderr in one write. Logging straight through a
StreamHandler from every request thread (LogRecord, format, the handler's lock, write, flush)
cost the server 10-25% of its throughput in `make bench-serve`.

Without a running AccessLog (a RestServer used on its own), `request` logs through the logger
directly.
"""

import logging
import queue
import sys
import threading
import time

LOGGER = "serving.server.access"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_logger = logging.getLogger(LOGGER)
_active = None  # the running AccessLog


def request(client: str, method: str, path: str, status, ms: float, note: str = ""):
    writer = _active
    if writer is not None:
        writer.records.put((time.time(), client, method, path, status, ms, note))
    elif _logger.isEnabledFor(logging.INFO):
        _logger.info(_line(client, method, path, status, ms, note))


def _line(client, method, path, status, ms, note) -> str:
    line = f"{client} {method} {path} {status} {ms:.2f} ms"
    return f"{line} ({note})" if note else line


class AccessLog:
    """Write the access log from a thread of its own, to `stream` (stderr)."""

    def __init__(self, stream=None, interval: float = 0.05, formatter=None):
        global _active
        self.interval = interval
        self.stream = stream or sys.stderr
        self.formatter = formatter or logging.Formatter(FORMAT)
        self.records: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="access-log", daemon=True)
        self._thread.start()
        _active = self

    def _write(self):
        while True:
            stopping = self._stop.wait(self.interval)
            lines = []
            while True:
                try:
                    created, *fields = self.records.get_nowait()
                except queue.Empty:
                    break
                record = _logger.makeRecord(
                    LOGGER, logging.INFO, __file__, 0, _line(*fields), None, None
                )
                record.created = created
                record.msecs = (created - int(created)) * 1000
                try:
                    lines.append(self.formatter.format(record))
                except Exception:  # noqa: BLE001 - a bad record never stops the log
                    continue
                if len(lines) >= 1000:
                    self._flush(lines)
                    lines = []
            self._flush(lines)
            if stopping:
                return

    def _flush(self, lines):
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def close(self, timeout: float = 2.0):
        global _active
        if _active is self:
            _active = None
        self._stop.set()
        self._thread.join(timeout)
