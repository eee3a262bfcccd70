"""Speech recognition with CTC on spoken digit strings, end to end on the real recordings
(../shared/data/spoken-digits): the strings follow the issue's rules and the seed, jiwer scores
the transcripts, a tiny CTC model's loss falls and its CER is logged per epoch, and its export
transcribes WAV bytes through a real embedded server (REST, gRPC, and `python -m serving
predict`).
"""

import io
import json
import wave

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from tests.conftest import run_module, train_and_export
from tests.serving.conftest import ServerProcess, b64, grpc_stubs, http, predict_request
from training import data, digit_strings, recipes
from training.tasks import get_task
from training.tasks.speech_recognition import error_rates, texts

MODEL = "crnn-spoken-digit-strings"
RATE = 8000


@pytest.fixture(scope="module")
def spoken(shared_data):
    return f"folder:{shared_data / 'spoken-digits'}"


def wav_bytes(samples, rate=RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, np.int16).tobytes())
    return out.getvalue()


def test_strings_follow_the_rules():
    """Recording i is i+1 repeated (100+7i samples): a string shows which recordings it joined
    and the silences between them."""
    speakers = ["ann", "bob", "cy"] * 10
    labels = [i % 10 for i in range(30)]
    recordings = [np.full(100 + 7 * i, i + 1, np.int64) for i in range(30)]
    names = [str(d) for d in range(10)]
    made = digit_strings.build(
        recordings, labels, speakers, names, 200, digit_strings.split_rng(0, "test"), RATE
    )
    lengths = set()
    for audio, transcript, speaker in zip(made["audio"], made["transcript"], made["speaker"]):
        edges = np.flatnonzero(np.diff(np.r_[0, audio != 0, 0]))
        runs, gaps = edges.reshape(-1, 2), []
        chosen = [int(audio[start]) - 1 for start, _ in runs]
        for (start, end), i in zip(runs, chosen):
            assert end - start == len(recordings[i]) and (audio[start:end] == i + 1).all()
        gaps = runs[1:, 0] - runs[:-1, 1]
        assert ((gaps >= 400) & (gaps <= 2400)).all(), gaps  # 50-300 ms at 8 kHz
        assert 2 <= len(chosen) <= 7 and {speakers[i] for i in chosen} == {speaker}
        assert transcript == " ".join(str(labels[i]) for i in chosen)
        lengths.add(len(chosen))
    assert lengths == set(range(2, 8))
    again = digit_strings.build(
        recordings, labels, speakers, names, 200, digit_strings.split_rng(0, "test"), RATE
    )
    assert again["transcript"] == made["transcript"]
    other = digit_strings.build(
        recordings, labels, speakers, names, 200, digit_strings.split_rng(0, "train"), RATE
    )
    assert other["transcript"] != made["transcript"]


def test_real_strings_are_seeded_and_fit_the_clip(spoken):
    digits = data.open_source(spoken)
    a = digit_strings.source(digits, count=30, seed=1, max_seconds=3.0)
    b = data.open_source(f"digit_strings:{spoken}?count=30&seed=1&max_seconds=3")
    assert b.name == a.name and set(b.features.keys()) == {"audio", "transcript", "speaker"}
    first = list(a.load("test").as_numpy_iterator())
    assert [e["transcript"] for e in first] == [
        e["transcript"] for e in b.load("test").as_numpy_iterator()
    ]
    assert all(len(e["audio"]) <= 3 * RATE for e in first)
    test_speakers = {e["speaker"].decode() for e in first}
    assert test_speakers <= {"george", "jackson", "lucas", "nicolas", "yweweler"}
    with pytest.raises(data.DataError, match="too few strings"):
        list(digit_strings.source(digits, count=5, max_seconds=0.3).load("test"))
    with pytest.raises(data.DataError, match="expected"):
        data.open_source(f"digit_strings:{spoken}?count=many")


def test_error_rates_are_jiwer_s():
    tokens = [str(d) for d in range(10)]
    assert texts([[4, 0, 7, -1, 11]], tokens) == ["4 0 7"]
    rates = error_rates(["1 2 3", "4 5"], ["1 2", "4 6"], tokens)
    assert rates["wer"] == pytest.approx(2 / 5) and rates["cer"] == pytest.approx(2 / 5)
    words = error_rates(["one two"], ["one too"], ["one", "two", "too"])
    assert words["wer"] == pytest.approx(0.5) and words["cer"] == pytest.approx(1 / 7)


def test_the_task_refuses_a_source_without_transcripts(spoken):
    source = data.open_source("sample:mnist5k")
    with pytest.raises(ValueError, match="no `audio` and `transcript`"):
        get_task("speech_recognition")({"clip_seconds": 2.0}, source)


@pytest.mark.parametrize("name", ["crnn_ctc", "conformer_ctc"])
def test_ctc_models_give_frames_of_tokens_and_blank(name):
    model = zoo.build(name, tiny=True, input_shape=(16000,), num_classes=11)
    out = model(np.zeros((2, 16000), np.float32))
    assert out.shape[0] == 2 and out.shape[2] == 11 and out.shape[1] >= 2 * 7


