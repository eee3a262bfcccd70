"""`python -m serving config exports/ [--out DIR]`: TF Serving's config files for the exports.

Writes, for a real `tensorflow_model_server` (g3doc/serving_config.md):
- `models.config`: a ModelServerConfig text proto, one `config` per model under exports/ with its
  base path, platform, version policy and version labels;
- `batching.config`: BatchingParameters for `--enable_batching --batching_parameters_file`;
- `monitoring.config`: a MonitoringConfig enabling Prometheus at /monitoring/prometheus/metrics.

Version policy: `latest` (default: the newest version, a new one replaces it), `all`, or
`specific`. A label (`--label cnn:stable=3`) pins that model to `specific` versions (the labelled
ones plus the newest), because TF Serving only lets a label name a version it keeps loaded.

The layout helpers here (which directories are models and versions) are shared with the
embedded server.
"""

import argparse
import os
import re
import sys
from pathlib import Path

PLATFORM = "tensorflow"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
_VERSION_NAME = re.compile(r"^[0-9]+$")
_LABEL = re.compile(r"^(?:(?P<model>[^:=\s]+):)?(?P<label>[^:=\s]+)=(?P<version>[0-9]+)$")


# ---- layout: exports/<model>/<version>/saved_model.pb ----------------------------------------


def version_dirs(base_path) -> dict[int, Path]:
    """Integer-named subdirectories of a model's base path (complete or not); others ignored."""
    base = Path(base_path)
    found = {}
    try:
        entries = list(os.scandir(base))
    except OSError:
        return {}
    for entry in entries:
        if _VERSION_NAME.match(entry.name) and entry.is_dir():
            found[int(entry.name)] = Path(entry.path)
    return found


def is_complete(version_dir) -> bool:
    """A version directory TF Serving can load: it has its saved_model.pb (or .pbtxt)."""
    d = Path(version_dir)
    return (d / "saved_model.pb").is_file() or (d / "saved_model.pbtxt").is_file()


def complete_versions(base_path) -> list[int]:
    return sorted(v for v, d in version_dirs(base_path).items() if is_complete(d))


def discover_models(export_dir) -> dict[str, Path]:
    """Model name -> base path for every model directory under export_dir.

    A model directory is one with at least one integer-named subdirectory. If export_dir itself
    is such a directory (`serve exports/cnn`), it is the one model, named after its basename.
    Hidden directories (the exporter's `.tmp-*`) are ignored.
    """
    root = Path(export_dir)
    if not root.is_dir():
        return {}
    if version_dirs(root):
        return {root.resolve().name: root}
    models = {}
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if version_dirs(child):
            models[child.name] = child
    return models


# ---- ModelServerConfig -----------------------------------------------------------------------


def build_model_server_config(
    models: dict,
    policy: str = "latest",
    num_versions: int = 1,
    labels: dict | None = None,
    base_path_prefix: str | None = None,
):
    """A ModelServerConfig proto for {name: base_path}; labels are {model: {label: version}}."""
    from tensorflow_serving.config import model_server_config_pb2

    if policy not in ("latest", "all", "specific"):
        raise ValueError(f"unknown version policy {policy!r} (latest, all, specific)")
    labels = labels or {}
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in sorted(models.items()):
        entry = config.model_config_list.config.add()
        entry.name = name
        if base_path_prefix:
            entry.base_path = f"{base_path_prefix.rstrip('/')}/{name}"
        else:
            entry.base_path = str(Path(base_path).resolve())
        entry.model_platform = PLATFORM
        model_labels = labels.get(name, {})
        versions = complete_versions(base_path)
        if policy == "specific" or model_labels:
            keep = set(model_labels.values())
            keep.update(versions[-max(1, num_versions) :])
            for v in sorted(keep):
                entry.model_version_policy.specific.versions.append(v)
        elif policy == "all":
            entry.model_version_policy.all.SetInParent()
        else:
            entry.model_version_policy.latest.num_versions = max(1, num_versions)
        for label, version in sorted(model_labels.items()):
            entry.version_labels[label] = version
    return config


