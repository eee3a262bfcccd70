"""Loaded models and their versions: what TF Serving's ServerCore and AspiredVersionsManager do.

A `ModelManager` polls every model's base path. A version directory is loaded once it holds a
saved_model.pb and its contents have not changed between two polls (so a directory still being
written is never loaded); its warmup records run before it serves. The version policy picks the
aspired versions (`latest` N by default); a version that is no longer aspired is unloaded only
once an aspired one is available, so a new version that fails to load leaves the old one serving,
and the failure shows in the status call (state END with the error), as in TF Serving.
"""

import gc
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving import config as layout
from serving.server.batching import Batcher
from serving.server.errors import ServingError, from_exception, invalid, not_found
from serving.server.tensors import TensorSpecInfo, spec_kind

log = logging.getLogger("serving.server")

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"


@dataclass
class BatchingOptions:
    max_batch_size: int = 32
    timeout_s: float = 0.001
    max_enqueued_batches: int = 100


@dataclass
class ModelConfig:
    name: str
    base_path: Path
    policy: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: frozenset = frozenset()
    labels: dict = field(default_factory=dict)


@dataclass
class VersionStatus:
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving's ModelVersionStatus)
    error_code: str = "OK"
    error_message: str = ""


# ---- one signature of one loaded version ----------------------------------------------------


# TF's DataTypeString names, used in TF Serving's error messages.
_TF_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}


def _spec_from_tensor_info(name, info) -> TensorSpecInfo:
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(info.dtype)
    np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    dtype_name = _TF_TYPE_NAMES.get(dtype.name, dtype.name)
    return TensorSpecInfo(name, dtype_name, np_dtype, spec_kind(np_dtype), shape)


def _dtype_string(spec: TensorSpecInfo) -> str:
    return spec.dtype_name


def _shape_string(shape) -> str:
    if shape is None:
        return "[?]"
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def _flat_call_order(fn, specs) -> list | None:
    """The input names in the order of fn's flat arguments (tf.nest: sorted keys), when fn takes
    exactly the signature's inputs as keyword arguments and has a flat call; else None."""
    try:
        args, kwargs = fn.structured_input_signature
        if args or set(kwargs) != set(specs) or not callable(getattr(fn, "_call_flat", None)):
            return None
        order = sorted(kwargs)
        placeholders = [t.name.split(":")[0] for t in fn.inputs[: len(order)]]
        names = [kwargs[k].name or k for k in order]
        return order if placeholders == names else None
    except Exception:  # noqa: BLE001 - any surprise: the public call
        return None


