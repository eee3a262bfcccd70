"""Prometheus metrics in the text exposition format, named as TF Serving names them.

TF Serving exports `/tensorflow/serving/request_count` (labels model_name, status) and
`/tensorflow/serving/request_latency` (a histogram in microseconds, labels model_name, API,
entrypoint); its Prometheus exporter turns the slashes into colons. The embedded server keeps
those names and adds `status` to the latency histogram, plus model load and availability series.
"""

import threading

# TF Serving's request_latency buckets: exponential, 10us * 1.8^k.
LATENCY_BUCKETS_US = [10 * 1.8**k for k in range(33)]


def _labels(pairs) -> str:
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._count: dict[tuple, int] = {}  # (model, status) -> n
        self._latency: dict[
            tuple, list
        ] = {}  # (model, api, entrypoint, status) -> [buckets, sum, n]
        self._loads: dict[tuple, int] = {}  # (model, status) -> n
        self._available: dict[str, int] = {}  # model -> available versions
        self._batches: dict[str, list] = {}  # model -> [batches run, requests in them]

    def observe(self, model: str, api: str, entrypoint: str, status: str, seconds: float):
        micros = seconds * 1e6
        with self._lock:
            key = (model, status)
            self._count[key] = self._count.get(key, 0) + 1
            lkey = (model, api, entrypoint, status)
            entry = self._latency.get(lkey)
            if entry is None:
                entry = self._latency[lkey] = [[0] * len(LATENCY_BUCKETS_US), 0.0, 0]
            for i, bound in enumerate(LATENCY_BUCKETS_US):
                if micros <= bound:
                    entry[0][i] += 1
                    break
            entry[1] += micros
            entry[2] += 1

    def load_attempt(self, model: str, status: str):
        with self._lock:
            self._loads[(model, status)] = self._loads.get((model, status), 0) + 1

    def batch(self, model: str, requests: int):
        with self._lock:
            entry = self._batches.setdefault(model, [0, 0])
            entry[0] += 1
            entry[1] += requests

    def set_available(self, model: str, versions: int):
        with self._lock:
            self._available[model] = versions

    def render(self) -> str:
        with self._lock:
            lines = [
                "# TYPE :tensorflow:serving:request_count counter",
            ]
            for (model, status), n in sorted(self._count.items()):
                lines.append(
                    ":tensorflow:serving:request_count"
                    + _labels([("model_name", model), ("status", status)])
                    + f" {n}"
                )
            lines.append("# TYPE :tensorflow:serving:request_latency histogram")
            for (model, api, entry_point, status), (buckets, total, n) in sorted(
                self._latency.items()
            ):
                base = [
                    ("model_name", model),
                    ("API", api),
                    ("entrypoint", entry_point),
                    ("status", status),
                ]
                cumulative = 0
                for bound, count in zip(LATENCY_BUCKETS_US, buckets, strict=True):
                    cumulative += count
                    lines.append(
                        ":tensorflow:serving:request_latency_bucket"
                        + _labels(base + [("le", f"{bound:.6g}")])
                        + f" {cumulative}"
                    )
                lines.append(
                    ":tensorflow:serving:request_latency_bucket"
                    + _labels(base + [("le", "+Inf")])
                    + f" {n}"
                )
                lines.append(
                    ":tensorflow:serving:request_latency_sum" + _labels(base) + f" {total}"
                )
                lines.append(":tensorflow:serving:request_latency_count" + _labels(base) + f" {n}")
            lines.append("# TYPE :tensorflow:serving:model_load_count counter")
            for (model, status), n in sorted(self._loads.items()):
                lines.append(
                    ":tensorflow:serving:model_load_count"
                    + _labels([("model_name", model), ("status", status)])
                    + f" {n}"
                )
            lines.append("# TYPE :tensorflow:serving:model_versions_available gauge")
            for model, n in sorted(self._available.items()):
                lines.append(
                    ":tensorflow:serving:model_versions_available"
                    + _labels([("model_name", model)])
                    + f" {n}"
                )
            for i, family in enumerate(("batch_count", "batched_request_count")):
                name = f":tensorflow:serving:batching:{family}"
                lines.append(f"# TYPE {name} counter")
                for model, counts in sorted(self._batches.items()):
                    lines.append(f"{name}{_labels([('model_name', model)])} {counts[i]}")
        return "\n".join(lines) + "\n"