@pytest.fixture(scope="module")
def asr(spoken, tmp_path_factory):
    """A tiny CRNN + CTC trained briefly on 192 real digit strings (3 s clips), exported."""
    recipe = recipes.resolve(
        MODEL,
        [
            f"data.fallback=digit_strings:{spoken}?count=192&max_seconds=3",
            "run.tiny=true",
            "task.clip_seconds=3.0",
            "task.noise=[]",
            "task.beam_width=4",
            "train.epochs=4",
            "train.batch_size=16",
            "optimizer.lr=0.01",
            'export.tflite.variants=["float32"]',
        ],
    )
    return train_and_export(recipe, tmp_path_factory.mktemp("asr"))


def scalars(run_dir, split, tag):
    events = EventAccumulator(str(run_dir / split), size_guidance={"tensors": 0})
    events.Reload()
    return [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


def test_ctc_loss_falls_and_error_rates_are_logged_per_epoch(asr):
    losses = scalars(asr.run_dir, "train", "epoch_loss")
    assert len(losses) == 4 and losses[-1] < 0.7 * losses[0], losses
    for tag in ("epoch_cer", "epoch_wer", "epoch_cer_beam", "epoch_wer_beam"):
        values = scalars(asr.run_dir, "validation", tag)
        assert len(values) == 4 and all(v >= 0 for v in values), (tag, values)
    summary = json.loads((asr.run_dir / "metrics.json").read_text())["validation"]
    for key in ("cer", "wer", "cer_beam", "wer_beam"):
        assert summary[key] == pytest.approx(scalars(asr.run_dir, "validation", f"epoch_{key}")[-1])
    info = json.loads((asr.run_dir / "export_info.json").read_text())
    assert info["task"] == "speech_recognition" and info["tokens"] == [str(d) for d in range(10)]
    report = json.loads((asr.export_dir.parent / "tflite" / "report.json").read_text())
    (row,) = report["variants"]
    assert row["max_abs_diff"] < 1e-3, row


@pytest.fixture(scope="module")
def strings(spoken):
    """Three test digit strings (not the task's own: seed 7) as WAV bytes, with transcripts."""
    source = digit_strings.source(data.open_source(spoken), count=3, seed=7, max_seconds=3.0)
    examples = list(source.load("test").as_numpy_iterator())
    return [wav_bytes(e["audio"]) for e in examples], [e["transcript"].decode() for e in examples]


def test_served_transcripts_match_the_saved_model(asr, strings, tmp_path):
    wavs, _ = strings
    loaded = tf.saved_model.load(str(asr.export_dir))
    direct = loaded.signatures["transcribe_audio_bytes"](audio_bytes=tf.constant(wavs))
    expected = [t.decode() for t in direct["text"].numpy()]
    assert all(set(t.split()) <= set("0123456789") for t in expected), expected
    probabilities = loaded.signatures["serving_default"](waveform=tf.zeros([1, 3 * RATE]))
    np.testing.assert_allclose(probabilities["probabilities"].numpy().sum(-1), 1.0, rtol=1e-5)

    log = tmp_path / "server.log"
    proc = ServerProcess(asr.export_dir.parent.parent, log_path=log)
    try:
        proc.wait_ready()
        url = f"{proc.url}/v1/models/{MODEL}:predict"
        body = {"signature_name": "transcribe_audio_bytes", "instances": [b64(w) for w in wavs]}
        status, doc = http("POST", url, body)
        assert status == 200, doc
        assert [p["text"] for p in doc["predictions"]] == expected
        for bad, message in ((wav_bytes([0] * 800, 16000), "8000 Hz"),
                             (wav_bytes([0] * 4 * RATE), "up to 3 s")):  # fmt: skip
            body = {"signature_name": "transcribe_audio_bytes", "instances": [b64(bad)]}
            status, doc = http("POST", url, body)
            assert status == 400 and message in doc["error"], doc

        channel, predict, _ = grpc_stubs(proc.grpc_target)
        with channel:
            request = predict_request(MODEL, "transcribe_audio_bytes", {"audio_bytes": wavs})
            response = predict.Predict(request)
        texts_grpc = [t.decode() for t in tf.make_ndarray(response.outputs["text"])]
        assert texts_grpc == expected

        clip = tmp_path / "clip.wav"
        clip.write_bytes(wavs[0])
        for transport in ([], ["--grpc"]):
            port = proc.grpc_port if transport else proc.rest_port
            result = run_module(
                "serving", "predict", "--model", MODEL, "--port", port, *transport, clip
            )
            assert result.returncode == 0, result.stderr
            assert "transcribe_audio_bytes" in result.stdout
            assert f"  text: {expected[0]}" in result.stdout.splitlines(), result.stdout
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