def _same_outputs(a, b) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict) or set(a) != set(b):
        return False
    for key, value in a.items():
        x, y = value.numpy(), b[key].numpy()
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype.kind == "f":
            if not np.allclose(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


class SignatureRunner:
    """Validates inputs against one SignatureDef and runs its concrete function."""

    def __init__(
        self, key, fn, signature_def, batching: BatchingOptions | None, label: str, on_batch=None
    ):
        self.key = key
        self.fn = fn
        self.signature_def = signature_def
        self.inputs = {k: _spec_from_tensor_info(k, v) for k, v in signature_def.inputs.items()}
        self.outputs = {k: _spec_from_tensor_info(k, v) for k, v in signature_def.outputs.items()}
        self._tf_dtypes = {k: v.dtype for k, v in signature_def.inputs.items()}
        self._flat = _flat_call_order(fn, self.inputs)  # None: the public call only
        self._flat_checked = False
        self.batcher = None
        if batching is not None:
            self.batcher = Batcher(
                self._call,
                batching.max_batch_size,
                batching.timeout_s,
                batching.max_enqueued_batches,
                name=f"{label}/{key}",
                on_batch=on_batch,
            )

    def validate(self, inputs: dict):
        expected, sent = set(self.inputs), set(inputs)
        if expected != sent:
            extra = ",".join(sorted(sent - expected))
            missing = ",".join(sorted(expected - sent))
            raise invalid(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{extra}}}. Missing but required: {{{missing}}}."
            )
        for i, (name, spec) in enumerate(sorted(self.inputs.items())):
            arr = inputs[name]
            if spec.kind == "string":
                ok = arr.dtype == object or arr.dtype.kind in "SU"
            else:
                ok = arr.dtype == np.dtype(spec.np_dtype)
            if not ok:
                got = "string" if arr.dtype == object or arr.dtype.kind in "SU" else arr.dtype.name
                got = "float" if got == "float32" else got
                raise invalid(
                    f"Expects arg[{i}] ({name}) to be {_dtype_string(spec)} but {got} is provided"
                )
            if spec.shape is not None:
                compatible = arr.ndim == len(spec.shape) and all(
                    want is None or want == got
                    for want, got in zip(spec.shape, arr.shape, strict=False)
                )
                if not compatible:
                    raise invalid(
                        f"Input '{name}' has shape {_shape_string(arr.shape)} but the signature "
                        f"'{self.key}' expects {_shape_string(spec.shape)}"
                    )

    def run(self, inputs: dict, output_filter=None) -> dict:
        self.validate(inputs)
        if output_filter:
            unknown = sorted(set(output_filter) - set(self.outputs))
            if unknown:
                raise invalid(
                    f"output tensor alias not found in signature: {', '.join(unknown)} "
                    f"Outputs expected to be in the set {{{','.join(sorted(self.outputs))}}}."
                )
        outputs = self.batcher.submit(inputs) if self.batcher else self._call(inputs)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in set(output_filter)}
        return outputs

    def _call(self, inputs: dict) -> dict:
        import tensorflow as tf

        try:
            tensors = {
                name: tf.convert_to_tensor(arr, dtype=self._tf_dtypes[name])
                for name, arr in inputs.items()
            }
            result = self._invoke(tensors)
            if not isinstance(result, dict):
                result = {"output_0": result}
            return {name: value.numpy() for name, value in result.items()}
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TF Serving status
            raise from_exception(exc) from None

    def _invoke(self, tensors: dict):
        """fn(**tensors). The public call binds the keyword arguments to the signature again
        (inspect, TensorSpec checks: ~50 us a call) after validate() has checked them; the
        function's flat call takes them in its own order. Used once it gave the public call's
        answer on a first request, and only if this TensorFlow has it."""
        if self._flat is None:
            return self.fn(**tensors)
        flat = [tensors[name] for name in self._flat]
        if self._flat_checked:
            return self.fn._call_flat(flat, self.fn.captured_inputs)
        expected = self.fn(**tensors)
        try:
            got = self.fn._call_flat(flat, self.fn.captured_inputs)
            same = _same_outputs(expected, got)
        except Exception:  # noqa: BLE001 - any doubt: the public call from now on
            same = False
        if same:
            self._flat_checked = True
        else:
            log.info("signature %s: flat calls disabled (results differ)", self.key)
            self._flat = None
        return expected

    def close(self):
        if self.batcher is not None:
            self.batcher.close()


# ---- one loaded version ---------------------------------------------------------------------


