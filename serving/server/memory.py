"""Hand memory freed after large requests back to the operating system.

A large predict (thousands of instances as JSON) briefly takes hundreds of megabytes: Python
objects for the parsed document, then numpy arrays. Once they are freed, glibc's malloc keeps the
pages in its per-thread arenas for reuse, so the server's resident size stays near its peak for
good. Two remedies, glibc only (elsewhere this does nothing): a fixed mmap threshold, so large
blocks go back to the OS as soon as they are freed, and, after large requests, once the server
has been quiet for a moment, `malloc_trim(0)` for what the arenas still hold.
"""

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger("serving.server")


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 256 << 10


def _mallopt(param: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)))
    except (OSError, AttributeError):
        return False


class MemoryTrimmer:
    """`request_done()` after each large request; trims once no request came for `quiet_s`."""

    def __init__(self, quiet_s: float = 0.2):
        self.quiet_s = quiet_s
        self._trim = _malloc_trim()
        if self._trim is not None:
            # A fixed threshold: blocks of 256 KiB and more (a request's JSON text, its lists of
            # numbers, its arrays) are mmapped and unmapped when freed. glibc's default raises
            # the threshold after each such free, so later large blocks land in the arenas and
            # stay there; with it fixed, the memory test keeps ~100 MB less after large batches.
            _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        self._wake = threading.Event()
        self._stop = False
        self._thread = None
        if self._trim is not None:
            self._thread = threading.Thread(target=self._loop, name="malloc-trim", daemon=True)
            self._thread.start()

    @property
    def available(self) -> bool:
        return self._trim is not None

    def request_done(self):
        if self._trim is not None:
            self._wake.set()

    def _loop(self):
        while True:
            self._wake.wait()
            if self._stop:
                return
            self._wake.clear()
            while self._wake.wait(self.quiet_s):  # wait for a quiet moment
                self._wake.clear()
                if self._stop:
                    return
            try:
                self._trim(0)
            except Exception:  # noqa: BLE001 - trimming is an optimisation
                log.debug("malloc_trim failed", exc_info=True)

    def stop(self):
        self._stop = True
        self._wake.set()
