"""`python -m training launch`: MultiWorkerMirroredStrategy without hand-written TF_CONFIG.

Local workers (like torchrun):

    python -m training launch --workers N [--host 127.0.0.1] [--port auto|BASE] [--grace 30]
                              [--worker-logs DIR] <recipe> [train flags...]

starts N processes of `python -m training train <recipe> --strategy multi_worker [train flags...]`
(every flag after the recipe goes to each worker unchanged; launcher flags go before the recipe).
Worker i gets TF_CONFIG {"cluster": {"worker": ["HOST:PORT0", ...]}, "task": {"type": "worker",
"index": i}}; with no "chief" in the cluster, worker 0 is the chief: only it writes runs/ and
exports/, as under any multi_worker run. `--port auto` (the default) takes N free ports on HOST from
the kernel; `--port BASE` uses BASE..BASE+N-1 and refuses them if one is taken.

- Output: worker 0 (the chief) writes straight to the launcher's terminal (its progress line and
  final JSON as `train` prints them); workers 1..N-1 write to DIR/worker-<i>.log, DIR being
  --worker-logs or a new temporary directory `zoo-launch-<recipe>-*` (named at the start; kept).
- Failure: when a worker exits non-zero, the launcher names it (with the last lines of its log),
  stops the others (SIGTERM to each worker's process group, SIGKILL after 5 s: a worker blocked
  in a collective op never sees its SIGTERM) and exits with that worker's code (128+signal for a
  worker killed by a signal; the lowest index when several fail together). A lost peer also
  fails the others by itself, within about 15 s (TensorFlow's heartbeats).
- Ctrl-C or SIGTERM to the launcher: SIGTERM to the chief, which saves a checkpoint at its next
  step boundary and exits 143 (`--resume` continues, with N=1), SIGKILL if it has not within
  --grace seconds (default 30); then SIGTERM to the other workers, SIGKILL after 5 s. At every
  step boundary the workers all-reduce their SIGTERM flags (training/loop.py), so the chief's
  signal stops every worker at the same step, and so does a SIGTERM sent to all pods at once
  (Kubernetes). The launcher exits 130 (Ctrl-C) or 143 (SIGTERM); a
  second Ctrl-C kills every worker at once. Workers run in their own sessions, so a terminal's
  Ctrl-C reaches only the launcher; on Linux a worker is killed if the launcher itself dies.
- Exit codes: 0 when every worker exits 0; 2 for a bad request (N < 1, unknown recipe, malformed
  train flags or --set, a --strategy other than multi_worker, a missing data folder, a port in use,
  --resume with N > 1), with a one-line reason and nothing started; else the failing worker's code.
- `--resume` needs N=1 for now: the loop restores checkpoints on the chief only, and a non-chief
  worker finds nothing to resume in its private checkpoint directory.

Kubernetes (Kubeflow training-operator TFJob):

    python -m training launch --workers N --emit k8s [--image model-zoo:latest] [--namespace NS]
        [--name zoo-<recipe>] [--pvc CLAIM] [--cpu 2] [--memory 8Gi] [--gpus 0]
        [--restart-policy Never] [--out -|FILE] <recipe> [train flags...]

writes (to stdout by default) a `kubeflow.org/v1` TFJob with spec.tfReplicaSpecs.Worker of N
replicas, one container named `tensorflow` (the operator injects TF_CONFIG only into the container
of that name) running `python -m training train <recipe> --strategy multi_worker [train flags...]`
in /workspace. The operator builds TF_CONFIG from the Worker replicas, so worker 0 is the chief as
here; it sets none for a job of a single replica, so with N=1 the manifest sets a one-worker
TF_CONFIG itself. Defaults and why:
- image `model-zoo:latest`: an image of this checkout at /workspace with requirements.txt
  installed (`python -m training` must run in /workspace). Data sets must be inside the image or
  reachable from the pod (TFDS_DATA_DIR, a `folder:` path on a mounted volume).
- restartPolicy Never (the operator's default): a restarted worker cannot rejoin running
  collectives; rerun the job instead. runPolicy.cleanPodPolicy Running: when the job ends (the
  chief done, or a worker failed) the pods still running are deleted, as the local launcher stops
  them; finished pods stay for `kubectl logs`.
- requests cpu 2, memory 8Gi (memory also the limit); `--gpus K` adds nvidia.com/gpu: K limits.
- the pod annotation sidecar.istio.io/inject: "false" (Kubeflow's docs: TFJob pods do not run
  with Istio's injected sidecar); port 2222 named tfjob-port (the operator's defaults, explicit).
- no volume unless `--pvc CLAIM`: then the claim's subpaths runs/ and exports/ are mounted at
  /workspace/runs and /workspace/exports, where the chief writes with the default --logdir and
  --export-dir (every worker mounts it: a ReadWriteMany claim, or all pods on one node). Without
  it, the run directory and exports live and die with the chief's pod.
"""