def read_meta_graph(version_dir, tag=SERVE_TAG):
    """The MetaGraphDef with the `serve` tag, read from saved_model.pb(txt) as TF Serving does."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    d = Path(version_dir)
    saved_model = saved_model_pb2.SavedModel()
    pb, pbtxt = d / "saved_model.pb", d / "saved_model.pbtxt"
    try:
        if pb.is_file():
            saved_model.ParseFromString(pb.read_bytes())
        elif pbtxt.is_file():
            text_format.Parse(pbtxt.read_text(), saved_model)
        else:
            raise ServingError("NOT_FOUND", f"SavedModel not found in export directory: {d}")
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise ServingError(
            "DATA_LOSS", f"Can't parse {pb if pb.is_file() else pbtxt} as binary proto: {exc}"
        ) from None
    for meta_graph in saved_model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ServingError(
        "NOT_FOUND",
        f"Could not find meta graph def matching supplied tags: {{ {tag} }}. To inspect available "
        "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


_custom_ops_registered = False


def register_custom_ops():
    """Make the ops of optional TF add-ons (tensorflow-text tokenizers) known before loading."""
    global _custom_ops_registered
    if _custom_ops_registered:
        return
    _custom_ops_registered = True
    try:
        import tensorflow_text  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - absent or broken: models without its ops still load
        log.debug("tensorflow_text not available: %s", exc)


class Servable:
    """One loaded version of one model: its signature defs and a runner per signature."""

    def __init__(
        self, name: str, version: int, path: Path, batching: BatchingOptions | None, metrics=None
    ):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, Path(path)
        meta_graph = read_meta_graph(path)
        self.signature_defs = {k: meta_graph.signature_def[k] for k in meta_graph.signature_def}
        register_custom_ops()
        try:
            self._loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        except Exception as exc:  # noqa: BLE001
            raise from_exception(exc) from None
        self.runners: dict[str, SignatureRunner] = {}
        on_batch = None
        if metrics is not None:
            on_batch = lambda requests: metrics.batch(name, requests)
        for key, signature_def in self.signature_defs.items():
            if key.startswith("__") or key not in self._loaded.signatures:
                continue  # __saved_model_init_op and the like: not callable signatures
            self.runners[key] = SignatureRunner(
                key,
                self._loaded.signatures[key],
                signature_def,
                batching,
                f"{name}/{version}",
                on_batch,
            )

    def runner(self, signature_name: str, code: str = "FAILED_PRECONDITION") -> SignatureRunner:
        key = signature_name or DEFAULT_SIGNATURE
        runner = self.runners.get(key)
        if runner is None:
            if code == "INVALID_ARGUMENT":
                msg = f'Serving signature name: "{key}" not found in signature def'
            else:
                msg = f'Serving signature key "{key}" not found.'
            raise ServingError(code, msg)
        return runner

    def warmup(self) -> int:
        """Replay assets.extra/tf_serving_warmup_requests; the number of requests run."""
        import tensorflow as tf

        from serving import warmup

        try:
            logs = warmup.read_warmup_requests(self.path)
        except Exception as exc:  # noqa: BLE001
            raise ServingError("INVALID_ARGUMENT", f"Failed to read warmup data: {exc}") from None
        done = 0
        for i, record in enumerate(logs):
            kind = record.WhichOneof("log_type")
            if kind != "predict_log":
                log.warning("%s/%s: skipping %s warmup record", self.name, self.version, kind)
                continue
            request = record.predict_log.request
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                runner = self.runner(request.model_spec.signature_name)
                runner.validate(inputs)
                runner._call(inputs)  # straight to the function, not through the batcher
            except Exception as exc:  # noqa: BLE001
                err = from_exception(exc)
                raise ServingError(err.code, f"Warmup request {i} failed: {err.message}") from None
            done += 1
        return done

    def close(self):
        for runner in self.runners.values():
            runner.close()


# ---- every model, polled ----------------------------------------------------------------------


def _fingerprint(version_dir: Path):
    entries = []
    for root, _dirs, files in os.walk(version_dir):
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            entries.append((os.path.relpath(p, version_dir), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


class _Model:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.available: dict[int, Servable] = {}
        self.status: dict[int, VersionStatus] = {}
        self.failed: dict[int, tuple] = {}  # version -> fingerprint that failed to load
        self.seen: dict[int, tuple] = {}  # version -> fingerprint at the previous poll


class ModelManager:
    def __init__(
        self,
        export_dir=None,
        configs: list[ModelConfig] | None = None,
        poll_seconds: float = 1.0,
        batching: BatchingOptions | None = None,
        metrics=None,
    ):
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.discover = configs is None
        self.poll_seconds = poll_seconds
        self.batching = batching
        self.metrics = metrics
        self._lock = threading.RLock()
        self._models: dict[str, _Model] = {}
        self._stop = threading.Event()
        self._thread = None
        self._generation = 0  # bumped at every load attempt and unload
        self.freeze_gc = False
        for cfg in configs or []:
            self._models[cfg.name] = _Model(cfg)

    # ---- polling ----

    def _refresh_models(self):
        if not self.discover or self.export_dir is None:
            return
        for name, base in layout.discover_models(self.export_dir).items():
            if name not in self._models:
                with self._lock:
                    self._models[name] = _Model(ModelConfig(name, base))

    def poll_once(self):
        """One pass over every model: load stable aspired versions, unload the rest."""
        self._refresh_models()
        before = self._generation
        for model in list(self._models.values()):
            try:
                self._poll_model(model)
            except Exception:  # noqa: BLE001 - a poll error must not stop polling
                log.exception("polling %s failed", model.config.name)
        if self._generation != before and self.freeze_gc:
            # A loaded model is millions of long-lived Python objects; full collections walking
            # them stall every request for a quarter second. Collect what the change freed,
            # then park the survivors out of the collector's way.
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def load_initial(self, settle_seconds: float = 0.05):
        """Startup: two polls close together, so stable versions load before serving starts."""
        self.poll_once()
        time.sleep(settle_seconds)
        self.poll_once()

    def _aspired(self, cfg: ModelConfig, complete: list[int]) -> set[int]:
        if cfg.policy == "all":
            return set(complete)
        if cfg.policy == "specific":
            return set(complete) & set(cfg.versions)
        return set(complete[-max(1, cfg.num_versions) :])

    def _poll_model(self, model: _Model):
        cfg = model.config
        dirs = layout.version_dirs(cfg.base_path)
        complete = sorted(v for v, d in dirs.items() if layout.is_complete(d))
        fingerprints = {v: _fingerprint(dirs[v]) for v in complete}
        previous, model.seen = model.seen, fingerprints
        for v in list(model.failed):
            if v not in fingerprints:
                del model.failed[v]
        aspired = self._aspired(cfg, complete)
        for v in sorted(aspired, reverse=True):
            if v in model.available:
                continue
            fp = fingerprints[v]
            if previous.get(v) != fp:
                continue  # new or still changing: wait for it to settle
            if model.failed.get(v) == fp:
                continue  # failed with these very files: retry only when they change
            self._load(model, v, dirs[v], fp)
        with self._lock:
            if any(v in model.available for v in aspired):
                for v in sorted(set(model.available) - aspired):
                    self._unload(model, v)
        if self.metrics is not None:
            self.metrics.set_available(cfg.name, len(model.available))

    def _load(self, model: _Model, version: int, path: Path, fp):
        name = model.config.name
        self._generation += 1
        with self._lock:
            model.status[version] = VersionStatus(version, "LOADING")
        log.info("Loading servable: {name: %s version: %d} from %s", name, version, path)
        started = time.monotonic()
        servable = None
        try:
            servable = Servable(name, version, path, self.batching, self.metrics)
            warmed = servable.warmup()
        except Exception as exc:  # noqa: BLE001 - a bad version must not take the server down
            err = from_exception(exc)
            if servable is not None:
                servable.close()
            model.failed[version] = fp
            with self._lock:
                model.status[version] = VersionStatus(version, "END", err.code, err.message)
            log.error("Loading servable: {name: %s version: %d} failed: %s", name, version, err)
            if self.metrics is not None:
                self.metrics.load_attempt(name, err.code)
            return
        with self._lock:
            model.available[version] = servable
            model.status[version] = VersionStatus(version, "AVAILABLE")
        model.failed.pop(version, None)
        if self.metrics is not None:
            self.metrics.load_attempt(name, "OK")
        log.info(
            "Successfully loaded servable version {name: %s version: %d} in %.2fs "
            "(%d warmup request(s))",
            name,
            version,
            time.monotonic() - started,
            warmed,
        )

    def _unload(self, model: _Model, version: int):
        self._generation += 1
        servable = model.available.pop(version)
        model.status[version] = VersionStatus(version, "UNLOADING")
        servable.close()  # in-flight requests keep their reference and finish
        model.status[version] = VersionStatus(version, "END")
        log.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    def start(self):
        def loop():
            while not self._stop.wait(self.poll_seconds):
                self.poll_once()

        self._thread = threading.Thread(target=loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for model in self._models.values():
                for servable in model.available.values():
                    servable.close()

    # ---- lookups ----

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def has_model(self, name: str) -> bool:
        return name in self._models  # one dict lookup: safe without the lock

    def _model(self, name: str) -> _Model | None:
        with self._lock:
            return self._models.get(name)

    def resolve_label(self, name: str, label: str) -> int:
        model = self._model(name)
        version = model.config.labels.get(label) if model else None
        if version is None:
            raise invalid(f"Unrecognized servable version label: {label}")
        return version

    def servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The version a request names (latest available by default), or NOT_FOUND."""
        if label:
            version = self.resolve_label(name, label)
        with self._lock:
            model = self._models.get(name)
            available = model.available if model else {}
            if version is None:
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                return available[max(available)]
            servable = available.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return servable

    def status(self, name: str, version: int | None = None, label: str | None = None):
        """ModelVersionStatus entries, newest first (GetModelStatus semantics)."""
        if label:
            version = self.resolve_label(name, label)
        with self._lock:
            model = self._models.get(name)
            states = dict(model.status) if model else {}
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [states[version]]
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return [states[v] for v in sorted(states, reverse=True)]


def configs_from_model_server_config(proto, relative_to=None) -> list[ModelConfig]:
    """ModelConfig entries from a ModelServerConfig (version policy and labels included)."""
    if proto.WhichOneof("config") != "model_config_list":
        raise ValueError("only model_config_list configs are supported")
    out = []
    for entry in proto.model_config_list.config:
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{entry.name}: unsupported model_platform {entry.model_platform!r}")
        base = Path(entry.base_path)
        if not base.is_absolute() and relative_to is not None:
            base = Path(relative_to) / base
        policy = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
        cfg = ModelConfig(entry.name, base, policy)
        if policy == "latest":
            cfg.num_versions = entry.model_version_policy.latest.num_versions or 1
        elif policy == "specific":
            cfg.versions = frozenset(entry.model_version_policy.specific.versions)
        cfg.labels = dict(entry.version_labels)
        out.append(cfg)
    return out
