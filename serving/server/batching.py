"""Server-side batching: concurrent requests to one signature run as one batch.

Like TF Serving's `--enable_batching`: a request joins the open batch of its signature; the batch
runs when it holds `max_batch_size` rows or `batch_timeout` has passed since its first request,
whichever comes first. Outputs are split back by row. Requests that cannot share a batch (more
rows than the limit, inputs of other shapes, outputs without a batch dimension) run alone, and a
batch that fails on one bad request is rerun request by request, so one bad input never fails its
neighbours.
"""

import queue
import threading
import time

import numpy as np

from serving.server.errors import ServingError


class _Task:
    __slots__ = ("inputs", "rows", "done", "result", "error")

    def __init__(self, inputs, rows):
        self.inputs = inputs
        self.rows = rows
        self.done = threading.Event()
        self.result = None
        self.error = None


def batch_rows(inputs: dict) -> int | None:
    """The shared size of dimension 0 of every input, or None when they do not share one."""
    rows = {arr.shape[0] if arr.ndim else None for arr in inputs.values()}
    if len(rows) != 1:
        return None
    return rows.pop()


def _signature(inputs: dict):
    return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))


class Batcher:
    """Queue plus one scheduler thread for one signature of one loaded version."""

    def __init__(
        self,
        run,
        max_batch_size=32,
        timeout_s=0.001,
        max_enqueued_batches=100,
        name="",
        on_batch=None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run = run
        self.max_batch_size = max_batch_size
        self.timeout_s = max(0.0, timeout_s)
        self.max_enqueued = max_batch_size * max_enqueued_batches
        self.name = name
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = None
        self._carry = None
        self.on_batch = on_batch  # called with the number of requests each batch served

    def submit(self, inputs: dict) -> dict:
        rows = batch_rows(inputs)
        if not rows or rows > self.max_batch_size:
            return self._run(inputs)
        task = _Task(inputs, rows)
        with self._lock:
            if self._closed:
                return self._run(inputs)
            if self._queue.qsize() >= self.max_enqueued:
                raise ServingError(
                    "UNAVAILABLE",
                    "The batch scheduling queue to which this task was submitted is full",
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name=f"batcher-{self.name}", daemon=True
                )
                self._thread.start()
            self._queue.put(task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def close(self):
        """Stop taking requests; tasks already queued still run. Later submits run unbatched."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)

    # ---- scheduler thread ----

    def _loop(self):
        while True:
            first = self._carry if self._carry is not None else self._queue.get()
            self._carry = None
            if first is None:
                return
            tasks, rows = [first], first.rows
            key = _signature(first.inputs)
            deadline = time.monotonic() + self.timeout_s
            stop = False
            while rows < self.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if rows + nxt.rows > self.max_batch_size or _signature(nxt.inputs) != key:
                    self._carry = nxt
                    break
                tasks.append(nxt)
                rows += nxt.rows
            self._execute(tasks, rows)
            if stop:
                # Drain what was queued before close(), then exit.
                while self._carry is not None or not self._queue.empty():
                    task = self._carry if self._carry is not None else self._queue.get_nowait()
                    self._carry = None
                    if task is not None:
                        self._execute([task], task.rows)
                return

    def _execute(self, tasks, rows):
        if len(tasks) == 1:
            self._run_one(tasks[0])
            self._report(1)
            return
        try:
            merged = {
                name: np.concatenate([t.inputs[name] for t in tasks], axis=0)
                for name in tasks[0].inputs
            }
            outputs = self._run(merged)
            if any(arr.ndim == 0 or arr.shape[0] != rows for arr in outputs.values()):
                raise _Unsplittable()
        except (ServingError, _Unsplittable):
            for task in tasks:
                self._run_one(task)
                self._report(1)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
            for task in tasks:
                task.error = exc
                task.done.set()
            return
        self._report(len(tasks))
        start = 0
        for task in tasks:
            stop = start + task.rows
            task.result = {name: arr[start:stop] for name, arr in outputs.items()}
            start = stop
            task.done.set()

    def _report(self, requests):
        if self.on_batch is not None:
            try:
                self.on_batch(requests)
            except Exception:  # noqa: BLE001 - metrics never break serving
                pass

    def _run_one(self, task):
        try:
            task.result = self._run(task.inputs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the requesting thread
            task.error = exc
        task.done.set()


class _Unsplittable(Exception):
    pass
