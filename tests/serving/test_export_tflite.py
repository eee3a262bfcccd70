"""The tflite export format: variants of serving_default with a report, converted from the
SavedModel the same run exported (or a temporary one), with the converter's chatter kept out of
the terminal."""

import gzip
import json

from serving import exporters
from tests.conftest import run_module


def quiet(*_):
    pass


def test_without_a_saved_model_it_converts_a_temporary_one(tiny_cnn_run, tmp_path):
    overrides = {"tflite": {"variants": ["float32"]}}
    written = exporters.export_run(tiny_cnn_run.run_dir, tmp_path, ["tflite"], overrides, quiet)
    out = tmp_path / "cnn" / "tflite"
    assert written == {"tflite": str(out / "report.json")}
    assert sorted(p.name for p in (tmp_path / "cnn").iterdir()) == ["tflite"]  # no version
    report = json.loads((out / "report.json").read_text())
    assert [row["variant"] for row in report["variants"]] == ["float32"]
    assert report["variants"][0]["agreement"] == 1.0
    assert (out / "float32.tflite").stat().st_size == report["variants"][0]["size_bytes"]
    # the gzip column: the file's bytes gzipped at level 9, in report.json and report.md
    gzipped = len(gzip.compress((out / "float32.tflite").read_bytes(), compresslevel=9))
    assert report["variants"][0]["gzip_bytes"] == gzipped < report["variants"][0]["size_bytes"]
    table = (out / "report.md").read_text().splitlines()
    header = next(line for line in table if line.startswith("| variant |"))
    row = next(line for line in table if line.startswith("| float32 |"))
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" gzipped (bytes) "].strip() == f"{gzipped:,}"


def test_after_saved_model_it_converts_that_version_quietly(tiny_cnn_run, tmp_path):
    proc = run_module(
        "serving", "export", tiny_cnn_run.run_dir, "--export-dir", tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "cnn" / "tflite" / "report.json").read_text())
    assert report["saved_model"] == str(tmp_path / "cnn" / "1")
    assert {row["variant"] for row in report["variants"]} == {
        "float32",
        "float16",
        "dynamic",
        "int8",
    }
    assert all("error" not in row for row in report["variants"])
    # the bytes signatures do not convert, and the reason is in the report ...
    others = {row["signature"]: row for row in report["other_signatures"]}
    assert set(others) == {"predict_image_bytes", "explain_image_bytes"}
    assert not any(row["converts"] for row in others.values())
    assert "DecodeImage" in others["explain_image_bytes"]["reason"]
    # ... not in the terminal: no converter `error:` blocks, no TensorFlow start-up notices
    for noise in ("error:", "I0000", "cuInit", "XNNPACK", "absl::InitializeLog"):
        assert noise not in proc.stderr, proc.stderr[-2000:]
    for variant in ("float32", "int8"):
        assert f"converting serving_default to TFLite: {variant}" in proc.stdout
