"""Bad requests exit 2 with a one-line reason and leave no run directory behind."""

import pytest

from tests.conftest import run_module
from training import cli, data


def run_cli(capsys, tmp_path, *args):
    code = cli.main(["train", *args, "--logdir", str(tmp_path / "runs"), "--no-export"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    "args, reason",
    [
        (["cnn", "--set", "model.name=no_such_net"], "unknown model 'no_such_net'"),
        (["no_such_recipe"], "unknown recipe 'no_such_recipe'"),
        (["cnn", "--dataset", "no_such_dataset_xyz"], "unknown data set 'no_such_dataset_xyz'"),
        (["cnn", "--strategy", "warp_drive"], "unknown strategy 'warp_drive'"),
        (["cnn", "--set", "optimizer.lr"], "malformed --set 'optimizer.lr'"),
        (["cnn", "--set", "optimizer.nope=1"], "no field 'optimizer.nope'"),
        (["cnn", "--set", "train.epochs=many"], "expected a int"),
        (["cnn", "--dataset", "folder:/no/such/folder"], "does not exist"),
        (
            ["cnn", "--set", 'export.saved_model.signatures=["predict_image_bytes","nope"]'],
            "task 'classification' has no serving signature 'nope' (known: serving_default, "
            "predict_image_bytes, explain_image_bytes)",
        ),
    ],
)
def test_bad_request_exits_2_without_a_run_dir(capsys, tmp_path, args, reason):
    code, err = run_cli(capsys, tmp_path, *args)
    assert code == 2
    assert reason in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_empty_data_folder(capsys, tmp_path):
    (tmp_path / "empty" / "train" / "0").mkdir(parents=True)
    code, err = run_cli(capsys, tmp_path, "cnn", "--dataset", f"folder:{tmp_path / 'empty'}")
    assert code == 2 and "no images or audio in" in err
    assert not (tmp_path / "runs").exists()


def test_tfds_offline_names_the_files_to_place(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv("TFDS_MANUAL_DIR", raising=False)
    monkeypatch.setattr(data, "network_available", lambda: False)
    code, err = run_cli(capsys, tmp_path, "cnn", "--set", "data.fallback=null")
    assert code == 2
    assert "no network" in err and "train-images-idx3-ubyte.gz" in err and "TFDS_MANUAL_DIR" in err


def test_tfds_offline_with_a_manual_dir_lacking_the_files(capsys, tmp_path, monkeypatch):
    """TFDS_MANUAL_DIR set (as the Makefile does) but without this data set's files: the same
    message at once, not tfds retrying a download it cannot make."""
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "input.txt").write_text("another data set's file")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("TFDS_MANUAL_DIR", str(tmp_path / "manual"))
    monkeypatch.setattr(data, "network_available", lambda: False)
    code, err = run_cli(capsys, tmp_path, "resnet18-cifar10")
    assert code == 2 and "no network" in err and "cifar-10-binary.tar.gz" in err
    assert not (tmp_path / "runs").exists()


def test_real_process_exit_code_and_list(tmp_path):
    proc = run_module("training", "train", "cnn", "--strategy", "bogus", "--logdir", tmp_path)
    # the last line: TensorFlow itself prints start-up notices that no setting silences
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown strategy")
    listing = run_module("training", "list")
    assert listing.returncode == 0 and "cnn" in listing.stdout and "mirrored" in listing.stdout
