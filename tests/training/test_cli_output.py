"""What `python -m training train` prints: no TensorFlow start-up notices or converter diagnostics,
a progress bar with elapsed time and ETA in a terminal, plain lines in a log, a partial last epoch
said as such, and validation metrics labelled as validation."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

from tests.conftest import REPO

NOISE = ("I0000", "W0000", "cuInit", "absl::InitializeLog", "error:", "XNNPACK", "oneDNN", "\r")


def command(shared_data, tmp_path, *extra):
    return [
        sys.executable, "-m", "training", "train", "cnn", "--tiny",
        "--dataset", f"folder:{shared_data / 'mnist5k'}", "--logdir", str(tmp_path / "runs"),
        "--export-dir", str(tmp_path / "exports"), "--set", "train.batch_size=32",
        "--set", "train.log_every=5", *extra,
    ]  # fmt: skip


def plain_env():
    """The environment of a user's shell: TF_CPP_MIN_LOG_LEVEL not set."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_a_logged_run_prints_plain_readable_lines(shared_data, tmp_path):
    proc = subprocess.run(
        command(
            shared_data, tmp_path, "--set", "train.max_steps=20", "--set", "run.progress_seconds=0",
            "--set", 'export.tflite.variants=["float32","int8"]',
        ),
        cwd=REPO, env=plain_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in NOISE:
        assert noise not in proc.stderr, (noise, proc.stderr[-3000:])
        assert noise not in proc.stdout, (noise, proc.stdout[-3000:])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("training cnn on folder:")
    assert any(line.startswith("epoch 1/") and " step 10/20 " in line for line in lines)
    assert any(
        line.startswith("epoch 1/") and "(partial: 20 of 125 steps, max_steps reached)" in line
        for line in lines
    ), lines
    done = next(line for line in lines if line.startswith("done: 20 steps"))
    assert "; validation loss " in done and "accuracy" in done
    assert any(line.startswith("converting serving_default to TFLite: int8") for line in lines)
    assert json.loads(lines[-1])["export"] == str(tmp_path / "exports" / "cnn" / "1")


def test_a_terminal_gets_a_progress_bar_with_elapsed_time_and_eta(shared_data, tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen(
        command(shared_data, tmp_path, "--set", "train.max_steps=60", "--no-export"),
        cwd=REPO, env=plain_env(), stdin=follower, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=600) == 0
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    # tqdm's bar: "epoch 1/20:  40%|####      | 50/125 [00:02<00:03, 21.3step/s, loss ...]"
    assert "epoch 1/" in screen and "step/s" in screen and "<00:" in screen, screen[-2000:]
    assert "loss" in screen
    for noise in NOISE[:-1]:  # a terminal may have \r: the bar redraws
        assert noise not in screen, (noise, screen[-3000:])
