"""The saved_model export format: TF Serving's layout, named after the recipe, one new version
per export, only the signatures asked for, and the command line's exit codes."""

import json

import numpy as np
import pytest
import tensorflow as tf

from serving import exporters
from tests.conftest import run_module


def quiet(*_):
    pass


def test_versions_in_tf_servings_layout(tiny_cnn_run, tmp_path):
    first = exporters.export_run(tiny_cnn_run.run_dir, tmp_path, ["saved_model"], say=quiet)
    second = exporters.export_run(tiny_cnn_run.run_dir, tmp_path, ["saved_model"], say=quiet)
    assert [first["saved_model"], second["saved_model"]] == [
        str(tmp_path / "cnn" / "1"),
        str(tmp_path / "cnn" / "2"),
    ]
    assert sorted(p.name for p in (tmp_path / "cnn").iterdir()) == ["1", "2"]  # no .tmp left
    version = tmp_path / "cnn" / "2"
    extra = version / "assets.extra"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    assert (extra / "tf_serving_warmup_requests").is_file()
    assert (extra / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    info = json.loads((extra / "export_info.json").read_text())
    assert info["model"] == "cnn" and info["run_dir"] == str(tiny_cnn_run.run_dir.resolve())
    recorded = json.loads((tiny_cnn_run.run_dir / "exports.json").read_text())
    assert recorded == {"name": "cnn", "saved_model": str(version)}

    loaded = tf.saved_model.load(str(version))
    assert set(loaded.signatures) == {
        "serving_default",
        "predict_image_bytes",
        "explain_image_bytes",
    }
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype(np.float32)
    served = loaded.signatures["serving_default"](images=tf.constant(x))["probabilities"]
    np.testing.assert_allclose(served.numpy(), tiny_cnn_run.model(x).numpy(), atol=1e-6)

    with pytest.raises(exporters.ExportError, match="exists already"):
        exporters.export_run(
            tiny_cnn_run.run_dir,
            tmp_path,
            ["saved_model"],
            overrides={"saved_model": {"version": 2}},
            say=quiet,
        )


def test_a_version_taken_meanwhile_by_another_export(tiny_cnn_run, tmp_path, monkeypatch):
    from serving.exporters import saved_model

    write = saved_model.write

    def racing_write(run_dir, directory, name, signatures=None):
        # another export renames its version 1 into place while this one is being written
        (tmp_path / "cnn" / "1").mkdir()
        (tmp_path / "cnn" / "1" / "saved_model.pb").write_bytes(b"theirs")
        return write(run_dir, directory, name, signatures)

    monkeypatch.setattr(saved_model, "write", racing_write)
    written = exporters.export_run(tiny_cnn_run.run_dir, tmp_path, ["saved_model"], say=quiet)
    assert written["saved_model"] == str(tmp_path / "cnn" / "2")
    assert (tmp_path / "cnn" / "1" / "saved_model.pb").read_bytes() == b"theirs"
    assert tf.saved_model.load(written["saved_model"]).signatures["serving_default"] is not None
    assert sorted(p.name for p in (tmp_path / "cnn").iterdir()) == ["1", "2"]  # no .tmp left


def test_only_the_signatures_asked_for(tiny_cnn_run, tmp_path):
    overrides = {"saved_model": {"signatures": ["serving_default"]}}
    written = exporters.export_run(
        tiny_cnn_run.run_dir, tmp_path, ["saved_model"], overrides, say=quiet
    )
    assert set(tf.saved_model.load(written["saved_model"]).signatures) == {"serving_default"}
    with pytest.raises(exporters.ExportError, match="no serving signature 'translate'"):
        exporters.export_run(
            tiny_cnn_run.run_dir,
            tmp_path,
            ["saved_model"],
            {"saved_model": {"signatures": ["translate"]}},
            say=quiet,
        )


def test_command_line(tiny_cnn_run, tmp_path):
    ok = run_module(
        "serving", "export", tiny_cnn_run.run_dir, "--formats", "saved_model", "--version", "7",
        "--export-dir", tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"exported saved_model -> {tmp_path / 'cnn' / '7'}" in ok.stdout
    for args, reason in [
        ([tmp_path, "--export-dir", tmp_path], "is not a finished training run"),
        ([tiny_cnn_run.run_dir, "--formats", "onnx"], "unknown export format 'onnx'"),
    ]:
        bad = run_module("serving", "export", *args)
        assert bad.returncode == 2 and reason in bad.stderr, bad.stderr
