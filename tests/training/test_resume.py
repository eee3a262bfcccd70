"""A run stopped by SIGTERM saves a checkpoint; `--resume` finishes it at the same step count
and with the same metrics as a run that was never stopped."""

import json
import os
import signal
import subprocess
import sys

from tests.conftest import REPO, run_module

ARGS = [
    "--tiny",
    "--no-export",
    "--set",
    "train.batch_size=32",
    "--epochs",
    "2",
    "--set",
    "train.log_every=1",
    "--set",
    "run.progress_seconds=0",  # a progress line at every step (stdout is not a terminal)
]


def train(logdir, data, *extra):
    return run_module(
        "training", "train", "cnn", "--dataset", f"folder:{data}", "--logdir", logdir, *ARGS, *extra
    )


def final(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sigterm_then_resume_matches_an_uninterrupted_run(shared_data, tmp_path):
    data = shared_data / "mnist5k"
    reference = final(train(tmp_path / "straight", data))
    assert reference["steps"] == 250  # 4000 // 32 * 2

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "cnn",
            "--dataset",
            f"folder:{data}",
            "--logdir",
            tmp_path / "stopped",
            *ARGS,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if line.startswith("epoch 1/2  step 40/125 "):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "checkpoint saved" in err and "--resume" in err
    (run_dir,) = (tmp_path / "stopped" / "cnn").iterdir()
    stopped_at = int(
        open(run_dir / "checkpoints" / "checkpoint").read().split('"ckpt-')[1].split('"')[0]
    )
    assert 40 <= stopped_at < 250

    resumed = final(train(tmp_path / "stopped", data, "--resume"))
    assert resumed["run_dir"] == str(run_dir)
    assert resumed["steps"] == reference["steps"]
    for metric in ("loss", "accuracy"):
        assert abs(resumed["validation"][metric] - reference["validation"][metric]) < 0.02, metric


def test_resume_without_a_run_is_a_clear_error(tmp_path, shared_data):
    proc = train(tmp_path / "empty", shared_data / "mnist5k", "--resume")
    assert proc.returncode == 2
    assert "no run of 'cnn' with a checkpoint" in proc.stderr


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(shared_data, tmp_path):
    import numpy as np
    import tensorflow as tf

    proc = train(
        tmp_path,
        shared_data / "mnist5k",
        "--set",
        "optimizer.name=sgd",
        "--set",
        "optimizer.lr=1e30",
        "--set",
        "train.checkpoint_every=1",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert "loss became nan" in message and "Last good checkpoint" in message
    (run_dir,) = (tmp_path / "cnn").iterdir()
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert latest and latest in message
    reader = tf.train.load_checkpoint(latest)
    values = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "model" in k]
    assert values and all(np.isfinite(v).all() for v in values if v.dtype.kind == "f")
