"""Image-text models on scenes of the real shared digits (training/tasks/image_text.py, zoo clip
and vqa, serving/signatures/image_text.py):

- the questions follow their rules, from the caption alone; the zero-shot digits sit on the
  canvas as the docstring says; the global-batch InfoNCE is its closed form on a tiny case;
- a small CLIP trained a few dozen steps beats its own untrained initialization on the
  contrastive loss and on recall@5 over 100 held-out scenes;
- a small VQA model trained a few hundred questions beats the majority answer per type overall;
- both export, and a real embedded server process answers embed_text / embed_image / answer over
  REST with the SavedModel's (and the Keras model's) numbers.

Scenes are scaled to 64x64 (`task.image_size`) to keep the file short.
"""

import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import train_and_export
from tests.serving.conftest import ServerProcess, b64, http
from training import data, recipes, vqa_questions
from training.tasks import get_task
from training.tasks.image_text import contrastive_loss, digits_on_canvas, recall_at

SIZE = ["task.image_size=[64, 64]", "train.eval_batch_size=100", "data.shuffle_buffer=512"]
CLIP_SMALL = [
    'model.overrides={"backbone": "resnet18", "backbone_overrides": {"width": 8}, '
    '"num_layers": 1, "d_model": 32, "num_heads": 2, "d_ff": 64, "embed_dim": 32}',
    "train.batch_size=32",
    "train.epochs=8",  # 96 steps
    "optimizer.lr=0.003",
    "optimizer.warmup_steps=0",
    'export.formats=["saved_model"]',
]
VQA_SMALL = [
    'model.overrides={"backbone": "resnet18", "backbone_overrides": {"width": 8}, '
    '"question_layers": 1, "fusion_layers": 1, "d_model": 32, "num_heads": 2, "d_ff": 64}',
    "task.train_questions=4",
    "train.batch_size=25",
    "train.epochs=2",
    "optimizer.lr=0.003",
    "optimizer.warmup_steps=0",
    'export.formats=["saved_model"]',
]


@pytest.fixture(scope="module")
def scenes_spec(shared_data):
    return f"digit_scenes:folder:{shared_data / 'mnist5k'}?count=400&seed=0"


@pytest.fixture(scope="module")
def exports_root(tmp_path_factory):
    return tmp_path_factory.mktemp("image-text")


@pytest.fixture(scope="module")
def clip_run(scenes_spec, exports_root):
    recipe = recipes.resolve(
        "clip-digit-scenes", [f"data.dataset={scenes_spec}", *SIZE, *CLIP_SMALL]
    )
    return recipe, train_and_export(recipe, exports_root)


@pytest.fixture(scope="module")
def vqa_run(scenes_spec, exports_root):
    recipe = recipes.resolve("vqa-digit-scenes", [f"data.dataset={scenes_spec}", *SIZE, *VQA_SMALL])
    return recipe, train_and_export(recipe, exports_root)


# ---- the parts, against their rules ------------------------------------------------------------


def test_questions_follow_the_rules():
    assert vqa_questions.questions("seven two nine", 4) == [
        ("how many digits", "three"),
        ("is there a two", "yes"),  # words[4 % 3]
        ("is there a five", "no"),  # absent: zero one three four five six eight -> [4 % 7]
        ("what is the leftmost digit", "seven"),
    ]
    assert vqa_questions.questions("one", 13)[1:3] == [
        ("is there a one", "yes"),
        ("is there a five", "no"),  # absent: zero two ... nine -> [13 % 9 = 4]
    ]
    with pytest.raises(ValueError, match="digit words"):
        vqa_questions.questions("a cat", 0)


def test_zero_shot_digits_are_centred_at_scene_size():
    digit = np.zeros((1, 28, 28, 1), np.uint8)
    digit[0, :, :] = 255
    placed = digits_on_canvas(digit)
    assert placed.shape == (1, 128, 128, 1)
    rows = np.flatnonzero(placed[0, :, 64, 0] > 128)
    assert (rows[0], rows[-1] + 1) == (43, 85)  # 42 pixels in the middle
    assert digits_on_canvas(digit, (64, 64)).shape == (1, 64, 64, 1)


def test_contrastive_loss_is_clip_with_shared_captions_as_positives():
    rng = np.random.default_rng(0)
    image = tf.math.l2_normalize(rng.normal(size=(4, 3)).astype(np.float32), -1)
    text = tf.math.l2_normalize(rng.normal(size=(4, 3)).astype(np.float32), -1)
    tokens = tf.constant([[2, 5, 3], [2, 6, 3], [2, 5, 3], [2, 7, 3]])  # rows 0 and 2 alike
    loss, _ = contrastive_loss(image, text, tf.constant(10.0), tokens)
    logits = 10.0 * image.numpy() @ text.numpy().T
    target = np.array([[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]])

    def ce(z):
        z = z - z.max(1, keepdims=True)
        return -(target * (z - np.log(np.exp(z).sum(1, keepdims=True)))).sum(1)

    np.testing.assert_allclose(loss.numpy(), (ce(logits) + ce(logits.T)) / 2, rtol=1e-5)
    same = np.eye(3, dtype=bool)
    assert recall_at(np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.5], [0, 1, 2]]), same, 1) == 2 / 3


