"""`python -m serving config`: TF Serving's config files for the exports, parsed back as protos."""

import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import config


def _version(base, v, complete=True):
    d = base / str(v)
    (d / "variables").mkdir(parents=True)
    if complete:
        (d / "saved_model.pb").write_bytes(b"pb")
    return d


@pytest.fixture
def exports(tmp_path):
    root = tmp_path / "exports"
    for v in (1, 2, 3):
        _version(root / "cnn", v)
    _version(root / "cnn", 4, complete=False)  # being written: not a version yet
    (root / "cnn" / ".tmp-5-123").mkdir()  # the exporter's hidden staging directory
    (root / "cnn" / "tflite").mkdir()  # not an integer: ignored
    _version(root / "lstm", 7)
    (root / "notes").mkdir()  # no versions: not a model
    (root / "README.txt").write_text("x")
    return root


def _parse(path):
    proto = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), proto)
    return {c.name: c for c in proto.model_config_list.config}


def test_layout_discovery(exports):
    assert config.discover_models(exports) == {"cnn": exports / "cnn", "lstm": exports / "lstm"}
    assert config.complete_versions(exports / "cnn") == [1, 2, 3]
    assert sorted(config.version_dirs(exports / "cnn")) == [1, 2, 3, 4]
    assert config.discover_models(exports / "cnn") == {"cnn": exports / "cnn"}  # one model dir
    assert config.discover_models(exports / "missing") == {}


def test_default_config_is_latest_policy_with_absolute_paths(exports, tmp_path, capsys):
    out = tmp_path / "out"
    assert config.main([str(exports), "--out", str(out)]) == 0
    models = _parse(out / "models.config")
    assert set(models) == {"cnn", "lstm"}
    cnn = models["cnn"]
    assert cnn.base_path == str((exports / "cnn").resolve()) and os.path.isabs(cnn.base_path)
    assert cnn.model_platform == "tensorflow"
    assert cnn.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert cnn.model_version_policy.latest.num_versions == 1
    assert dict(cnn.version_labels) == {}
    stdout = capsys.readouterr().out
    assert "cnn: versions on disk [1, 2, 3], policy latest" in stdout
    assert (out / "monitoring.config").read_text().count("/monitoring/prometheus/metrics") == 1
    assert "enable: true" in (out / "monitoring.config").read_text()


def test_labels_pin_specific_versions(exports, tmp_path):
    out = tmp_path / "out"
    args = [str(exports), "--out", str(out), "--label", "cnn:stable=2", "--label", "cnn:canary=3"]
    assert config.main(args) == 0
    models = _parse(out / "models.config")
    cnn, lstm = models["cnn"], models["lstm"]
    assert list(cnn.model_version_policy.specific.versions) == [2, 3]
    assert dict(cnn.version_labels) == {"stable": 2, "canary": 3}
    assert lstm.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert "--allow_version_labels_for_unavailable_models" in (out / "models.config").read_text()


@pytest.mark.parametrize(
    "args,policy,versions",
    [
        (["--policy", "all"], "all", None),
        (["--policy", "specific", "--num-versions", "2"], "specific", [2, 3]),
        (["--policy", "latest", "--num-versions", "2"], "latest", 2),
    ],
)
def test_policies(exports, tmp_path, args, policy, versions):
    assert config.main([str(exports), "--out", str(tmp_path), *args]) == 0
    cnn = _parse(tmp_path / "models.config")["cnn"]
    assert cnn.model_version_policy.WhichOneof("policy_choice") == policy
    if policy == "specific":
        assert list(cnn.model_version_policy.specific.versions) == versions
    if policy == "latest":
        assert cnn.model_version_policy.latest.num_versions == versions


def test_batching_config_and_docker_paths(exports, tmp_path):
    args = [str(exports), "--out", str(tmp_path), "--base-path-prefix", "/models"]
    args += ["--max-batch-size", "16", "--batch-timeout-micros", "500", "--num-batch-threads", "2"]
    assert config.main(args) == 0
    assert _parse(tmp_path / "models.config")["cnn"].base_path == "/models/cnn"
    batching = (tmp_path / "batching.config").read_text()
    assert "max_batch_size { value: 16 }" in batching
    assert "batch_timeout_micros { value: 500 }" in batching
    assert "num_batch_threads { value: 2 }" in batching
    assert "max_enqueued_batches { value: 100 }" in batching


def test_defaults_write_into_the_export_dir(exports):
    assert config.main([str(exports)]) == 0
    assert {"models.config", "batching.config", "monitoring.config"} <= {
        p.name for p in exports.iterdir()
    }
    # The config files do not make new "models" appear.
    assert set(config.discover_models(exports)) == {"cnn", "lstm"}


def test_errors(tmp_path, exports, capsys):
    assert config.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert config.main([str(tmp_path / "empty")]) == 2
    assert "no exports under" in capsys.readouterr().err
    assert config.main([str(exports), "--out", str(tmp_path), "--label", "stable=1"]) == 2
    assert "must name the model" in capsys.readouterr().err
    assert config.main([str(exports), "--out", str(tmp_path), "--label", "nope:stable=1"]) == 2
    assert config.main([str(exports), "--out", str(tmp_path), "--label", "cnn:stable"]) == 2


def test_embedded_server_reads_the_written_config(exports, tmp_path):
    """The written file round-trips into the embedded server's model configs."""
    from serving.server.models import configs_from_model_server_config

    assert config.main([str(exports), "--out", str(tmp_path), "--label", "cnn:stable=2"]) == 0
    configs = {
        c.name: c
        for c in configs_from_model_server_config(
            config.read_model_server_config(tmp_path / "models.config")
        )
    }
    assert configs["cnn"].policy == "specific" and configs["cnn"].versions == {2, 3}
    assert configs["cnn"].labels == {"stable": 2}
    assert configs["lstm"].policy == "latest" and configs["lstm"].num_versions == 1