import argparse
import contextlib
import io
import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

from training.tooling import ArgumentParser, BadRequest

REPO = pathlib.Path(__file__).resolve().parents[1]
STRATEGY = "multi_worker"
DEFAULT_IMAGE = "model-zoo:latest"
WORKDIR = "/workspace"
TAIL_LINES = 30
GRACE = 30.0  # seconds for the chief to save a checkpoint and exit after SIGTERM
QUICK_GRACE = 5.0  # for the others, and for everyone after a worker failed
RESTART_POLICIES = ("Never", "OnFailure", "ExitCode", "Always")
LOCAL_FLAGS = ("host", "port", "grace", "worker_logs")
K8S_FLAGS = (
    "image",
    "namespace",
    "name",
    "pvc",
    "cpu",
    "memory",
    "gpus",
    "restart_policy",
    "out",
)


def _parser():
    p = ArgumentParser(
        prog="python -m training launch",
        description="Train a recipe on N local MultiWorkerMirroredStrategy workers, or write a "
        "Kubeflow TFJob for it. Launcher flags go before the recipe; every flag after it goes to "
        "`python -m training train` in each worker.",
    )
    p.add_argument("--workers", type=int, metavar="N", help="number of workers (required)")
    p.add_argument("--emit", choices=["k8s"], help="write a Kubeflow TFJob manifest instead")
    local = p.add_argument_group("local workers")
    local.add_argument("--host", help="address in TF_CONFIG (default 127.0.0.1)")
    local.add_argument("--port", help="auto (free ports, the default) or the first of N ports")
    local.add_argument(
        "--grace",
        type=float,
        help=f"seconds for the chief from SIGTERM to SIGKILL when stopping (default {GRACE:g})",
    )
    local.add_argument("--worker-logs", metavar="DIR", help="where workers 1..N-1 log")
    k8s = p.add_argument_group("--emit k8s")
    k8s.add_argument("--image", help=f"container image (default {DEFAULT_IMAGE})")
    k8s.add_argument("--namespace", help="metadata.namespace (default: kubectl's)")
    k8s.add_argument("--name", help="TFJob name (default zoo-<recipe>)")
    k8s.add_argument("--pvc", metavar="CLAIM", help="keep runs/ and exports/ on this claim")
    k8s.add_argument("--cpu", help="CPU request per worker (default 2)")
    k8s.add_argument("--memory", help="memory request and limit per worker (default 8Gi)")
    k8s.add_argument("--gpus", type=int, help="nvidia.com/gpu per worker (default 0)")
    k8s.add_argument("--restart-policy", choices=RESTART_POLICIES, help="default Never")
    k8s.add_argument("--out", metavar="FILE", help="manifest file, or - for stdout (default)")
    p.add_argument("recipe")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="flags for `training train`")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args = _parser().parse_args(argv)
        except BadRequest as e:
            hint = " (train flags go after the recipe)" if "unrecognized" in str(e) else ""
            raise BadRequest(f"{e}{hint}") from None
        args.argv = argv
        passed = _check(args)
    except BadRequest as e:
        print(f"launch: error: {e}", file=sys.stderr)
        return 2
    if args.emit == "k8s":
        return _emit_k8s(args, passed)
    return _launch_local(args, passed)


# ---- the request ---------------------------------------------------------------------------------


