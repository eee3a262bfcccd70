"""The one loop under each tf.distribute strategy gives the same training."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests.conftest import REPO, run_module


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(path, prefix=""):
    with np.load(path) as f:
        return [
            f[k]
            for k in sorted(
                (k for k in f.files if k.startswith(prefix)), key=lambda k: int(k.rsplit("w", 1)[1])
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


def test_multi_worker_two_processes_end_with_identical_weights(shared_data, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
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
    chief, worker = load(tmp_path / "w0.npz"), load(tmp_path / "w1.npz")
    for a, b in zip(chief, worker, strict=True):
        np.testing.assert_array_equal(a, b)
    # only the chief wrote a run directory
    assert list((tmp_path / "runs0" / "cnn").glob("*/checkpoints/checkpoint"))
    assert not (tmp_path / "runs1").exists()
