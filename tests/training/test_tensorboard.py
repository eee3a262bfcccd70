"""TensorBoard's HParams tab over runs of different recipes and tasks, read through TensorBoard's
own HTTP API as the dashboard reads it: every run brings its own hyperparameters and metrics,
and its trial is named `<recipe>/<time>`."""

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from training import loop, recipes

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
SETS = ["run.tiny=true", "train.max_steps=3", "train.batch_size=32", "data.shuffle_buffer=64"]


@pytest.fixture(scope="module")
def logdir(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("hparams")
    data = f"data.dataset=folder:{shared_data / 'mnist5k'}"
    for name, extra in [
        ("cnn", ["optimizer.lr=0.002"]),
        ("autoencoder", ["task.frechet_samples=0", "task.grid_size=4"]),
    ]:
        loop.train(recipes.resolve(name, [data, *SETS, *extra]), logdir=root, verbose=False)
    return root


@pytest.fixture(scope="module")
def tensorboard(logdir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1"]
        + ["--port", "0", "--load_fast", "false", "--reload_interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if m := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                url = f"http://127.0.0.1:{m[1]}"
                break
        else:
            pytest.fail("tensorboard did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(url, path, body):
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_each_run_fills_its_own_hparams_and_metrics(tensorboard):
    deadline = time.time() + 90
    while True:  # TensorBoard loads the event files in the background
        experiment = post(tensorboard, "/data/plugin/hparams/experiment", {"experimentName": ""})
        groups = post(
            tensorboard,
            "/data/plugin/hparams/session_groups",
            {"experimentName": "", "startIndex": 0, "sliceSize": 10, "allowedStatuses": STATUSES},
        ).get("sessionGroups", [])
        infos = experiment.get("metricInfos", [])
        metrics = {(m["name"]["group"], m["name"]["tag"]) for m in infos}
        if len(groups) == 2 and ("validation", "epoch_psnr") in metrics or time.time() > deadline:
            break
        time.sleep(2)

    hparams = {h["name"] for h in experiment["hparamInfos"]}
    # the columns come from both recipes, not from whichever run was found first
    assert {"model.name", "task.name", "optimizer.lr", "task.frechet_samples"} <= hparams
    assert "description" not in hparams  # prose, not a hyperparameter
    assert {("validation", "epoch_accuracy"), ("validation", "epoch_psnr")} <= metrics

    by_trial = {group["name"]: group for group in groups}
    assert sorted(name.split("/")[0] for name in by_trial) == ["autoencoder", "cnn"]
    for name, group in by_trial.items():
        recipe, stamp = name.split("/")
        assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", stamp), name
        assert group["hparams"]["model.name"] == recipe
        shown = {
            (v["name"]["group"], v["name"]["tag"])
            for session in group["sessions"]
            for v in session["metricValues"]
        }
        # each row has its own task's validation metrics (the GAN/autoencoder row used to be empty)
        wanted = "epoch_accuracy" if recipe == "cnn" else "epoch_psnr"
        assert ("validation", wanted) in shown, (name, shown)
