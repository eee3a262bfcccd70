"""`python -m serving predict` against the running embedded server, over REST and gRPC."""

import re
import socket

import numpy as np
import pytest

from serving import client
from tests.conftest import run_module


@pytest.fixture(scope="module")
def pngs(cnn_store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, data in enumerate(cnn_store.pngs[:2]):
        path = folder / f"digit{i}.png"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _top1(stdout: str):
    """[(class, probability, label)] of the first-ranked line under each file."""
    return [
        (int(m[1]), float(m[2]), m[3])
        for m in re.finditer(r"^\s+1\. class (\d+)\s+([\d.]+)\s*(\S*)$", stdout, re.MULTILINE)
    ]


def _expected(reference, signature):
    out = reference["v1"][signature]
    probabilities = out["probabilities"][:2]
    labels = [s.decode() for s in out["labels"][:2]] if "labels" in out else [""] * 2
    return [
        (int(p.argmax()), round(float(p.max()), 4), label)
        for p, label in zip(probabilities, labels, strict=True)
    ]


@pytest.mark.parametrize(
    "extra",
    [[], ["--label", "stable"], ["--version", "1"], ["--grpc"]],
    ids=["rest", "rest-label", "rest-version", "grpc"],
)
def test_predict_prints_top_classes(server, pngs, reference, extra):
    port = server.grpc_port if "--grpc" in extra else server.rest_port
    result = run_module("serving", "predict", "--model", "cnn", "--port", port, *extra, *pngs)
    assert result.returncode == 0, result.stderr
    for path in pngs:
        assert f"{path}  (cnn v1, predict_image_bytes, " in result.stdout
    got = [(c, round(p, 4), label) for c, p, label in _top1(result.stdout)]
    assert got == _expected(reference, "predict_image_bytes")
    assert len(re.findall(r"^\s+3\. class", result.stdout, re.MULTILINE)) == 2  # --top 3


def test_predict_float_signature_decodes_locally(server, pngs, reference):
    result = run_module(
        "serving", "predict", "--model", "cnn", "--port", server.rest_port,
        "--signature", "serving_default", "--top", "1", *pngs,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "serving_default" in result.stdout
    got = [(c, round(p, 4), label) for c, p, label in _top1(result.stdout)]
    assert got == _expected(reference, "serving_default")


def test_predict_npy_batch(server, cnn_store, reference, tmp_path):
    path = tmp_path / "batch.npy"
    np.save(path, cnn_store.images[:2])
    result = run_module("serving", "predict", "--model", "cnn", "--port", server.rest_port, path)
    assert result.returncode == 0, result.stderr
    probabilities = reference["v1"]["serving_default"]["probabilities"]
    assert _top1(result.stdout)[0][0] == int(probabilities[0].argmax())


def test_predict_errors(server, pngs):
    unknown = run_module("serving", "predict", "--model", "nope", "--port", server.rest_port, *pngs)
    assert unknown.returncode == 1 and "404" in unknown.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    down = run_module("serving", "predict", "--model", "cnn", "--port", free, *pngs)
    assert down.returncode == 1 and "cannot reach" in down.stderr
    missing = run_module("serving", "predict", "--model", "cnn", "no-such-file.png")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad_sig = run_module(
        "serving",
        "predict",
        "--model",
        "cnn",
        "--port",
        server.rest_port,
        "--signature",
        "x",
        *pngs,
    )
    assert bad_sig.returncode == 1 and "has no signature 'x'" in bad_sig.stderr


def test_choose_signature_and_top_classes():
    signatures = {"serving_default": {}, "predict_image_bytes": {}, "__saved_model_init_op": {}}
    assert client.choose_signature(signatures, ["a.png"]) == "predict_image_bytes"
    assert client.choose_signature(signatures, ["a.npy"]) == "serving_default"
    assert client.choose_signature({"serving_default": {}}, ["a.jpg"]) == "serving_default"
    with pytest.raises(client.ClientError, match="serving_default, predict_image_bytes|has:"):
        client.choose_signature(signatures, ["a.png"], "nope")
    assert client.top_classes([0.1, 0.7, 0.2], 2) == [(1, 0.7), (2, 0.2)]
