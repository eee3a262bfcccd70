"""Federated learning on Flower (training/federated.py): the partitions, a 2-round simulation on
the real shared digits (Ray actors, in this process), and a real server process with 2 client
processes on 127.0.0.1 whose final global weights must be the clients' example-weighted average."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from training import federated


def _labels(shared_data):
    """The shared training digits' labels, read from their folders."""
    root = shared_data / "mnist5k" / "train"
    return np.concatenate(
        [np.full(len(list(d.glob("*.png"))), int(d.name)) for d in sorted(root.iterdir())]
    )


def test_partitions_of_the_shared_digits(shared_data):
    labels = _labels(shared_data)
    assert len(labels) == 4000

    iid = federated.partition(labels, 100, "iid", seed=0)
    assert sorted(map(len, iid)) == [40] * 100
    assert len(np.unique(np.concatenate(iid))) == 4000  # every digit once
    assert np.mean([len(np.unique(labels[p])) for p in iid]) > 8  # mixed labels

    patho = federated.partition(labels, 100, "pathological", seed=0)
    assert len(np.unique(np.concatenate(patho))) == 4000 and all(len(p) == 40 for p in patho)
    kinds = [len(np.unique(labels[p])) for p in patho]
    # 200 shards of 20 sorted digits, two per client: the classes (393..407 digits) are not
    # multiples of 20, so a shard may straddle two digits (as McMahan's shards of 300 did)
    assert max(kinds) <= 4 and sum(k <= 2 for k in kinds) >= 85
    order = np.argsort(labels, kind="stable")
    assert all(len(np.unique(labels[s])) <= 2 for s in np.array_split(order, 200))
    assert federated.partition(labels, 100, "pathological", seed=0)[7].tolist() == patho[7].tolist()
    assert federated.partition(labels, 100, "pathological", seed=1)[7].tolist() != patho[7].tolist()

    skewed = federated.partition(labels, 20, "dirichlet:0.1", seed=0)
    mild = federated.partition(labels, 20, "dirichlet:100", seed=0)
    for parts in (skewed, mild):
        assert sum(map(len, parts)) == 4000 and min(map(len, parts)) > 0

    def top_share(parts):  # the share of a client's largest class, averaged over the clients
        return np.mean([np.bincount(labels[p]).max() / len(p) for p in parts])

    assert top_share(skewed) > 0.5 > top_share(mild)


@pytest.mark.parametrize(
    "args, message",
    [
        (["cnn", "--partition", "shards"], "--partition"),
        (["cnn", "--partition", "dirichlet:0"], "--partition"),
        (["cnn", "--fraction", "0"], "--fraction"),
        (["cnn", "--fraction", "1.5"], "--fraction"),
        (["no-such-recipe"], "no-such-recipe"),
        (["cnn", "--clients", "5000"], "more clients"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(shared_data, tmp_path, capsys, args, message):
    digits = f"data.dataset=folder:{shared_data / 'mnist5k'}"
    code = federated.main([*args, "--set", digits, "--logdir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def _scalars(event_dir, tag):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_dir))
    events.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)}


@pytest.fixture(scope="module")
def simulated(shared_data, tmp_path_factory):
    """One 2-round simulation (4 clients, 2 per round): Ray starts once for every check."""
    root = tmp_path_factory.mktemp("federated")
    code = federated.main(
        [
            "cnn-federated",
            "--set",
            f"data.dataset=folder:{shared_data / 'mnist5k'}",
            "--set",
            "run.tiny=true",
            "--clients",
            "4",
            "--fraction",
            "0.5",
            "--rounds",
            "2",
            "--local-epochs",
            "1",
            "--batch-size",
            "20",
            "--logdir",
            str(root / "runs"),
            "--no-export",
        ]
    )
    assert code == 0
    (run_dir,) = (root / "runs" / "cnn-federated-federated").iterdir()
    return run_dir


def test_simulation_learns_and_leaves_a_run_directory(simulated):
    metrics = json.loads((simulated / "metrics.json").read_text())
    history = metrics["history"]
    assert [h["round"] for h in history] == [0, 1, 2]
    assert history[0]["accuracy"] < 0.2  # the untrained global model: chance
    assert metrics["validation"]["accuracy"] > 0.3 > history[0]["accuracy"] + 0.1

    for name in ("model.keras", "recipe.json", "export_info.json", "calibration.npz"):
        assert (simulated / name).is_file(), name
    assert json.loads((simulated / "export_info.json").read_text())["task"] == "classification"
    import keras

    model = keras.saving.load_model(simulated / "model.keras")
    assert model.name == "cnn"

    accuracy = _scalars(simulated / "validation", "epoch_accuracy")
    assert sorted(accuracy) == [0, 1, 2]
    assert accuracy[2] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-4)
    norms = _scalars(simulated / "train", "drift/update_norm_mean")
    assert sorted(norms) == [1, 2] and all(v > 0 for v in norms.values())
    cosine = _scalars(simulated / "train", "drift/cosine_between_mean")
    assert all(-1 <= v <= 1 for v in cosine.values())
    spread = _scalars(simulated / "train", "drift/client_loss_std")
    assert sorted(spread) == [1, 2]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_and_two_client_processes_average_by_example_count(shared_data, tmp_path):
    """Real processes over gRPC on 127.0.0.1: the server's final global weights equal the
    example-weighted average of what the clients sent in the last round (a dirichlet split of
    120 digits into two unequal parts, so that the weighting shows)."""
    address = f"127.0.0.1:{_free_port()}"
    common = [
        "cnn-federated",
        "--set",
        f"data.dataset=folder:{shared_data / 'mnist5k'}",
        "--set",
        "run.tiny=true",
        "--set",
        "data.per_class=12",
        "--clients",
        "2",
        "--partition",
        "dirichlet:1.0",
        "--seed",
        "3",
        "--rounds",
        "2",
        "--local-epochs",
        "1",
        "--batch-size",
        "16",
        "--address",
        address,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "training", "federate"]
    server = subprocess.Popen(
        [*command, *common, "--role", "server", "--fraction", "1", "--logdir", str(tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    clients = [
        subprocess.Popen(
            [*command, *common, "--role", "client", "--partition-id", str(k)]
            + ["--record", str(tmp_path / "sent")],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in range(2)
    ]
    try:
        out, _ = server.communicate(timeout=240)
        client_out = [c.communicate(timeout=60)[0] for c in clients]
    finally:
        for p in [server, *clients]:
            if p.poll() is None:
                p.kill()
    assert server.returncode == 0, out[-3000:]
    assert all(c.returncode == 0 for c in clients), client_out[0][-2000:] + client_out[1][-2000:]
    assert "round 2/2" in out

    sent = [np.load(tmp_path / "sent" / f"client{k}-round2.npz") for k in range(2)]
    counts = [int(s["num_examples"]) for s in sent]
    assert sum(counts) == 120 and counts[0] != counts[1]  # unequal: the weighting matters
    names = sorted(k for k in sent[0].files if k.startswith("w"))
    expected = [sum(n * s[k].astype(np.float64) for n, s in zip(counts, sent)) / 120 for k in names]
    (run_dir,) = pathlib.Path(tmp_path, "cnn-federated-federated").iterdir()
    import keras

    final = keras.saving.load_model(run_dir / "model.keras").get_weights()
    assert len(final) == len(expected)
    for got, want in zip(final, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plain = sum(s[names[0]].astype(np.float64) for s in sent) / 2  # the unweighted mean differs
    assert not np.allclose(final[0], plain, rtol=1e-5, atol=1e-6)
    assert json.loads((run_dir / "metrics.json").read_text())["rounds"] == 2