def _check(args) -> list[str]:
    """Validate everything that can be checked here; returns the flags passed to every worker
    (any --strategy removed: the command adds `--strategy multi_worker` itself)."""
    from training import recipes, rl

    ours = [a for a in args.train_args if a.split("=")[0] in _launcher_flags()]
    if ours:
        raise BadRequest(f"launcher flag {ours[0].split('=')[0]} must come before the recipe")
    if args.workers is None:
        raise BadRequest("--workers N is required (before the recipe)")
    if args.workers < 1:
        raise BadRequest(f"--workers {args.workers}: needs at least 1")
    mode, other = ("--emit k8s", LOCAL_FLAGS) if args.emit else ("local workers", K8S_FLAGS)
    for flag in other:
        if getattr(args, flag) is not None:
            raise BadRequest(f"--{flag.replace('_', '-')} does not apply to {mode}")
    train = _parse_train_flags(args.recipe, args.train_args)
    if train.strategy not in (None, STRATEGY):
        raise BadRequest(
            f"--strategy {train.strategy}: launch runs every worker with --strategy {STRATEGY}"
        )
    for assignment in train.set:
        key, _, value = assignment.partition("=")
        if key.strip() == "run.strategy" and value.strip().strip("\"'") != STRATEGY:
            raise BadRequest(
                f"--set {assignment}: launch runs every worker with --strategy {STRATEGY}"
            )
    try:
        recipe = recipes.resolve(args.recipe, train.set)
    except recipes.RecipeError as e:
        raise BadRequest(str(e)) from None
    if rl.trains(recipe):
        raise BadRequest(f"{args.recipe}: reinforcement learning runs on one device, not workers")
    if train.resume and args.workers > 1:
        raise BadRequest(
            "--resume needs --workers 1: the loop restores checkpoints on the chief only"
        )
    if not args.emit and train.dataset and train.dataset.startswith("folder:"):
        folder = pathlib.Path(train.dataset.removeprefix("folder:")).expanduser()
        if not folder.is_dir():
            raise BadRequest(f"--dataset {train.dataset}: {folder} does not exist")
    if args.grace is not None and args.grace < 0:
        raise BadRequest(f"--grace {args.grace:g}: must be 0 or more")
    if args.gpus is not None and args.gpus < 0:
        raise BadRequest(f"--gpus {args.gpus}: must be 0 or more")
    if args.name is not None and not _dns_label(args.name):
        raise BadRequest(
            f"--name {args.name!r}: a TFJob name is a DNS-1035 label (a-z, 0-9, '-', starting "
            "with a letter, at most 63 characters)"
        )
    return _without_strategy(args.train_args)


def _launcher_flags():
    return {o for a in _parser()._actions for o in a.option_strings if o not in ("-h", "--help")}


def _parse_train_flags(recipe, train_args):
    """The train command's own parser (training/cli.py), so launch accepts exactly its flags."""
    from training import cli

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return cli._parser().parse_args(["train", recipe, *train_args])
    except SystemExit as e:
        if e.code == 0:  # --help after the recipe: the train command's help
            print(captured.getvalue(), end="")
            raise SystemExit(0) from None
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "bad train flags"
        raise BadRequest(f"train flags: {reason}") from None


def _without_strategy(train_args) -> list[str]:
    out, skip = [], False
    for a in train_args:
        if skip:
            skip = False
        elif a == "--strategy":
            skip = True
        elif not a.startswith("--strategy="):
            out.append(a)
    return out


def _train_command(recipe, passed) -> list[str]:
    return ["-m", "training", "train", recipe, "--strategy", STRATEGY, *passed]


# ---- local workers -------------------------------------------------------------------------------


