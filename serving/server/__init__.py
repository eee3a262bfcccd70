"""`python -m serving serve [EXPORT_DIR]`: serve every model under exports/ with TF Serving's API.

Backends, in the order `--backend auto` tries them:
1. `tensorflow_model_server` on PATH (Google's binary), with generated config files;
2. docker image `tensorflow/serving`, when docker can run containers and the image is present;
3. the embedded server (this package): TF Serving's REST and gRPC APIs on TensorFlow + grpcio.

Ports are TF Serving's (8500 gRPC, 8501 REST), bound to 127.0.0.1 unless --host says otherwise.

The embedded server is a small package:
  models.py    version polling, loading, warmup, policies, labels (ServerCore's job)
  tensors.py   REST JSON <-> tensors (row and columnar formats, b64)
  rest.py      the REST API and Prometheus endpoint (uvicorn + Starlette)
  grpc_api.py  PredictionService and ModelService servicers
  batching.py  server-side batching;  metrics.py  Prometheus metrics (prometheus_client)
  memory.py    freed memory handed back to the OS after large requests
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from serving import config as layout

DOCKER_IMAGE = "tensorflow/serving"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m serving serve",
        description="Serve exported SavedModels with TF Serving's REST and gRPC APIs.",
    )
    p.add_argument("export_dir", nargs="?", default="exports", help="default: exports")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 = any)")
    p.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; 0 = any)")
    p.add_argument(
        "--backend",
        choices=["auto", "tensorflow_model_server", "docker", "embedded"],
        default="auto",
    )
    p.add_argument("--poll-seconds", type=float, default=1.0, help="version polling period")
    p.add_argument("--enable-batching", action="store_true", help="server-side batching")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-ms", type=float, default=2.0)
    p.add_argument(
        "--model-config-file",
        default=None,
        help="a ModelServerConfig text proto (version policies, labels) instead of discovery",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 << 20,
        help="embedded: request size limit, after gzip decompression (413; gRPC: message size)",
    )
    p.add_argument(
        "--max-instances",
        type=int,
        default=1024,
        help="embedded: instances (rows, dimension 0 of an input) per request, REST and gRPC; "
        "more get 400 / INVALID_ARGUMENT before any tensor is built (default 1024)",
    )
    p.add_argument(
        "--rest-timeout-seconds",
        type=float,
        default=30.0,
        help="embedded: idle connection timeout (default 30)",
    )
    p.add_argument(
        "--rest-header-timeout-seconds",
        type=float,
        default=None,
        help="embedded: time to send a request's line and headers, 408 after it "
        "(default: the idle timeout, at most 10)",
    )
    p.add_argument(
        "--rest-body-timeout-seconds",
        type=float,
        default=None,
        help="embedded: time to send a request's body, 408 after it "
        "(default: twice the idle timeout)",
    )
    p.add_argument(
        "--rest-max-connections",
        type=int,
        default=1024,
        help="embedded: open REST connections; more get 503 (default 1024)",
    )
    p.add_argument(
        "--rest-workers",
        type=int,
        default=None,
        help="embedded: threads running REST requests, i.e. REST predicts in flight (default 16, "
        "or --max-batch-size if larger with --enable-batching, so a batch can fill; gRPC has 16 "
        "of its own)",
    )
    p.add_argument("--docker-image", default=DOCKER_IMAGE)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.poll_seconds <= 0 or args.max_batch_size < 1 or args.batch_timeout_ms < 0:
        print("error: --poll-seconds, --max-batch-size must be positive", file=sys.stderr)
        return 2
    positive = {
        "--max-instances": args.max_instances,
        "--max-body-bytes": args.max_body_bytes,
        "--rest-timeout-seconds": args.rest_timeout_seconds,
        "--rest-header-timeout-seconds": args.rest_header_timeout_seconds,
        "--rest-body-timeout-seconds": args.rest_body_timeout_seconds,
        "--rest-max-connections": args.rest_max_connections,
        "--rest-workers": args.rest_workers,
    }
    bad = [flag for flag, value in positive.items() if value is not None and value <= 0]
    if bad:
        print(f"error: {', '.join(bad)} must be positive", file=sys.stderr)
        return 2
    export_dir = Path(args.export_dir)
    if args.model_config_file:
        if not Path(args.model_config_file).is_file():
            print(f"error: model config file {args.model_config_file} not found", file=sys.stderr)
            return 2
        try:
            entries = layout.read_model_server_config(args.model_config_file)
        except Exception as exc:  # noqa: BLE001 - text_format.ParseError and friends
            print(f"error: {args.model_config_file}: {exc}", file=sys.stderr)
            return 2
        models = {c.name: Path(c.base_path) for c in entries.model_config_list.config}
    elif not export_dir.is_dir():
        print(
            f"error: export directory {export_dir} does not exist (export a model first: "
            "python -m serving export RUN_DIR)",
            file=sys.stderr,
        )
        return 2
    else:
        models = layout.discover_models(export_dir)
    if not models:
        print(
            f"error: no exports under {export_dir} (expected {export_dir}/<model>/<version>/"
            "saved_model.pb)",
            file=sys.stderr,
        )
        return 2

    backend, reason = args.backend, "--backend " + args.backend
    if backend == "auto":
        backend, reason = choose_backend(args.docker_image)
    if backend == "tensorflow_model_server":
        return run_model_server(args, models)
    if backend == "docker":
        return run_docker(args, models)
    from serving.server import embedded

    return embedded.run(args, models, reason)


def choose_backend(image: str = DOCKER_IMAGE) -> tuple[str, str]:
    """(backend, why): the binary if on PATH, else docker if it can run the image, else embedded."""
    if shutil.which("tensorflow_model_server"):
        return "tensorflow_model_server", "tensorflow_model_server found on PATH"
    ok, why = docker_usable(image)
    if ok:
        return "docker", why
    return "embedded", f"no tensorflow_model_server on PATH; docker: {why}"


def docker_usable(image: str = DOCKER_IMAGE) -> tuple[bool, str]:
    if not shutil.which("docker"):
        return False, "not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=15)
        if info.returncode != 0:
            return False, "cannot run containers (docker info failed)"
        inspect = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired):
        return False, "not responding"
    if inspect.returncode != 0:
        return False, f"image {image} not pulled (docker pull {image})"
    return True, f"docker can run {image}"


def _write_server_configs(args, models, base_path_prefix=None) -> Path:
    """models/monitoring/batching configs for a real TF Serving, in a fresh temporary directory."""
    out = Path(tempfile.mkdtemp(prefix="zoo-tfserving-"))
    if args.model_config_file:
        config = layout.read_model_server_config(args.model_config_file)
        if base_path_prefix:  # inside the container, each base path is mounted at /models/<name>
            for entry in config.model_config_list.config:
                entry.base_path = f"{base_path_prefix}/{entry.name}"
        (out / "models.config").write_text(layout.model_server_config_text(config))
    else:
        config = layout.build_model_server_config(models, base_path_prefix=base_path_prefix)
        (out / "models.config").write_text(layout.model_server_config_text(config))
    (out / "monitoring.config").write_text(layout.monitoring_config_text())
    (out / "batching.config").write_text(
        layout.batching_parameters_text(
            args.max_batch_size, int(args.batch_timeout_ms * 1000), num_batch_threads=None
        )
    )
    return out


def _server_flags(args, config_dir: str, local_config_dir: Path) -> list[str]:
    flags = [
        f"--model_config_file={config_dir}/models.config",
        f"--monitoring_config_file={config_dir}/monitoring.config",
        f"--file_system_poll_wait_seconds={max(1, round(args.poll_seconds))}",
        "--enable_model_warmup=true",
    ]
    if args.enable_batching:
        flags += [
            "--enable_batching=true",
            f"--batching_parameters_file={config_dir}/batching.config",
        ]
    config = layout.read_model_server_config(local_config_dir / "models.config")
    if any(entry.version_labels for entry in config.model_config_list.config):
        # Labels in a startup config name versions that are not loaded yet.
        flags.append("--allow_version_labels_for_unavailable_models=true")
    return flags


def _print_urls(args, models, what):
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"starting {what}", flush=True)
    for name in sorted(models):
        print(f"  model {name}: http://{host}:{args.rest_port}/v1/models/{name}", flush=True)
    print(f"REST     http://{host}:{args.rest_port}", flush=True)
    print(f"gRPC     {host}:{args.port}", flush=True)
    print(f"metrics  http://{host}:{args.rest_port}/monitoring/prometheus/metrics", flush=True)


def run_model_server(args, models) -> int:
    exe = shutil.which("tensorflow_model_server")
    if exe is None:
        print("error: tensorflow_model_server is not on PATH", file=sys.stderr)
        return 2
    config_dir = _write_server_configs(args, models)
    cmd = [exe, f"--port={args.port}", f"--rest_api_port={args.rest_port}"]
    cmd += _server_flags(args, str(config_dir), config_dir)
    _print_urls(args, models, f"tensorflow_model_server (configs in {config_dir})")
    if args.host not in ("0.0.0.0", "::"):
        print(
            "note: tensorflow_model_server has no bind-address flag and listens on all "
            f"interfaces, not only {args.host}; use --backend embedded or docker to restrict it",
            flush=True,
        )
    print(" ".join(cmd), flush=True)
    return _run_child(cmd)


def run_docker(args, models) -> int:
    if not shutil.which("docker"):
        print("error: docker is not installed", file=sys.stderr)
        return 2
    config_dir = _write_server_configs(args, models, base_path_prefix="/models")
    cmd = ["docker", "run", "--rm", "--name", f"zoo-tfserving-{os.getpid()}"]
    cmd += ["-p", f"{args.host}:{args.port}:8500", "-p", f"{args.host}:{args.rest_port}:8501"]
    for name, base in sorted(models.items()):
        cmd += ["-v", f"{Path(base).resolve()}:/models/{name}:ro"]
    cmd += ["-v", f"{config_dir}:/config:ro", args.docker_image]
    cmd += _server_flags(args, "/config", config_dir)
    _print_urls(args, models, f"docker image {args.docker_image} (configs in {config_dir})")
    print(" ".join(cmd), flush=True)
    return _run_child(cmd)


def _run_child(cmd) -> int:
    try:
        proc = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"error: cannot start {cmd[0]}: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
