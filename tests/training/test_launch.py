"""`python -m training launch`: local MultiWorkerMirroredStrategy workers, and the Kubeflow TFJob.

The 2-worker launch ending with the weights of the hand-written two-process run is in
test_strategies.py, beside that run (so the suite trains it once).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from tests.conftest import REPO
from training import launch


def launch_in_process(capsys, monkeypatch, *argv):
    """launch.main(argv) -> (code, stdout, stderr), failing if it starts a process."""

    def no_process(*a, **k):
        raise AssertionError(f"a process was started: {a}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    code = launch.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err.strip()


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["--workers", "0", "cnn"], "--workers 0: needs at least 1"),
        (["cnn"], "--workers N is required"),
        (["cnn", "--workers", "2"], "launcher flag --workers must come before the recipe"),
        (["--workers", "2", "no_such_recipe"], "unknown recipe 'no_such_recipe'"),
        (["--workers", "2", "cnn", "--strategy", "mirrored"], "launch runs every worker with"),
        (["--workers", "2", "cnn", "--set", "run.strategy=auto"], "launch runs every worker with"),
        (["--workers", "2", "cnn", "--set", "optimizer.nope=1"], "no field 'optimizer.nope'"),
        (["--workers", "2", "cnn", "--warp"], "unrecognized arguments: --warp"),
        (["--workers", "2", "--set", "x=1", "cnn"], "train flags go after the recipe"),
        (["--workers", "2", "cnn", "--dataset", "folder:/no/such/dir"], "does not exist"),
        (["--workers", "2", "cnn", "--resume"], "--resume needs --workers 1"),
        (["--workers", "2", "ppo-cartpole"], "reinforcement learning runs on one device"),
        (["--workers", "2", "--port", "http", "cnn"], "expected auto or a port number"),
        (["--workers", "2", "--image", "x", "cnn"], "--image does not apply to local workers"),
        (["--workers", "2", "--emit", "k8s", "--port", "9000", "cnn"], "does not apply to --emit"),
        (["--workers", "2", "--emit", "k8s", "--name", "Bad_Name", "cnn"], "DNS-1035"),
        (["--workers", "2", "--emit", "yaml", "cnn"], "invalid choice: 'yaml'"),
    ],
)
def test_bad_requests_exit_2_and_start_nothing(capsys, monkeypatch, tmp_path, argv, reason):
    monkeypatch.chdir(tmp_path)
    code, out, err = launch_in_process(capsys, monkeypatch, *argv)
    assert code == 2
    assert reason in err and len(err.splitlines()) == 1 and err.startswith("launch: error:"), err
    assert not out and not list(tmp_path.iterdir())


def test_a_taken_port_is_a_bad_request(capsys, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = launch_in_process(
            capsys, monkeypatch, "--workers", "1", "--port", port, "cnn"
        )
    assert code == 2 and f"127.0.0.1:{port} is not free" in err


def emit(capsys, monkeypatch, *argv):
    code, out, err = launch_in_process(capsys, monkeypatch, "--emit", "k8s", *argv)
    assert code == 0, err
    return out


def test_k8s_manifest_names_the_recipe_the_workers_and_the_command(capsys, monkeypatch, tmp_path):
    path = tmp_path / "k8s" / "cnn.yaml"
    emit(
        capsys,
        monkeypatch,
        "--workers",
        "3",
        "--image",
        "registry.example/zoo:1.0",
        "--namespace",
        "ml",
        "--pvc",
        "zoo-output",
        "--gpus",
        "1",
        "--out",
        path,
        "cnn",
        "--strategy",
        "multi_worker",  # allowed, and not repeated in the command
        "--epochs",
        "2",
        "--set",
        "optimizer.lr=3e-4",
    )
    text = path.read_text()
    assert text.startswith("# Kubeflow TFJob") and "&id" not in text  # plain YAML, no anchors
    job = yaml.safe_load(text)
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    assert job["metadata"]["name"] == "zoo-cnn" and job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["labels"]["model-zoo/recipe"] == "cnn"
    assert set(job["spec"]["tfReplicaSpecs"]) == {"Worker"}  # worker 0 is the chief
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3 and worker["restartPolicy"] == "Never"
    pod = worker["template"]["spec"]
    [container] = pod["containers"]
    assert container["name"] == "tensorflow"  # the training-operator's required name
    assert container["image"] == "registry.example/zoo:1.0"
    assert container["command"] == [
        "python",
        "-m",
        "training",
        "train",
        "cnn",
        "--strategy",
        "multi_worker",
        "--epochs",
        "2",
        "--set",
        "optimizer.lr=3e-4",
    ]
    assert container["workingDir"] == "/workspace"
    assert "TF_CONFIG" not in {e["name"] for e in container["env"]}  # the operator sets it
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["volumes"] == [
        {"name": "output", "persistentVolumeClaim": {"claimName": "zoo-output"}}
    ]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {
        "/workspace/runs",
        "/workspace/exports",
    }
    assert worker["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


def test_k8s_single_worker_sets_its_own_tf_config(capsys, monkeypatch):
    """The operator sets no TF_CONFIG for a one-replica job; multi_worker needs one."""
    job = yaml.safe_load(emit(capsys, monkeypatch, "--workers", "1", "inception_v3-cifar10"))
    assert job["metadata"]["name"] == "zoo-inception-v3-cifar10"  # a DNS-1035 label
    assert "namespace" not in job["metadata"]
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    [container] = worker["template"]["spec"]["containers"]
    assert worker["replicas"] == 1 and container["image"] == launch.DEFAULT_IMAGE
    assert container["command"][4:] == ["inception_v3-cifar10", "--strategy", "multi_worker"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": ["localhost:2222"]},
        "task": {"type": "worker", "index": 0},
    }
    assert "volumes" not in worker["template"]["spec"]


class Launcher:
    """`python -m training launch ...` in the background, its output (launcher + chief) read
    line by line."""

    def __init__(self, *argv):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "training", "launch", *map(str, argv)],
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines, self._queue = [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        self.proc.kill()
        raise AssertionError(f"no {text!r} in the output:\n" + "\n".join(self.lines[-40:]))

    def finish(self, timeout):
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, "\n".join(self.lines)

    def pids(self):
        return {
            int(w): int(p)
            for line in self.lines
            if line.startswith("launch: worker ") and " pid " in line
            for w, p in [(line.split()[2], line.split(" pid ")[1].split()[0])]
        }


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def long_run(shared_data, tmp_path):
    return [
        "cnn",
        "--dataset",
        f"folder:{shared_data / 'mnist5k'}",
        "--set=run.tiny=true",
        "--set=train.batch_size=32",
        "--set=data.shuffle_buffer=256",
        "--set=train.log_every=2",
        "--set=run.progress_seconds=0",  # a progress line at every log step
        "--no-export",
        "--logdir",
        tmp_path / "runs",
    ]


def test_a_killed_worker_stops_all_and_the_launch_fails(shared_data, tmp_path):
    """Worker 1 dies (SIGKILL, like a lost machine) while the chief trains: the chief, blocked in
    a collective with it, is stopped (SIGTERM, SIGKILL 5 s later) and the launch exits 137."""
    launcher = Launcher(
        "--workers",
        "2",
        "--worker-logs",
        tmp_path / "logs",
        *long_run(shared_data, tmp_path),
    )
    launcher.wait_for("step 2/")  # both workers are in the loop
    pids = launcher.pids()
    assert set(pids) == {0, 1}
    os.kill(pids[1], signal.SIGKILL)
    killed = time.monotonic()
    code, out = launcher.finish(timeout=60)
    assert code == 128 + signal.SIGKILL, out[-3000:]
    assert time.monotonic() - killed < launch.QUICK_GRACE + 10, out[-3000:]
    assert "worker 1 exited with signal SIGKILL" in out
    assert "last lines of worker 1" in out  # the tail of its log
    assert not alive(pids[0])


def test_sigterm_to_the_launcher_stops_every_worker(shared_data, tmp_path):
    """SIGTERM to the launcher reaches every worker: the chief saves a checkpoint and says so,
    nothing is left running, and the launch exits 143."""
    launcher = Launcher(
        "--workers",
        "2",
        "--worker-logs",
        tmp_path / "logs",
        *long_run(shared_data, tmp_path),
    )
    launcher.wait_for("step 2/")
    pids = launcher.pids()
    launcher.proc.send_signal(signal.SIGTERM)
    code, out = launcher.finish(timeout=60)
    assert code == 143, out[-3000:]
    assert "SIGTERM: stopping 2 worker(s)" in out
    assert not any(alive(p) for p in pids.values())
    assert "checkpoint saved" in out, out[-3000:]
    assert list((tmp_path / "runs" / "cnn").glob("*/checkpoints/checkpoint"))