def _launch_local(args, passed) -> int:
    n, host = args.workers, args.host or "127.0.0.1"
    grace = GRACE if args.grace is None else args.grace
    try:
        ports = _ports(host, n, args.port or "auto")
    except BadRequest as e:
        print(f"launch: error: {e}", file=sys.stderr)
        return 2
    cluster = {"worker": [f"{host}:{p}" for p in ports]}
    log_dir = None
    if n > 1:
        if args.worker_logs:
            log_dir = pathlib.Path(args.worker_logs)
            log_dir.mkdir(parents=True, exist_ok=True)
        else:
            log_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"zoo-launch-{args.recipe}-"))
    command = [sys.executable, *_train_command(args.recipe, passed)]
    say(f"{n} worker(s) on {', '.join(cluster['worker'])}: {shlex.join(command[1:])}")
    procs, logs = [], []
    for index in range(n):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        out = None
        if index > 0:
            out = open(log_dir / f"worker-{index}.log", "w")  # closed once all have started
            logs.append(out)
        try:
            procs.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )
        except OSError as e:
            say(f"cannot start worker {index}: {e}")
            _stop(procs, 0, [], chief_first=False)
            return 1
        where = "prints here" if index == 0 else f"logs to {log_dir / f'worker-{index}.log'}"
        say(f"worker {index}{' (chief)' if index == 0 else ''} pid {procs[-1].pid} {where}")
    for f in logs:
        f.close()
    return _supervise(procs, grace, log_dir)


