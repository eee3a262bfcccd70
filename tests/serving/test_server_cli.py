"""`python -m serving serve`: argument errors, and the backend it picks (binary, docker, embedded).

Fake `tensorflow_model_server` and `docker` executables on PATH record how they are called, so
these tests check the exact command lines and generated configs without TF Serving installed.
"""

import os
import re
import stat

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import server as serve_cli
from tests.conftest import run_module

FAKE = """#!/bin/sh
echo "FAKE $(basename "$0") $*"
for arg in "$@"; do
  case "$arg" in --model_config_file=*) echo "CONFIG ${arg#--model_config_file=}";; esac
done
case "$1" in info|image) exit ${FAKE_DOCKER_RC:-0};; esac
exit ${FAKE_RC:-0}
"""


def _fake(folder, name):
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def exports(tmp_path):
    d = tmp_path / "exports" / "cnn" / "3"
    (d / "variables").mkdir(parents=True)
    (d / "saved_model.pb").write_bytes(b"x")
    return tmp_path / "exports"


def _serve(*args, path_dirs=(), env=None):
    full_env = dict(env or {})
    if path_dirs:
        full_env["PATH"] = os.pathsep.join([*map(str, path_dirs), os.environ["PATH"]])
    return run_module("serving", "serve", *args, env=full_env, timeout=120)


def test_missing_or_empty_export_dir_exits_2(tmp_path):
    missing = _serve(tmp_path / "nope", "--backend", "embedded")
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
    (tmp_path / "empty" / "cnn" / "tflite").mkdir(parents=True)  # a model dir without versions
    empty = _serve(tmp_path / "empty", "--backend", "embedded")
    assert empty.returncode == 2
    assert empty.stderr.strip().count("\n") == 0 and "no exports under" in empty.stderr


def test_auto_prefers_tensorflow_model_server(exports, tmp_path):
    fakes = _fake(tmp_path / "bin", "tensorflow_model_server")
    result = _serve(exports, "--enable-batching", "--poll-seconds", "2", path_dirs=[fakes])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "starting tensorflow_model_server" in out
    assert "REST     http://127.0.0.1:8501" in out and "gRPC     127.0.0.1:8500" in out
    called = re.search(r"^FAKE tensorflow_model_server (.*)$", out, re.MULTILINE)[1].split()
    assert called[:2] == ["--port=8500", "--rest_api_port=8501"]
    assert "--file_system_poll_wait_seconds=2" in called
    assert "--enable_batching=true" in called
    assert any(a.startswith("--batching_parameters_file=") for a in called)
    assert any(a.startswith("--monitoring_config_file=") for a in called)
    config_path = re.search(r"^CONFIG (.*)$", out, re.MULTILINE)[1]
    proto = text_format.Parse(open(config_path).read(), model_server_config_pb2.ModelServerConfig())
    (entry,) = proto.model_config_list.config
    assert entry.name == "cnn" and entry.base_path == str((exports / "cnn").resolve())
    assert entry.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert "listens on all interfaces" in out  # the binary cannot bind 127.0.0.1 only
    assert not any("allow_version_labels" in a for a in called)  # no labels, no flag


def test_exit_status_of_the_server_is_passed_on(exports, tmp_path):
    fakes = _fake(tmp_path / "bin", "tensorflow_model_server")
    result = _serve(exports, path_dirs=[fakes], env={"FAKE_RC": "3"})
    assert result.returncode == 3


def test_docker_when_it_can_run_the_image(exports, tmp_path):
    fakes = _fake(tmp_path / "bin", "docker")
    result = _serve(exports, "--port", "9500", "--rest-port", "9501", path_dirs=[fakes])
    assert result.returncode == 0, result.stderr
    run = re.search(r"^FAKE docker (run .*)$", result.stdout, re.MULTILINE)[1].split()
    assert run[:2] == ["run", "--rm"]
    assert "127.0.0.1:9500:8500" in run and "127.0.0.1:9501:8501" in run
    assert f"{(exports / 'cnn').resolve()}:/models/cnn:ro" in run
    image_at = run.index("tensorflow/serving")
    assert "--model_config_file=/config/models.config" in run[image_at + 1 :]
    config_dir = run[run.index("-v", image_at - 2) + 1].split(":")[0]
    proto = text_format.Parse(
        open(os.path.join(config_dir, "models.config")).read(),
        model_server_config_pb2.ModelServerConfig(),
    )
    assert proto.model_config_list.config[0].base_path == "/models/cnn"


def test_choose_backend_falls_back_to_embedded(tmp_path, monkeypatch):
    fakes = _fake(tmp_path / "bin", "docker")
    monkeypatch.setenv("PATH", str(fakes))
    assert serve_cli.choose_backend()[0] == "docker"
    monkeypatch.setenv("FAKE_DOCKER_RC", "1")  # daemon down / image not pulled
    backend, why = serve_cli.choose_backend()
    assert backend == "embedded" and "docker" in why
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    backend, why = serve_cli.choose_backend()
    assert backend == "embedded" and "not installed" in why
    _fake(fakes, "tensorflow_model_server")
    monkeypatch.setenv("PATH", str(fakes))
    assert serve_cli.choose_backend()[0] == "tensorflow_model_server"


def test_model_config_file(exports, tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    result = _serve(exports, "--model-config-file", bad, "--backend", "embedded")
    assert result.returncode == 2 and "bad.config" in result.stderr
    from serving import config

    assert config.main([str(exports), "--out", str(tmp_path), "--label", "cnn:stable=3"]) == 0
    fakes = _fake(tmp_path / "bin", "docker")
    result = _serve(exports, "--model-config-file", tmp_path / "models.config", path_dirs=[fakes])
    assert result.returncode == 0, result.stderr
    run = re.search(r"^FAKE docker (run .*)$", result.stdout, re.MULTILINE)[1].split()
    config_dir = run[run.index("tensorflow/serving") - 1].split(":")[0]
    proto = text_format.Parse(
        open(os.path.join(config_dir, "models.config")).read(),
        model_server_config_pb2.ModelServerConfig(),
    )
    (entry,) = proto.model_config_list.config
    assert entry.base_path == "/models/cnn"  # the user's host path, mapped into the container
    assert dict(entry.version_labels) == {"stable": 3}
    assert "--allow_version_labels_for_unavailable_models=true" in run
