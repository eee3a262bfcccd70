"""Spoken digits, end to end on the real recordings (../shared/data/spoken-digits): the folder
source reads WAV, a speaker can be held out, the training perturbations keep a clip's length and
are seeded, a tiny DS-CNN learns from raw waveforms (its front end in the graph), and its export
answers WAV bytes through a real embedded server.
"""

import io
import json
import pathlib
import wave

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_module, train_and_export
from tests.serving.conftest import ServerProcess, b64, http
from training import data, recipes
from training.tasks import get_task
from zoo.audio.frontend import fit_length

MODEL = "ds_cnn-spoken-digits"


@pytest.fixture(scope="module")
def spoken(shared_data):
    return f"folder:{shared_data / 'spoken-digits'}"


def wav_bytes(samples, rate=8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, np.int16).tobytes())
    return out.getvalue()


def test_folder_reads_wav_as_tfds_audio(spoken, shared_data):
    source = data.open_source(spoken)
    assert source.class_names == [str(d) for d in range(10)]
    assert source.features["audio"].sample_rate == 8000
    first = next(iter(source.load("test")))
    path = shared_data / "spoken-digits" / "test" / "0" / first["audio/filename"].numpy().decode()
    with wave.open(str(path)) as w:
        expected = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    np.testing.assert_array_equal(first["audio"].numpy(), expected)
    assert data.count(source.load("train")) == 2250 and data.count(source.load("test")) == 250


def test_a_held_out_speaker_is_only_in_held_out(spoken):
    source = data.open_source(spoken)
    key, pattern = "audio/filename", "^[^_]+_([^_]+)_"
    speakers = sorted(set(data.groups_of(source, key, pattern).values()))
    assert speakers == ["george", "jackson", "lucas", "nicolas", "yweweler"]
    held = data.hold_out(source, key, pattern, "lucas")

    def names(split):
        return [n.decode() for n in held.load(split).map(lambda ex: ex[key]).as_numpy_iterator()]

    held_out, kept = names(data.HELD_OUT), names(data.KEPT)
    assert len(held_out) == 500 and len(kept) == 2000
    assert all("_lucas_" in n for n in held_out) and not any("_lucas_" in n for n in kept)
    with pytest.raises(data.DataError, match="george, jackson"):
        data.hold_out(source, key, pattern, "nobody")


def test_fit_length_centres_a_recording():
    x = tf.range(1, 7, dtype=tf.float32)
    np.testing.assert_array_equal(fit_length(x, 10).numpy(), [0, 0, 1, 2, 3, 4, 5, 6, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 4).numpy(), [2, 3, 4, 5])


def test_perturbations_keep_the_length_and_follow_the_seed(spoken):
    recipe = recipes.resolve(MODEL, ["task.clip_seconds=0.5"])
    task = get_task("audio_classification")(recipe["task"], data.open_source(spoken))
    waveform, label = task.preprocess(next(iter(data.open_source(spoken).load("test"))))
    assert waveform.shape == (4000,)
    seed = tf.constant([3, 4], tf.int64)
    a, _ = task.augment(waveform, label, seed)
    b, _ = task.augment(waveform, label, seed)
    c, _ = task.augment(waveform, label, seed + 1)
    assert a.shape == (4000,)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


@pytest.fixture(scope="module")
def kws(spoken, tmp_path_factory):
    """A tiny DS-CNN trained briefly on the spoken digits (half-second clips), exported."""
    recipe = recipes.resolve(
        MODEL,
        [
            f"data.fallback={spoken}",
            "run.tiny=true",
            "task.clip_seconds=0.75",
            "task.speed=0",
            "task.noise=[]",
            "train.epochs=6",
            "train.batch_size=16",
            "optimizer.lr=0.005",
            'export.tflite.variants=["float32", "int8"]',
        ],
    )
    return train_and_export(recipe, tmp_path_factory.mktemp("kws"))


def test_tiny_ds_cnn_learns_spoken_digits_and_converts_to_tflite(kws):
    assert kws.metrics["accuracy"] > 0.4, kws.metrics  # chance: 0.1
    report = json.loads((kws.export_dir.parent / "tflite" / "report.json").read_text())
    float32, int8 = report["variants"]
    assert float32["accuracy"] == pytest.approx(report["saved_model_accuracy"], abs=0.01), float32
    # the front end stays float in the int8 file (8-bit power spectra lose the quiet bins)
    assert int8["float_layers"] == ["log_mel"] and "error" not in int8, int8
    assert int8["accuracy"] >= report["saved_model_accuracy"] - 0.1, int8


def test_served_wav_bytes_match_the_saved_model(kws, spoken, tmp_path):
    source = data.open_source(spoken)
    examples = list(source.load("test").shard(50, 0).take(4).as_numpy_iterator())
    wavs = [wav_bytes(e["audio"]) for e in examples]
    loaded = tf.saved_model.load(str(kws.export_dir))
    direct = loaded.signatures["classify_audio_bytes"](audio_bytes=tf.constant(wavs))
    proc = ServerProcess(kws.export_dir.parent.parent, log_path=tmp_path / "server.log")
    try:
        proc.wait_ready()
        url = f"{proc.url}/v1/models/{MODEL}:predict"
        body = {"signature_name": "classify_audio_bytes", "instances": [b64(w) for w in wavs]}
        status, doc = http("POST", url, body)
        assert status == 200, doc
        assert [p["classes"] for p in doc["predictions"]] == direct["classes"].numpy().tolist()
        assert [p["labels"] for p in doc["predictions"]] == [
            s.decode() for s in direct["labels"].numpy()
        ]
        body = {
            "signature_name": "classify_audio_bytes",
            "instances": [b64(wav_bytes([0] * 800, 16000))],
        }
        status, doc = http("POST", url, body)
        assert status == 400 and "8000 Hz" in doc["error"], doc
    finally:
        proc.stop()


def test_crossval_rejects_an_unknown_speaker(spoken):
    result = run_module(
        "training", "crossval", MODEL, "--groups", "nobody", "--set", f"data.fallback={spoken}"
    )
    assert result.returncode == 2, result.stderr
    assert "unknown groups ['nobody']" in result.stderr and "jackson" in result.stderr


def test_crossval_trains_a_fold_per_speaker_and_keeps_them_apart(spoken, tmp_path):
    result = run_module(
        "training", "crossval", MODEL, "--groups", "lucas,george", "--quiet",
        "--logdir", tmp_path,
        "--set", f"data.fallback={spoken}", "--set", "run.tiny=true",
        "--set", "task.clip_seconds=0.5", "--set", "train.max_steps=3",
        "--set", "train.batch_size=16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (summary_file,) = tmp_path.glob("ds_cnn-spoken-digits-crossval/*/crossval.json")
    summary = json.loads(summary_file.read_text())
    assert [f["group"] for f in summary["folds"]] == ["lucas", "george"]
    accuracies = [f["metrics"]["accuracy"] for f in summary["folds"]]
    assert summary["mean"]["accuracy"] == pytest.approx(sum(accuracies) / 2)
    for fold in summary["folds"]:
        run = json.loads((pathlib.Path(fold["run_dir"]) / "recipe.json").read_text())
        assert run["data"]["hold_out"]["group"] == fold["group"]
    assert "mean" in result.stdout and "lucas" in result.stdout
