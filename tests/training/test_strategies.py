"""The one loop under each tf.distribute strategy gives the same training."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, run_module
from tests.training import workers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(path, prefix=""):
    with np.load(path) as f:
        return [
            f[k]
            for k in sorted(
                (k for k in f.files if k.startswith(prefix + "w")),
                key=lambda k: int(k.rsplit("w", 1)[1]),
            )
        ]


def test_mirrored_on_two_logical_cpus_matches_one_device(shared_data, tmp_path):
    out = tmp_path / "weights.npz"
    proc = run_module(
        "tests.training.workers", "mirrored-vs-one", out, shared_data / "mnist5k", tmp_path / "runs"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, mirrored = load(out, "one_device/"), load(out, "mirrored/")
    assert len(one) == len(mirrored) > 0
    for a, b in zip(one, mirrored, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # and training really moved them: the mirrored run's weights are not the initial ones
    assert not np.allclose(one[0], 0)


def worker_environments(n):
    """The environments of n local MultiWorkerMirroredStrategy workers (TF_CONFIG by hand)."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(n)]}
    return [
        {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONUNBUFFERED": "1",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def two_process_run(shared_data, tmp_path_factory):
    """tests/training/workers.py multi-worker in two processes with hand-written TF_CONFIG: the
    directory holding w0.npz, w1.npz (each worker's final weights) and runs0/ (the chief's runs)."""
    tmp_path = tmp_path_factory.mktemp("two_process")
    procs = []
    for index, env in enumerate(worker_environments(2)):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.training.workers",
                    "multi-worker",
                    tmp_path / f"w{index}.npz",
                    shared_data / "mnist5k",
                    tmp_path / f"runs{index}",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    return tmp_path


def test_multi_worker_two_processes_end_with_identical_weights(two_process_run):
    tmp_path = two_process_run
    chief, worker = load(tmp_path / "w0.npz"), load(tmp_path / "w1.npz")
    for a, b in zip(chief, worker, strict=True):
        np.testing.assert_array_equal(a, b)
    # only the chief wrote a run directory
    assert list((tmp_path / "runs0" / workers.RECIPE).glob("*/checkpoints/checkpoint"))
    assert not (tmp_path / "runs1").exists()


def test_launch_two_workers_end_with_the_two_process_weights(
    two_process_run, shared_data, tmp_path
):
    """`python -m training launch --workers 2` (TF_CONFIG written by the launcher) trains the same
    recipe as the hand-written two-process run above to the same final weights: the chief's saved
    model.keras equals each worker's weights there. (Here, so the two-process run is shared.)"""
    from training import recipes

    steps, data_dir = 6, shared_data / "mnist5k"
    sets = [
        f"data.dataset=folder:{data_dir}",
        "run.tiny=true",
        "train.batch_size=32",
        f"train.max_steps={steps}",
        "train.log_every=1000",
        "data.shuffle_buffer=256",
    ]  # workers.py's recipe, checked:
    expected_recipe = workers.recipe(data_dir, "multi_worker", steps)
    name = expected_recipe["name"]
    assert recipes.resolve(name, [*sets, "run.strategy=multi_worker"]) == expected_recipe
    proc = run_module(
        "training",
        "launch",
        "--workers",
        "2",
        "--worker-logs",
        tmp_path / "logs",
        name,
        *[f"--set={s}" for s in sets],
        "--no-export",
        "--logdir",
        tmp_path / "runs",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = list((tmp_path / "runs" / name).glob("*/model.keras"))
    assert len(saved) == 1, saved  # one run directory: the chief's
    assert json.loads(proc.stdout.splitlines()[-1])["steps"] == steps
    assert (tmp_path / "logs" / "worker-1.log").is_file()

    import keras

    import zoo  # noqa: F401  (registers the zoo's layers for loading)

    launched = keras.saving.load_model(saved[0], compile=False).get_weights()
    expected = load(two_process_run / "w0.npz")
    assert len(launched) == len(expected) > 0
    for a, b in zip(launched, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sigterm_to_every_worker_at_once_stops_them_at_one_step(shared_data, tmp_path):
    """As Kubernetes stops a job: SIGTERM to both workers together, at slightly different steps.
    The workers agree on stopping at a step boundary, so neither waits in an all-reduce for a
    peer that has left: both exit 143 and the chief's checkpoint is saved."""
    procs = []
    for index, env in enumerate(worker_environments(2)):
        command = [sys.executable, "-m", "training", "train", workers.RECIPE, "--tiny"]
        command += ["--dataset", f"folder:{shared_data / 'mnist5k'}", "--strategy", "multi_worker"]
        command += ["--set", "train.batch_size=16", "--set", "train.log_every=1", "--no-export"]
        command += ["--set", "run.progress_seconds=0", "--logdir", str(tmp_path / f"runs{index}")]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        procs.append(subprocess.Popen(command, cwd=REPO, env=env, **pipes))
    try:
        for line in procs[0].stdout:  # the chief's progress: training is under way
            if " step 20/" in line:
                break
        procs[1].send_signal(signal.SIGTERM)
        time.sleep(0.05)
        procs[0].send_signal(signal.SIGTERM)
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [143, 143], errors[0][-2000:] + errors[1][-2000:]
    assert "checkpoint saved" in errors[0]
    assert list((tmp_path / "runs0" / workers.RECIPE).glob("*/checkpoints/checkpoint"))
