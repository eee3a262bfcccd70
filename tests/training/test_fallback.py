"""Offline without tfds files, a recipe with `data.fallback` trains on the bundled sample and says
so in one line; without a fallback (or for another data set) the request still exits 2. Hermetic:
TFDS_DATA_DIR and TFDS_MANUAL_DIR are empty folders and the network probe answers no."""

import json

import pytest
import tensorflow_datasets as tfds

from tests.conftest import run_module
from training import cli, data

NOTE = "training on sample:mnist5k instead of mnist"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    dirs = {"TFDS_DATA_DIR": tmp_path / "tfds", "TFDS_MANUAL_DIR": tmp_path / "manual"}
    for name, path in dirs.items():
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    monkeypatch.setattr(data, "network_available", lambda *args, **kwargs: False)
    return {name: str(path) for name, path in dirs.items()}


def test_open_source_falls_back_to_the_sample_with_one_line(offline, capsys):
    source = data.open_source("mnist", fallback="sample:mnist5k")
    assert source.name == "sample:mnist5k" and source.class_names == [str(d) for d in range(10)]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and NOTE in err[0], err
    assert "'mnist'" in err[0] and "no network" in err[0] and "TFDS_MANUAL_DIR" in err[0]


def test_a_versioned_name_falls_back_too(offline, capsys):
    assert data.open_source("mnist:3.*.*", fallback="sample:mnist5k").name == "sample:mnist5k"
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_failed_download_falls_back_too(offline, monkeypatch, capsys):
    """The probe reaches the host but the download fails (a proxy, a firewall)."""

    def fail(*args, **kwargs):
        raise ConnectionError("403 Forbidden\nmore detail")

    monkeypatch.setattr(data, "network_available", lambda *args, **kwargs: True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    source = data.open_source("mnist", fallback="sample:mnist5k")
    assert source.name == "sample:mnist5k"
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "could not download 'mnist': 403 Forbidden" in line and NOTE in line


def test_a_sample_stands_in_only_for_the_data_set_it_samples(offline, capsys):
    with pytest.raises(data.DataError, match="fashion_mnist"):
        data.open_source("fashion_mnist", fallback="sample:mnist5k")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "args",
    [
        ["cnn", "--set", "data.fallback=null"],  # the recipe without its fallback
        ["resnet18-cifar10", "--dataset", "mnist"],  # a recipe that has none
        ["cnn", "--dataset", "fashion_mnist"],  # the sample is MNIST digits: no stand-in
    ],
)
def test_without_a_fallback_offline_still_exits_2(offline, capsys, tmp_path, args):
    code = cli.main(["train", *args, "--logdir", str(tmp_path / "runs"), "--no-export"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "no network" in err and len(err.splitlines()) == 1, err
    assert "instead" not in err
    assert not (tmp_path / "runs").exists()


def test_offline_the_cnn_recipe_trains_on_the_bundled_sample(offline, tmp_path):
    """`make train-cnn` on a machine with no network and no tfds files (a tiny, short run)."""
    proc = run_module(
        "tests.training.offline_cli",
        "train",
        "cnn",
        "--tiny",
        "--set",
        "train.max_steps=3",
        "--no-export",
        "--logdir",
        tmp_path / "runs",
        env=offline,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = (proc.stdout + proc.stderr).splitlines()
    notes = [line for line in output if NOTE in line]
    assert len(notes) == 1 and "'mnist'" in notes[0], output
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] == 3 and 0.0 <= result["validation"]["accuracy"] <= 1.0