def test_bad_settings_are_refused(scenes_spec):
    source = data.open_source(scenes_spec)
    with pytest.raises(ValueError, match="image_size"):
        get_task("clip")({"name": "clip", "image_size": [64]}, source)
    with pytest.raises(ValueError, match="caption"):
        get_task("vqa")({"name": "vqa"}, data.open_source("sample:mnist5k"))


# ---- they learn ---------------------------------------------------------------------------------


def test_a_small_clip_learns_image_caption_pairs(clip_run):
    recipe, run = clip_run
    r = recipe
    source = data.open_source(r["data"]["dataset"])
    task = get_task("clip")(r["task"], source)
    import keras

    keras.utils.set_random_seed(int(r["train"]["seed"]))
    untrained = zoo.build("clip", **{**task.model_overrides(), **r["model"]["overrides"]})
    before = task.scores(untrained)
    after = run.metrics
    # measured: untrained recall@5 0.07 / 0.05; after these 96 steps 0.26 / 0.24, loss 3.95
    assert after["recall_at_5_image_to_text"] > before["recall_at_5_image_to_text"] + 0.1, (
        before,
        after,
    )
    assert after["recall_at_5_text_to_image"] > before["recall_at_5_text_to_image"] + 0.1
    assert after["loss"] < np.log(100) - 0.5, after
    assert {"zero_shot_accuracy", "recall_at_1_image_to_text", "logit_scale"} <= set(after)


def test_a_small_vqa_beats_the_majority_answer(vqa_run):
    _, run = vqa_run
    m = run.metrics
    # the majority count is ~0.2 of the held-out scenes; measured after these 32 steps: 0.41
    # (the vqa-digit-scenes recipe: see its docstring)
    assert m["accuracy_count"] > m["baseline_accuracy_count"] + 0.1, m
    assert 0.4 < m["baseline_accuracy_exists"] < 0.6  # half yes, half no


# ---- exported and served ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(clip_run, vqa_run, exports_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("image-text-served") / "server.log"
    proc = ServerProcess(exports_root / "exports", log_path=log)
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-6000:]


@pytest.fixture(scope="module")
def held_out(scenes_spec):
    """Four held-out scenes (uint8 128x128), their PNG bytes and captions."""
    examples = list(data.open_source(scenes_spec).load("test").take(4).as_numpy_iterator())
    images = np.stack([e["image"] for e in examples])
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    return images, pngs, [e["caption"].decode() for e in examples]


def test_clip_served_embeds_text_and_images_as_the_saved_model(clip_run, served, held_out):
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    _, run = clip_run
    images, pngs, captions = held_out
    url = f"{served.url}/v1/models/clip-digit-scenes:predict"
    status, doc = http("POST", url, {"signature_name": "embed_text", "instances": captions})
    assert status == 200, doc
    text = np.array(doc["predictions"])  # one output: the values themselves
    status, doc = http(
        "POST", url, {"signature_name": "embed_image", "instances": [b64(p) for p in pngs]}
    )
    assert status == 200, doc
    image = np.array(doc["predictions"])
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, atol=1e-4)

    loaded = tf.saved_model.load(str(run.export_dir))
    want_text = loaded.signatures["embed_text"](text=tf.constant(captions))["embedding"].numpy()
    np.testing.assert_allclose(text, want_text, atol=1e-4)
    resized = tf.image.resize(tf.cast(images, tf.float32), [64, 64]).numpy()
    want_image = loaded.signatures["serving_default"](images=tf.constant(resized))
    np.testing.assert_allclose(image, want_image["image_embedding"].numpy(), atol=1e-4)
    keras_image = run.model([resized, np.zeros((4, 8), np.int32)])["image_embedding"]
    np.testing.assert_allclose(image, np.asarray(keras_image), atol=1e-4)


def test_vqa_served_answers_questions_as_the_saved_model(vqa_run, served, held_out):
    import tensorflow_text  # noqa: F401

    _, run = vqa_run
    _, pngs, captions = held_out
    asked = [vqa_questions.questions(c, i)[i % 4][0] for i, c in enumerate(captions)]
    url = f"{served.url}/v1/models/vqa-digit-scenes:predict"
    body = {
        "signature_name": "answer",
        "instances": [{"image_bytes": b64(p), "question": q} for p, q in zip(pngs, asked)],
    }
    status, doc = http("POST", url, body)
    assert status == 200, doc
    answers = [p["answer"] for p in doc["predictions"]]
    assert set(answers) <= set(vqa_questions.ANSWERS)
    loaded = tf.saved_model.load(str(run.export_dir))
    want = loaded.signatures["answer"](image_bytes=tf.constant(pngs), question=tf.constant(asked))
    assert answers == [a.decode() for a in want["answer"].numpy()]
    probabilities = np.array([p["probabilities"] for p in doc["predictions"]])
    np.testing.assert_allclose(probabilities, want["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)

    status, doc = http("POST", url, {"signature_name": "answer", "instances": [{"question": "x"}]})
    assert status == 400, doc
