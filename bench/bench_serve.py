"""Serving benchmark: the embedded server under N concurrent clients, REST and gRPC, with and
without server-side batching, this checkout's server side by side with an older one (by default
4e5dfe6, the last http.server-based REST server). `make bench-serve` runs it; results go to
bench/results/serve.json.

The baseline is `git archive --baseline-ref` unpacked into a temporary directory (no worktree, the
checkout untouched), started as `python -m serving serve` from there with the same interpreter.
For each batching setting both servers run at once on 127.0.0.1 (OS-chosen ports); after a warm-up
the benchmark alternates between them, `--rounds` times (who goes first alternating too), each
turn having `--clients` threads send `--requests` predict requests (each thread keeps one
connection / channel), stopping early at `--time-limit` seconds. It reports requests/s and p50/p99
latency over all rounds per server, the per-round p50/p99 medians, and new/old ratios. Errors must
be 0 (the exit status is 1 otherwise). The model is the first export under exports/ whose
serving_default takes float tensors; with none, it exports a tiny `cnn` of its own into a
temporary directory. `--baseline-ref none` benchmarks this checkout alone.
"""

import argparse
import http.client
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---- the model to serve ------------------------------------------------------------------------


def tiny_export(root: Path) -> Path:
    """exports/cnn/1 with a tiny zoo cnn and its float serving_default signature."""
    import keras
    import tensorflow as tf

    import zoo

    keras.utils.set_random_seed(0)
    model = zoo.build("cnn", tiny=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda images: {"probabilities": model(images, training=False)},
        input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="images")],
    )
    version = root / "cnn" / "1"
    archive.write_out(str(version), verbose=False)
    return root


def float_inputs(export_dir: Path):
    """(model name, {input: shape without batch}) of the first model with a float signature."""
    from serving import config
    from serving.server.models import read_meta_graph

    for name, base in config.discover_models(export_dir).items():
        versions = config.complete_versions(base)
        if not versions:
            continue
        signature = read_meta_graph(base / str(versions[-1])).signature_def.get("serving_default")
        if signature is None:
            continue
        shapes = {}
        for key, info in signature.inputs.items():
            dims = [d.size for d in info.tensor_shape.dim]
            if info.dtype != 1 or info.tensor_shape.unknown_rank or any(d < 0 for d in dims[1:]):
                break  # not DT_FLOAT with a fixed shape after the batch dimension
            shapes[key] = dims[1:]
        else:
            return name, shapes
    return None


# ---- server process ----------------------------------------------------------------------------