def _ports(host, n, port) -> list[int]:
    if port == "auto":
        socks = []
        try:
            for _ in range(n):
                s = socket.socket(_family(host))
                socks.append(s)
                s.bind((host, 0))
            return [s.getsockname()[1] for s in socks]
        except OSError as e:
            raise BadRequest(f"--host {host}: cannot bind a port there ({e.strerror})") from None
        finally:
            for s in socks:
                s.close()
    try:
        base = int(port)
    except ValueError:
        raise BadRequest(f"--port {port!r}: expected auto or a port number") from None
    if not 1 <= base <= 65536 - n:
        raise BadRequest(f"--port {base}: ports {base}..{base + n - 1} are not all valid")
    for p in range(base, base + n):
        with socket.socket(_family(host)) as s:
            try:
                s.bind((host, p))
            except OSError as e:
                raise BadRequest(f"--port {base}: {host}:{p} is not free ({e.strerror})") from None
    return list(range(base, base + n))


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _die_with_parent():
    """In the child before exec: SIGKILL it if the launcher dies (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _supervise(procs, grace, log_dir) -> int:
    received = []

    def on_signal(signum, _frame):
        received.append(signum)
        if len(received) > 1:  # asked twice: no more grace
            _signal_all(procs, signal.SIGKILL)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            previous[sig] = signal.signal(sig, on_signal)
    try:
        while True:
            if received:
                name = signal.Signals(received[0]).name
                say(f"{name}: stopping {len(procs)} worker(s)")
                _stop(procs, grace, received, chief_first=True)
                return 128 + received[0]
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                for i, c in failed:
                    say(f"worker {i}{' (chief)' if i == 0 else ''} exited with {_describe(c)}")
                tails = [i for i, _ in failed if i > 0]
                if tails:
                    _show_tail(log_dir / f"worker-{tails[0]}.log", tails[0])
                if any(c is None for c in codes):
                    say("stopping the other workers")
                _stop(procs, grace, received, chief_first=False)
                return _exit_code(failed[0][1])
            if all(c == 0 for c in codes):
                if log_dir:
                    say(f"{len(procs)} workers done (worker logs: {log_dir})")
                return 0
            time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(procs, grace, received, chief_first):
    """SIGTERM, then SIGKILL for those left. chief_first (the launcher was asked to stop): the
    chief alone first, with `grace` seconds to reach a step boundary, save its checkpoint and
    exit; then the others. Otherwise (a worker failed: the rest are blocked in collectives or
    about to fail on their own), everyone at once. Those after the chief, or after a failure, get
    QUICK_GRACE seconds; a second signal meanwhile kills at once."""
    seen = len(received)
    phases = (
        [(procs[:1], grace), (procs[1:], QUICK_GRACE)] if chief_first else [(procs, QUICK_GRACE)]
    )
    for group, seconds in phases:
        _signal_all(group, signal.SIGTERM)
        deadline = time.monotonic() + min(seconds, grace)
        while any(p.poll() is None for p in group):
            if time.monotonic() >= deadline or len(received) > seen:
                left = [str(i) for i, p in enumerate(procs) if p.poll() is None]
                say(f"worker(s) {', '.join(left)} still running: SIGKILL")
                _signal_all(procs, signal.SIGKILL)
                break
            time.sleep(0.1)
    for p in procs:
        p.wait()


def _signal_all(procs, sig):
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)  # its own session: the worker and anything it started


def _show_tail(path, index):
    try:
        lines = path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    except OSError:
        return
    say(f"last lines of worker {index} ({path}):")
    for line in lines:
        print(f"  [worker {index}] {line}", file=sys.stderr)


def _describe(code):
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _exit_code(code):
    return 128 - code if code < 0 else code


def say(message):
    print(f"launch: {message}", file=sys.stderr, flush=True)


# ---- Kubernetes ----------------------------------------------------------------------------------


def manifest(args, passed) -> dict:
    """The TFJob for `args` (the parsed launch request) as a dict."""
    recipe, n = args.recipe, args.workers
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    if n == 1:  # the operator sets no TF_CONFIG for a single replica
        tf_config = {
            "cluster": {"worker": ["localhost:2222"]},
            "task": {"type": "worker", "index": 0},
        }
        env.append({"name": "TF_CONFIG", "value": json.dumps(tf_config)})
    memory = args.memory or "8Gi"
    resources = {
        "requests": {"cpu": args.cpu or "2", "memory": memory},
        "limits": {"memory": memory},
    }
    if args.gpus:
        resources["limits"]["nvidia.com/gpu"] = args.gpus
    container = {
        "name": "tensorflow",  # the training-operator requires (and injects TF_CONFIG into) it
        "image": args.image or DEFAULT_IMAGE,
        "workingDir": WORKDIR,
        "command": ["python", *_train_command(recipe, passed)],
        "env": env,
        "ports": [{"name": "tfjob-port", "containerPort": 2222}],
        "resources": resources,
    }
    pod = {"containers": [container]}
    if args.pvc:
        container["volumeMounts"] = [
            {"name": "output", "mountPath": f"{WORKDIR}/{sub}", "subPath": sub}
            for sub in ("runs", "exports")
        ]
        pod["volumes"] = [{"name": "output", "persistentVolumeClaim": {"claimName": args.pvc}}]
    labels = {"app.kubernetes.io/name": "model-zoo", "model-zoo/recipe": _label_value(recipe)}
    metadata = {"name": args.name or _job_name(recipe), "labels": labels}
    if args.namespace:
        metadata["namespace"] = args.namespace
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": metadata,
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running"},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": n,
                    "restartPolicy": args.restart_policy or "Never",
                    "template": {
                        "metadata": {
                            "labels": dict(labels),  # a copy: no YAML anchors
                            "annotations": {"sidecar.istio.io/inject": "false"},
                        },
                        "spec": pod,
                    },
                }
            },
        },
    }


def _emit_k8s(args, passed) -> int:
    import yaml

    doc = manifest(args, passed)
    header = (
        f"# Kubeflow TFJob: {args.workers} MultiWorkerMirroredStrategy worker(s) training recipe "
        f"{args.recipe}; worker 0 is the chief.\n"
        f"# Written by: python -m training launch {shlex.join(args.argv)}\n"
        "# Apply with: kubectl apply -f FILE (the Kubeflow training-operator must be installed).\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    if not args.out or args.out == "-":
        sys.stdout.write(text)
    else:
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        say(f"wrote {out} (TFJob {doc['metadata']['name']}, {args.workers} worker(s))")
    return 0


def _job_name(recipe) -> str:
    name = "".join(c if c.isalnum() else "-" for c in f"zoo-{recipe}".lower())
    name = "-".join(filter(None, name.split("-")))
    return name[:50].rstrip("-")  # room for the operator's -worker-<i> pod and service names


def _dns_label(name) -> bool:
    letters = set("abcdefghijklmnopqrstuvwxyz")
    ok = letters | set("0123456789-")
    return 0 < len(name) <= 63 and name[0] in letters and set(name) <= ok and name[-1] != "-"


def _label_value(value) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63].strip("-_.")