def read_model_server_config(path):
    """Parse a ModelServerConfig text proto (what `--model_config_file` takes)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(Path(path).read_text(), config)
    return config


def model_server_config_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def batching_parameters_text(
    max_batch_size: int = 32,
    batch_timeout_micros: int = 1000,
    max_enqueued_batches: int = 100,
    num_batch_threads: int | None = None,
) -> str:
    """BatchingParameters text proto (TF Serving's session_bundle_config.proto)."""
    threads = num_batch_threads or os.cpu_count() or 1
    return (
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
        f"num_batch_threads {{ value: {threads} }}\n"
    )


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    """MonitoringConfig text proto enabling the Prometheus endpoint on the REST port."""
    return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


def write_configs(
    export_dir,
    out_dir,
    *,
    policy="latest",
    num_versions=1,
    labels=None,
    base_path_prefix=None,
    max_batch_size=32,
    batch_timeout_micros=1000,
    num_batch_threads=None,
) -> dict[str, Path]:
    """Write models.config, batching.config, monitoring.config into out_dir; their paths."""
    models = discover_models(export_dir)
    if not models:
        raise FileNotFoundError(f"no exports under {export_dir} (expected <model>/<version>/)")
    unknown = sorted(set(labels or {}) - set(models))
    if unknown:
        raise ValueError(f"--label names unknown model(s): {', '.join(unknown)}")
    config = build_model_server_config(models, policy, num_versions, labels, base_path_prefix)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = (
        "# ModelServerConfig for TensorFlow Serving, written by `python -m serving config`.\n"
        "# tensorflow_model_server --port=8500 --rest_api_port=8501 \\\n"
        "#   --model_config_file=models.config --monitoring_config_file=monitoring.config \\\n"
        "#   [--enable_batching --batching_parameters_file=batching.config]\n"
    )
    if labels:
        header += (
            "# Labels name versions at startup: add --allow_version_labels_for_unavailable_models\n"
        )
    paths = {
        "models.config": out / "models.config",
        "batching.config": out / "batching.config",
        "monitoring.config": out / "monitoring.config",
    }
    paths["models.config"].write_text(header + model_server_config_text(config))
    paths["batching.config"].write_text(
        batching_parameters_text(
            max_batch_size, batch_timeout_micros, num_batch_threads=num_batch_threads
        )
    )
    paths["monitoring.config"].write_text(monitoring_config_text())
    return paths


def parse_labels(values, model_names) -> dict:
    """['cnn:stable=3', 'canary=4'] -> {'cnn': {'stable': 3, ...}}; a bare label needs one model."""
    labels: dict[str, dict[str, int]] = {}
    for value in values or []:
        m = _LABEL.match(value)
        if not m:
            raise ValueError(f"bad --label {value!r}: expected MODEL:LABEL=VERSION")
        model = m["model"]
        if model is None:
            if len(model_names) != 1:
                raise ValueError(f"--label {value!r} must name the model (MODEL:LABEL=VERSION)")
            model = next(iter(model_names))
        labels.setdefault(model, {})[m["label"]] = int(m["version"])
    return labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving config",
        description="Write models.config, batching.config and monitoring.config for TF Serving.",
    )
    parser.add_argument("export_dir", nargs="?", default="exports")
    parser.add_argument("--out", default=None, help="output directory (default: EXPORT_DIR)")
    parser.add_argument("--policy", choices=["latest", "all", "specific"], default="latest")
    parser.add_argument(
        "--num-versions", type=int, default=1, help="versions kept (latest/specific)"
    )
    parser.add_argument("--label", action="append", default=[], metavar="MODEL:LABEL=VERSION")
    parser.add_argument(
        "--base-path-prefix",
        default=None,
        help="base paths as seen by the server, e.g. /models inside the tensorflow/serving image",
    )
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout-micros", type=int, default=1000)
    parser.add_argument("--num-batch-threads", type=int, default=None)
    args = parser.parse_args(argv)

    models = discover_models(args.export_dir)
    if not models:
        print(
            f"error: no exports under {args.export_dir} "
            "(expected <model>/<version>/saved_model.pb)",
            file=sys.stderr,
        )
        return 2
    try:
        labels = parse_labels(args.label, models)
        for model, model_labels in labels.items():
            if model not in models:
                continue
            missing = sorted(
                v for v in model_labels.values() if v not in complete_versions(models[model])
            )
            if missing:
                print(
                    f"warning: {model}: labelled version(s) {missing} not on disk", file=sys.stderr
                )
        paths = write_configs(
            args.export_dir,
            args.out or args.export_dir,
            policy=args.policy,
            num_versions=args.num_versions,
            labels=labels,
            base_path_prefix=args.base_path_prefix,
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for entry in read_model_server_config(paths["models.config"]).model_config_list.config:
        policy = entry.model_version_policy.WhichOneof("policy_choice")
        labels_text = ", ".join(f"{k}={v}" for k, v in sorted(entry.version_labels.items()))
        print(
            f"{entry.name}: versions on disk {complete_versions(models[entry.name])}, "
            f"policy {policy}" + (f", labels {labels_text}" if labels_text else "")
        )
    for path in paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
