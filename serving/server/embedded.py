"""Run the embedded server: model manager + gRPC + REST in one process, until SIGINT/SIGTERM."""

import logging
import os
import signal
import sys
import threading


def run(args, models: dict, reason: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import tensorflow as tf  # noqa: F401 - import once, before any thread needs it

    from serving.config import read_model_server_config
    from serving.server.accesslog import AccessLog
    from serving.server.grpc_api import start_grpc_server
    from serving.server.memory import MemoryTrimmer
    from serving.server.metrics import Metrics
    from serving.server.models import (
        BatchingOptions,
        ModelManager,
        configs_from_model_server_config,
    )
    from serving.server.rest import METRICS_PATH, Limits, RestServer

    access_log = AccessLog(stream=sys.stderr)
    metrics = Metrics()
    trimmer = MemoryTrimmer()
    batching = None
    if args.enable_batching:
        batching = BatchingOptions(args.max_batch_size, args.batch_timeout_ms / 1000.0)
    configs = None
    if args.model_config_file:
        configs = configs_from_model_server_config(
            read_model_server_config(args.model_config_file), relative_to=os.getcwd()
        )
    manager = ModelManager(args.export_dir, configs, args.poll_seconds, batching, metrics)
    manager.freeze_gc = True  # see ModelManager.poll_once
    manager.load_initial()

    try:
        grpc_server, grpc_port = start_grpc_server(
            manager,
            metrics,
            args.host,
            args.port,
            args.max_body_bytes,
            max_instances=args.max_instances,
            trimmer=trimmer,
        )
    except RuntimeError as exc:
        print(f"error: {exc} (is another server running?)", file=sys.stderr)
        return 1
    try:
        idle = args.rest_timeout_seconds
        limits = Limits(
            max_body_bytes=args.max_body_bytes,
            idle_timeout_s=idle,
            header_timeout_s=args.rest_header_timeout_seconds or min(idle, 10.0),
            body_timeout_s=args.rest_body_timeout_seconds or 2 * idle,
            max_connections=args.rest_max_connections,
            workers=args.rest_workers
            or max(16, args.max_batch_size if args.enable_batching else 0),
            max_instances=args.max_instances,
        )
        rest = RestServer(manager, metrics, args.host, args.rest_port, limits, trimmer)
    except OSError as exc:
        grpc_server.stop(0)
        print(f"error: cannot bind REST to {args.host}:{args.rest_port}: {exc}", file=sys.stderr)
        return 1
    rest.start()
    manager.start()

    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"embedded TF-Serving-compatible server ({reason})", flush=True)
    for name in manager.model_names():
        try:
            states = manager.status(name)
            shown = ", ".join(f"v{s.version} {s.state}" for s in states)
        except Exception:  # noqa: BLE001 - a model without versions yet
            shown = "no versions yet"
        print(f"  model {name}: {shown}  http://{host}:{rest.port}/v1/models/{name}", flush=True)
    batching_note = (
        f"batching max {args.max_batch_size} rows, {args.batch_timeout_ms} ms"
        if args.enable_batching
        else "batching off"
    )
    print(f"REST     http://{host}:{rest.port}", flush=True)
    print(f"gRPC     {host}:{grpc_port}", flush=True)
    print(f"metrics  http://{host}:{rest.port}{METRICS_PATH}", flush=True)
    print(
        f"polling every {args.poll_seconds:g}s, {batching_note}, at most {args.max_instances} "
        "instances per request; Ctrl-C stops",
        flush=True,
    )

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    print("stopping", flush=True)
    rest.stop()
    grpc_server.stop(grace=2).wait(3)
    manager.stop()
    trimmer.stop()
    access_log.close()
    return 0
