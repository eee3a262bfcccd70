"""Prometheus metrics on prometheus_client, under the sample names TF Serving exports.

TF Serving exports `/tensorflow/serving/request_count` (labels model_name, status) and
`/tensorflow/serving/request_latency` (a histogram in microseconds, labels model_name, API,
entrypoint); its Prometheus exporter turns the slashes into colons. The embedded server keeps
those names and adds `status` to the latency histogram, plus model load, availability and batching
series, and the process's own (resident memory, CPU, open files) from prometheus_client.

prometheus_client's text output names every counter `<name>_total` and adds `<name>_created`
samples; users' dashboards query TF Serving's names, so the values are kept in prometheus_client's
thread-safe Counter/Histogram/Gauge objects in a private registry, and a custom collector
re-exposes them as TF Serving writes them. `render()` writes the classic text format (0.0.4), which
`prometheus_client.parser.text_string_to_metric_families` reads back.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

# TF Serving's request_latency buckets: exponential, 10us * 1.8^k.
LATENCY_BUCKETS_US = [float(f"{10 * 1.8**k:.6g}") for k in range(33)]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIX = ":tensorflow:serving:"


class Metrics:
    def __init__(self, process_metrics: bool = True):
        values = CollectorRegistry(auto_describe=False)  # never scraped directly
        self._count = Counter(
            _PREFIX + "request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=values,
        )
        self._latency = Histogram(
            _PREFIX + "request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint", "status"],
            buckets=LATENCY_BUCKETS_US,
            registry=values,
        )
        self._loads = Counter(
            _PREFIX + "model_load_count",
            "The number of times a model version was loaded (status OK) or failed to load.",
            ["model_name", "status"],
            registry=values,
        )
        self._available = Gauge(
            _PREFIX + "model_versions_available",
            "The number of versions of a model that are serving.",
            ["model_name"],
            registry=values,
        )
        self._batches = Counter(
            _PREFIX + "batching:batch_count",
            "The number of batches the server-side batcher ran.",
            ["model_name"],
            registry=values,
        )
        self._batched = Counter(
            _PREFIX + "batching:batched_request_count",
            "The number of requests in those batches.",
            ["model_name"],
            registry=values,
        )
        self._children: dict[tuple, tuple] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_TFServingNames(values))
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def observe(self, model: str, api: str, entrypoint: str, status: str, seconds: float):
        key = (model, api, entrypoint, status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a key: once per label set
            children = self._children[key] = (
                self._count.labels(model, status),
                self._latency.labels(model, api, entrypoint, status),
            )
        children[0].inc()
        children[1].observe(seconds * 1e6)

    def load_attempt(self, model: str, status: str):
        self._loads.labels(model, status).inc()

    def batch(self, model: str, requests: int):
        self._batches.labels(model).inc()
        self._batched.labels(model).inc(requests)

    def set_available(self, model: str, versions: int):
        self._available.labels(model).set(versions)

    def render(self) -> str:
        return exposition(self.registry)


class _TFServingNames:
    """Re-exposes a registry's counters without the `_total` suffix and without `_created`."""

    def __init__(self, values: CollectorRegistry):
        self._values = values

    def collect(self):
        for family in self._values.collect():
            out = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = sample.name
                if family.type == "counter" and name == family.name + "_total":
                    name = family.name
                out.add_sample(name, sample.labels, sample.value)
            yield out


def exposition(registry: CollectorRegistry) -> str:
    """The text format (0.0.4) with each family's own name in TYPE lines (counters included:
    prometheus_client's generate_latest would rename them `<name>_total`)."""
    lines = []
    for family in registry.collect():
        kind = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(
            family.type, family.type
        )
        name = family.name
        if (
            kind == "counter"
            and family.samples
            and all(s.name == name + "_total" for s in family.samples)
        ):
            name += "_total"  # prometheus_client's own counters (process_cpu_seconds_total)
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {kind}")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
                lines.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}")
            else:
                lines.append(f"{sample.name} {floatToGoString(sample.value)}")
    return "\n".join(lines) + "\n"


def _escape(value) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