def baseline_checkout(ref: str, root: Path) -> Path:
    """The tree at `ref`, unpacked under `root` (git archive: no worktree, no index touched)."""
    root.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise SystemExit(f"error: git archive {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


class Server:
    def __init__(self, export_dir, batching, max_batch_size, batch_timeout_ms, log_path, cwd=REPO):
        cmd = [sys.executable, "-m", "serving", "serve", str(export_dir), "--backend", "embedded"]
        cmd += ["--host", "127.0.0.1", "--port", "0", "--rest-port", "0"]
        if batching:
            cmd += ["--enable-batching", "--max-batch-size", str(max_batch_size)]
            cmd += ["--batch-timeout-ms", str(batch_timeout_ms)]
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True
        ).start()
        self.rest_port = self.grpc_port = None
        deadline = time.monotonic() + 180
        while self.rest_port is None or self.grpc_port is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start; see {log_path}")
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if m := re.match(r"REST\s+http://127\.0\.0\.1:(\d+)", line):
                self.rest_port = int(m[1])
            if m := re.match(r"gRPC\s+127\.0\.0\.1:(\d+)", line):
                self.grpc_port = int(m[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# ---- clients -----------------------------------------------------------------------------------


def rest_worker(port, model, body, counter, deadline, latencies, errors):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    path = f"/v1/models/{model}:predict"
    headers = {"Content-Type": "application/json"}
    while counter.take() and time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            payload = response.read()
            ok = response.status == 200 and b'"predictions"' in payload
        except (OSError, http.client.HTTPException) as exc:
            ok = False
            payload = repr(exc).encode()
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies.append(time.perf_counter() - started)
        if not ok:
            errors.append(payload[:200].decode("utf-8", "replace"))
    conn.close()


def grpc_worker(port, request, counter, deadline, latencies, errors):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while counter.take() and time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                stub.Predict(request, timeout=60)
                ok, detail = True, ""
            except grpc.RpcError as exc:
                ok, detail = False, f"{exc.code().name}: {exc.details()}"
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors.append(detail)


class Counter:
    """Hands out a fixed number of request tickets to the client threads."""

    def __init__(self, n):
        self.left = n
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def run_clients(target, args_for, clients, requests, time_limit):
    latencies, errors = [], []
    counter = Counter(requests)
    deadline = time.monotonic() + time_limit
    threads = [
        threading.Thread(target=target, args=(*args_for, counter, deadline, latencies, errors))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def client_args(server, api, model, inputs):
    """(worker function, its leading arguments) for one API against one server."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    if api == "REST":
        if len(inputs) == 1:
            doc = {"instances": next(iter(inputs.values())).tolist()}
        else:
            doc = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
        body = json.dumps(doc).encode()
        return rest_worker, (server.rest_port, model, body)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return grpc_worker, (server.grpc_port, request)


def summary(latencies, errors, elapsed, requests) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "stopped_by_time_limit": len(latencies) < requests,
    }


def compare(servers, apis, model, inputs, args, batching) -> list[dict]:
    """Alternate between the servers round by round; one result row per (server, API)."""
    targets = {
        (side, api): client_args(server, api, model, inputs)
        for side, server in servers.items()
        for api in apis
    }
    for target, args_for in targets.values():  # warm up, not measured
        run_clients(target, args_for, min(args.clients, 4), 40, args.time_limit)
    pooled = {key: ([], [], 0.0) for key in targets}
    rounds = {key: [] for key in targets}
    sides = list(servers)
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for api in apis:
            for side in order:
                target, args_for = targets[(side, api)]
                lat, err, elapsed = run_clients(
                    target, args_for, args.clients, args.requests, args.time_limit
                )
                all_lat, all_err, total = pooled[(side, api)]
                pooled[(side, api)] = (all_lat + lat, all_err + err, total + elapsed)
                one = summary(lat, err, elapsed, args.requests)
                rounds[(side, api)].append(one)
                shown = {**one, "api": api, "batching": batching, "server": side}
                print(f"  round {r + 1} {_row(shown)}", flush=True)
    rows = []
    for (side, api), (lat, err, elapsed) in pooled.items():
        row = {"server": side, "api": api, "batching": batching}
        row.update(summary(lat, err, elapsed, args.requests * args.rounds))
        per_round = rounds[(side, api)]
        row["round_p50_ms"] = [x["p50_ms"] for x in per_round]
        row["round_p99_ms"] = [x["p99_ms"] for x in per_round]
        row["median_round_p50_ms"] = round(float(np.median(row["round_p50_ms"])), 2)
        row["median_round_p99_ms"] = round(float(np.median(row["round_p99_ms"])), 2)
        rows.append(row)
    return rows


def ratios(rows) -> list[dict]:
    """new/old for each (API, batching): below 1 is faster (latency) ; above 1 is faster (req/s)."""
    by = {(r["server"], r["api"], r["batching"]): r for r in rows}
    out = []
    for (side, api, batching), new in by.items():
        old = by.get(("old", api, batching))
        if side != "new" or old is None:
            continue
        entry = {"api": api, "batching": batching}
        for key in ("p50_ms", "p99_ms", "median_round_p50_ms", "median_round_p99_ms"):
            entry[f"{key}_new_over_old"] = round(new[key] / old[key], 3) if old[key] else None
        entry["requests_per_s_new_over_old"] = (
            round(new["requests_per_s"] / old["requests_per_s"], 3)
            if old["requests_per_s"]
            else None
        )
        out.append(entry)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export-dir", default=str(REPO / "exports"))
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=250, help="per server, API and round")
    p.add_argument("--rounds", type=int, default=12, help="alternations between the servers")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per turn")
    p.add_argument("--rows", type=int, default=1, help="examples per request")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-ms", type=float, default=2.0)
    p.add_argument("--api", choices=["REST", "gRPC", "both"], default="both")
    p.add_argument(
        "--baseline-ref",
        default="4e5dfe6",
        help="git ref of the server to compare with (default 4e5dfe6, the http.server one); "
        "'none' for this checkout alone, '.' for this checkout against itself (the noise floor)",
    )
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "serve.json"))
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1 or args.rounds < 1 or not 0 < args.time_limit <= 600:
        p.error("--clients, --requests, --rounds must be >= 1, --time-limit in (0, 600]")

    import tensorflow as tf

    scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    baseline = args.baseline_ref if args.baseline_ref.lower() != "none" else None
    try:
        export_dir = Path(args.export_dir)
        found = float_inputs(export_dir) if export_dir.is_dir() else None
        source = str(export_dir)
        if found is None:
            export_dir = tiny_export(scratch / "exports")
            found = float_inputs(export_dir)
            source = "tiny cnn exported by the benchmark (exports/ had no float-input model)"
        model, shapes = found
        if baseline == ".":  # an A/A run: this checkout against itself, to see the noise
            old_tree = REPO
        else:
            old_tree = baseline_checkout(baseline, scratch / "baseline") if baseline else None
        rng = np.random.default_rng(0)
        inputs = {
            k: rng.uniform(0, 255, size=(args.rows, *s)).astype(np.float32)
            for k, s in shapes.items()
        }
        apis = ["REST", "gRPC"] if args.api == "both" else [args.api]
        results = []
        for batching in (False, True):
            servers = {}
            try:
                trees = {"new": REPO, "old": old_tree} if old_tree else {"new": REPO}
                # Who starts first alternates with the batching setting.
                for side, tree in sorted(trees.items(), reverse=batching):
                    servers[side] = Server(
                        export_dir,
                        batching,
                        args.max_batch_size,
                        args.batch_timeout_ms,
                        scratch / f"server-{side}-batching-{batching}.log",
                        cwd=tree,
                    )
                servers = {side: servers[side] for side in trees}
                rows = compare(servers, apis, model, inputs, args, batching)
                for row in rows:
                    print(_row(row), flush=True)
                results.extend(rows)
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "benchmark": "embedded TF-Serving-compatible server, predict, this checkout vs baseline",
        "baseline_ref": baseline,
        "head": _git_head(),
        "model": model,
        "model_source": source,
        "input_shapes": {k: [args.rows, *s] for k, s in shapes.items()},
        "clients": args.clients,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "time_limit_s": args.time_limit,
        "batching": {
            "max_batch_size": args.max_batch_size,
            "batch_timeout_ms": args.batch_timeout_ms,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "note": "clients are threads in one process on the same machine as both servers; "
            "the servers take turns, each idle while the other is measured",
        },
        "scenarios": results,
        "new_over_old": ratios(results),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(report))
    print(f"\nwrote {out}")
    return 1 if any(r["errors"] for r in results) else 0


def _git_head() -> str | None:
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return head.stdout.strip() or None


def _row(r) -> str:
    return (
        f"{r.get('server', 'new'):<3} {r['api']:<5} batching={'on ' if r['batching'] else 'off'} "
        f"{r['requests']:>6} req {r['requests_per_s']:>8.1f} req/s  p50 {r['p50_ms']:>7.2f} ms  "
        f"p99 {r['p99_ms']:>7.2f} ms  errors {r['errors']}"
    )


def table(report) -> str:
    lines = [
        f"model {report['model']} input {report['input_shapes']}, {report['clients']} clients, "
        f"{report['rounds']} rounds x {report['requests_per_round']} requests, "
        f"{report['machine']['cpus']} CPUs, baseline {report['baseline_ref']}",
        "| server | API | batching | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(report["scenarios"], key=lambda r: (r["batching"], r["api"], r["server"])):
        lines.append(
            f"| {r['server']} | {r['api']} | {'on' if r['batching'] else 'off'} | {r['requests']} "
            f"| {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    if report["new_over_old"]:
        lines += [
            "",
            "| API | batching | p50 new/old | p99 new/old | req/s new/old |",
            "|---|---|---:|---:|---:|",
        ]
        for q in report["new_over_old"]:
            lines.append(
                f"| {q['api']} | {'on' if q['batching'] else 'off'} | {q['p50_ms_new_over_old']} "
                f"| {q['p99_ms_new_over_old']} | {q['requests_per_s_new_over_old']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
