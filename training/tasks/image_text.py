"""Image-text tasks: a CLIP dual encoder (`clip`, kind `image_text`) and visual question answering
(`vqa`), on image-caption data: digit scenes offline (training/scenes.py: "seven two nine", the
digits left to right), tfds `coco_captions` for users.

Text goes through a BERT-style wordpiece vocabulary learnt from the training split's texts with
textkit (`wordpiece_vocabulary`; `vocab_size`, `lower_case`); on digit scenes it comes out as the
ten digit words and the question words, whole, plus their characters. The tokenizer (textkit
`WordpieceTokenizer`) is the one the exports carry: the vocabulary goes to export_info.json. A
text becomes [CLS] wordpieces [SEP], padded to `seq_len` with 0.

`clip` (Radford et al. 2021). Elements: (image uint8 [H,W,C], caption tokens int32 [T]); the
caption is `caption_key` (default `caption`; for coco_captions `captions/text`, of which the first
of each image's captions is taken). Images are resized to `image_size` if given (coco), else kept
at the source's shape. Loss: the symmetric InfoNCE over the *global* batch: every replica gathers
the other replicas' image and text embeddings (`all_gather`, differentiable, as training/tasks/
ssl.py's NT-Xent does), scales the cosine similarities by the model's learnt logit scale (CLIP's
temperature: a trainable log-scale weight, init 1/0.07, clipped at 100), and takes the
cross-entropy of each local image over all texts and of each local text over all images, the mean
of the two per example. Captions that are the same tokens (the many one-digit scenes "seven") are
all positives of each other: the target is spread evenly over them rather than calling a copy of
the true caption a negative. Scores per batch: `loss`, `contrast_accuracy` (the top text of an
image is a positive).

Each epoch (log_epoch, on the chief), as validation `epoch_<name>` in TensorBoard:
- `zero_shot_accuracy`: the 1,000 test digits of the scenes' digit source (`zero_shot_digits`,
  default: the source after `digit_scenes:`; "none" to skip) classified with no classifier trained:
  each digit image against the embedded prompts "zero" ... "nine" (`prompts`), the nearest wins.
  A 28x28 digit is put on the scene canvas as a scene digit would be: resized bilinearly to 42x42
  (the middle of the scenes' 28..56 sizes) and placed at the centre of a black 128x128 canvas
  (with `image_size` other than the scenes' 128x128: both scaled by size/128);
- `recall_at_{1,5}_image_to_text` and `..._text_to_image` over a fixed test batch: the first
  `recall_count` (100) scenes of `recall_split` (test) as loaded: each image ranks the 100
  captions (each caption the 100 images) by cosine; a hit is a retrieved caption equal to the
  true one (for text->image: an image whose caption is that text), since one-digit scenes share
  captions; `logit_scale` too; and a table of scenes with their nearest captions.

`vqa`: questions generated from each digit scene (training/vqa_questions.py: four per scene, of
types count, exists, leftmost), answered by classification over 12 answers. Elements: (image
uint8, question tokens int32 [4, T], answers int32 [4], types int32 [4]); training asks
`train_questions` (default 1) of the four per scene per step, drawn from the step's seed (the image
tower runs once per question asked); validation asks all four. Scores: `loss`, `accuracy`,
`accuracy_<type>` per question type; each epoch also `baseline_accuracy_<type>`: the majority
answer of that type in the training split, scored on the validation questions (what a model that
ignores the image and only reads the question's type gets), and a table of questions answered.
"""

import numpy as np
import tensorflow as tf

import textkit
from textkit import BERT_TOKENS, CLS, SEP, WordpieceTokenizer, pack
from training import data, vqa_questions
from training.scenes import CANVAS, WORDS
from training.tasks.base import (
    EXAMPLES,
    Task,
    apply_gradients,
    image_shape,
    regularization_loss,
)
from training.tasks.text import strings, table
from zoo.multimodal.clip import towers

ZERO_SHOT_SIZE = 42  # a test digit's size on the canvas: the middle of the scenes' 28..56


def _feature(example, key):
    """`a/b` reads a nested feature; a sequence of strings gives its first."""
    value = example
    for part in key.split("/"):
        if part not in value:
            raise ValueError(f"the data set has no feature {key!r} (it has {sorted(value)})")
        value = value[part]
    return value[0] if value.shape.rank == 1 else value


def _gather(*tensors):
    """(offset of this replica's rows, each tensor gathered over the replicas); on one device
    (0, the tensors)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return (0, *tensors)
    local = tf.shape(tensors[0])[0]
    sizes = context.all_gather(local[None], axis=0)
    offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    return (offset, *(context.all_gather(t, axis=0) for t in tensors))


def contrastive_loss(image, text, scale, tokens):
    """CLIP's symmetric InfoNCE over the global batch, per local example: (loss [B], the image's
    top text is a positive [B]). `image`, `text`: L2-normalized [B, D]; `scale`: the logit scale
    (scalar); `tokens` [B, T]: captions with the same tokens are positives of each other."""
    _, all_image, all_text, all_tokens = _gather(image, text, tokens)
    same = tf.reduce_all(tf.equal(tokens[:, None, :], all_tokens[None, :, :]), axis=-1)
    targets = tf.cast(same, tf.float32)
    targets /= tf.reduce_sum(targets, axis=-1, keepdims=True)
    image_logits = scale * tf.matmul(image, all_text, transpose_b=True)  # [B, G]
    text_logits = scale * tf.matmul(text, all_image, transpose_b=True)
    loss_image = tf.nn.softmax_cross_entropy_with_logits(targets, image_logits)
    loss_text = tf.nn.softmax_cross_entropy_with_logits(targets, text_logits)
    top = tf.argmax(image_logits, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.gather(same, top, batch_dims=1), tf.float32)
    return (loss_image + loss_text) / 2.0, correct


def recall_at(similarity, same, k) -> float:
    """The fraction of rows whose top-k columns by `similarity` hold a positive (`same`)."""
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.take_along_axis(same, top, axis=1).any(axis=1)))


def digits_on_canvas(digits, canvas=(CANVAS, CANVAS), size=None) -> np.ndarray:
    """Digits uint8 [N, 28, 28, C] -> float32 [N, H, W, C] (0..255): each resized bilinearly to
    size x size (default 42 on a 128-pixel canvas, scaled with the canvas) and centred on a
    black canvas."""
    if size is None:
        size = max(1, round(ZERO_SHOT_SIZE * min(canvas) / CANVAS))
    if size > min(canvas):
        raise ValueError(f"a {size}x{size} digit does not fit a {canvas} canvas")
    x = tf.image.resize(tf.cast(digits, tf.float32), [size, size], method="bilinear")
    top, left = (canvas[0] - size) // 2, (canvas[1] - size) // 2
    x = tf.image.pad_to_bounding_box(x, top, left, canvas[0], canvas[1])
    return np.clip(np.round(x.numpy()), 0, 255).astype(np.float32)


class _ImageText(Task):
    """Shared: the wordpiece vocabulary learnt from the training texts, and image shapes."""

    image_key = "image"
    calibration_count = 200

    def __init__(self, config, source):
        super().__init__(config, source)
        c = config
        self.seq_len = int(c.get("seq_len", 16))
        self.lower_case = bool(c.get("lower_case", True))
        self.image_shape = image_shape(source, self.image_key, c.get("image_size"))
        if self.seq_len < 3:
            raise ValueError(f"task.seq_len={self.seq_len}: expected at least 3 ([CLS] x [SEP])")
        texts = self.vocabulary_texts(c.get("vocab_split", "train"))
        self.vocab = textkit.wordpiece_vocabulary(
            texts, c.get("vocab_size", 1000), BERT_TOKENS, self.lower_case
        )
        self.tokenizer = WordpieceTokenizer(self.vocab, self.lower_case)
        self.cls_id, self.sep_id = self.vocab.index(CLS), self.vocab.index(SEP)

    def vocabulary_texts(self, split) -> tf.data.Dataset:
        raise NotImplementedError

    def encode(self, texts):
        """Strings [N] -> int32 [N, seq_len]: [CLS] wordpieces [SEP], padded with 0."""
        return pack(self.tokenizer.tokenize(texts), self.seq_len, self.cls_id, self.sep_id)

    def image(self, example):
        """uint8 [H, W, C] at the task's image shape."""
        image = example[self.image_key]
        if tuple(image.shape) != self.image_shape:
            image = tf.image.resize(image, self.image_shape[:2], antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.ensure_shape(image, self.image_shape)

    def export_info(self):
        return {
            "vocab": list(self.vocab),
            "seq_len": self.seq_len,
            "lower_case": self.lower_case,
            "image_shape": list(self.image_shape),
        }


# ---- CLIP ------------------------------------------------------------------------------------


class Clip(_ImageText):
    name = "clip"
    kind = "image_text"

    def __init__(self, config, source):
        default = "caption" if "caption" in source.features.keys() else "captions/text"
        self.caption_key = config.get("caption_key") or default
        super().__init__(config, source)
        c = config
        self.prompts = list(c.get("prompts", WORDS))
        self.recall_split = c.get("recall_split", "test")
        self.recall_count = int(c.get("recall_count", 100))
        digits = c.get("zero_shot_digits")
        if digits is None and source.name.startswith("digit_scenes:"):
            digits = source.name[len("digit_scenes:") :].split("?")[0]
        self.zero_shot_digits = None if digits in (None, "none") else digits
        self.zero_shot_split = c.get("zero_shot_split", "test")
        if self.recall_count < 5:
            raise ValueError(f"task.recall_count={self.recall_count}: expected at least 5")
        self._fixed = None  # (zero-shot digits on the canvas, labels, recall images, tokens)
        self._towers = (None, None)

    def vocabulary_texts(self, split):
        return self.source.load(split).map(lambda e: _feature(e, self.caption_key))

    def model_overrides(self):
        return {
            "input_shape": self.image_shape,
            "vocab_size": len(self.vocab),
            "seq_len": self.seq_len,
        }

    def inputs(self, ds):
        def element(examples):
            return examples["image"], self.encode(examples["caption"])

        ds = ds.map(
            lambda e: {"image": self.image(e), "caption": _feature(e, self.caption_key)},
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return ds.batch(256).map(element).unbatch()

    def _losses(self, model, images, tokens, training):
        out = model([tf.cast(images, tf.float32), tokens], training=training)
        image = tf.cast(out["image_embedding"], tf.float32)
        text = tf.cast(out["text_embedding"], tf.float32)
        scale = tf.cast(out["logit_scale"][0, 0], tf.float32)
        per_example, correct = contrastive_loss(image, text, scale, tokens)
        count = tf.cast(tf.shape(images)[0], tf.float32)
        return per_example, {
            "loss": tf.reduce_sum(per_example),
            "contrast_accuracy": tf.reduce_sum(correct),
            "count": count,
        }

    def train_step(self, model, optimizers, batch, global_batch_size):
        images, tokens = batch
        with tf.GradientTape() as tape:
            per_example, sums = self._losses(model, images, tokens, training=True)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return sums

    def eval_step(self, model, batch):
        images, tokens = batch
        return self._losses(model, images, tokens, training=False)[1]

    # -- scores each epoch ----------------------------------------------------------------------
    def towers(self, model):
        """(image embedding fn, text embedding fn), compiled once per model."""
        if self._towers[0] is not model:
            image, text = towers(model)
            self._towers = (
                model,
                (
                    tf.function(lambda x: tf.cast(image(x, training=False), tf.float32)),
                    tf.function(lambda t: tf.cast(text(t, training=False), tf.float32)),
                ),
            )
        return self._towers[1]

    def fixed(self):
        """The zero-shot digits (on the canvas) and labels, and the recall batch's images and
        caption tokens, loaded once."""
        if self._fixed is None:
            digits = labels = None
            if self.zero_shot_digits:
                source = data.open_source(self.zero_shot_digits)
                pairs = [
                    (e["image"], e["label"])
                    for e in source.load(self.zero_shot_split).as_numpy_iterator()
                ]
                digits = digits_on_canvas(np.stack([p[0] for p in pairs]), self.image_shape[:2])
                if digits.shape[-1] != self.image_shape[-1]:
                    digits = np.repeat(digits, self.image_shape[-1], axis=-1)
                names = source.class_names
                if self.prompts == list(WORDS) and names:  # the label index -> its prompt
                    order = [WORDS.index(WORDS[int(n)]) for n in names]
                    labels = np.array([order[p[1]] for p in pairs])
                else:
                    labels = np.array([p[1] for p in pairs])
            batch = list(
                self.inputs(self.source.load(self.recall_split))
                .take(self.recall_count)
                .as_numpy_iterator()
            )
            images = np.stack([b[0] for b in batch]).astype(np.float32)
            tokens = np.stack([b[1] for b in batch])
            self._fixed = digits, labels, images, tokens
        return self._fixed

    def scores(self, model) -> dict:
        embed_image, embed_text = self.towers(model)
        digits, labels, images, tokens = self.fixed()
        found = {}
        if digits is not None:
            prompts = embed_text(self.encode(tf.constant(self.prompts))).numpy()
            embedded = np.concatenate(
                [
                    embed_image(tf.constant(digits[i : i + 250])).numpy()
                    for i in range(0, len(digits), 250)
                ]
            )
            predicted = (embedded @ prompts.T).argmax(-1)
            found["zero_shot_accuracy"] = float(np.mean(predicted == labels))
        image = embed_image(tf.constant(images)).numpy()
        text = embed_text(tf.constant(tokens)).numpy()
        similarity = image @ text.T
        same = (tokens[:, None, :] == tokens[None, :, :]).all(-1)
        for k in (1, 5):
            found[f"recall_at_{k}_image_to_text"] = recall_at(similarity, same, k)
            found[f"recall_at_{k}_text_to_image"] = recall_at(similarity.T, same.T, k)
        return found

    def log_epoch(self, model, sample, totals, step):
        found = self.scores(model)
        scale = model.get_layer("logit_scale")  # the temperature's inverse, as the loss uses it
        found["logit_scale"] = float(min(np.exp(float(scale.log_scale.numpy())), scale.maximum))
        _, _, images, tokens = self.fixed()
        embed_image, embed_text = self.towers(model)
        similarity = (
            embed_image(tf.constant(images)).numpy() @ embed_text(tf.constant(tokens)).numpy().T
        )
        captions = strings(self.tokenizer.detokenize(tf.constant(tokens)))
        rows = []
        for i in range(min(8, len(captions))):
            best = np.argsort(-similarity[i], kind="stable")[:3]
            rows.append(
                (captions[i], "; ".join(f"{captions[j]} ({similarity[i, j]:.2f})" for j in best))
            )
        tf.summary.text(
            "retrieval", table(["caption", "nearest captions (cosine)"], rows), step=step
        )
        return found

    # -- export -----------------------------------------------------------------------------
    def calibration(self, train, test):
        n = self.calibration_count
        return {
            "representative": np.stack([x for x, _ in train.take(n).as_numpy_iterator()]),
            "x_test": np.stack([x for x, _ in test.take(n).as_numpy_iterator()]),
        }


# ---- VQA ------------------------------------------------------------------------------------


class Vqa(_ImageText):
    name = "vqa"
    kind = "vqa"
    caption_key = "caption"

    def __init__(self, config, source):
        if "caption" not in source.features.keys():
            raise ValueError(
                f"task vqa asks questions of digit scenes (digit_scenes:SOURCE), whose captions "
                f"name their digits; {source.name!r} has no `caption`"
            )
        super().__init__(config, source)
        self.answers = list(vqa_questions.ANSWERS)
        self.types = list(vqa_questions.TYPES)
        self.train_questions = int(config.get("train_questions", 1))
        if not 1 <= self.train_questions <= vqa_questions.PER_SCENE:
            raise ValueError(
                f"task.train_questions={self.train_questions}: expected 1.."
                f"{vqa_questions.PER_SCENE}"
            )
        # the majority answer of each type in the training split: the baseline
        counts = np.zeros((len(self.types), len(self.answers)), np.int64)
        for n, caption in enumerate(self._captions(config.get("vocab_split", "train"))):
            for (_, answer), t in zip(
                vqa_questions.questions(caption, n), vqa_questions.QUESTION_TYPES
            ):
                counts[t, self.answers.index(answer)] += 1
        self.majority = counts.argmax(-1)

    def _captions(self, split) -> list[str]:
        ds = self.source.load(split).map(lambda e: e["caption"])
        return [c.decode("utf-8") for c in ds.as_numpy_iterator()]

    def vocabulary_texts(self, split):
        texts = [
            q for n, c in enumerate(self._captions(split)) for q, _ in vqa_questions.questions(c, n)
        ]
        return tf.data.Dataset.from_tensor_slices(texts)

    def model_overrides(self):
        return {
            "input_shape": self.image_shape,
            "vocab_size": len(self.vocab),
            "seq_len": self.seq_len,
            "num_answers": len(self.answers),
        }

    def inputs(self, ds):
        """Scenes -> (image, question tokens [4, T], answers [4], types [4]), the n-th scene of
        the split as loaded asked vqa_questions.questions(caption, n)."""
        images, texts, answers = [], [], []
        for n, example in enumerate(ds.as_numpy_iterator()):
            pairs = vqa_questions.questions(example["caption"].decode("utf-8"), n)
            images.append(example[self.image_key])
            texts += [q for q, _ in pairs]
            answers.append([self.answers.index(a) for _, a in pairs])
        q = vqa_questions.PER_SCENE
        if not images:
            raise data.DataError("no scenes to ask questions about")
        tokens = tf.reshape(self.encode(tf.constant(texts)), [len(images), q, self.seq_len])
        types = np.tile(np.array(vqa_questions.QUESTION_TYPES, np.int32), (len(images), 1))
        ds = tf.data.Dataset.from_tensor_slices(
            (np.stack(images), tokens, np.array(answers, np.int32), types)
        )
        return ds.map(lambda i, t, a, y: (self.image({"image": i}), t, a, y))

    @property
    def augment(self):
        def ask(image, tokens, answers, types, seed):
            u = tf.random.stateless_uniform([vqa_questions.PER_SCENE], seed=tf.cast(seed, tf.int64))
            chosen = tf.argsort(u)[: self.train_questions]
            return (
                image,
                tf.gather(tokens, chosen),
                tf.gather(answers, chosen),
                tf.gather(types, chosen),
            )

        return ask

    def _sums(self, model, batch, training):
        images, tokens, answers, types = batch
        q = tf.shape(tokens)[1]
        images = tf.repeat(tf.cast(images, tf.float32), q, axis=0)
        tokens = tf.reshape(tokens, [-1, self.seq_len])
        answers, types = tf.reshape(answers, [-1]), tf.reshape(types, [-1])
        probs = tf.cast(model([images, tokens], training=training), tf.float32)
        per_question = tf.keras.losses.sparse_categorical_crossentropy(answers, probs)
        predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
        correct = tf.cast(tf.equal(predicted, answers), tf.float32)
        sums = {
            "loss": tf.reduce_sum(per_question),
            "accuracy": tf.reduce_sum(correct),
            "questions": tf.cast(tf.size(answers), tf.float32),
            "count": tf.cast(tf.shape(images)[0], tf.float32),
        }
        for t, name in enumerate(self.types):
            of_type = tf.cast(tf.equal(types, t), tf.float32)
            sums[f"correct_{name}"] = tf.reduce_sum(correct * of_type)
            sums[f"asked_{name}"] = tf.reduce_sum(of_type)
        return per_question, sums, (answers, types, predicted)

    def train_step(self, model, optimizers, batch, global_batch_size):
        with tf.GradientTape() as tape:
            per_question, sums, _ = self._sums(model, batch, training=True)
            per_scene = tf.cast(self.train_questions, tf.float32)
            loss = tf.reduce_sum(per_question) / (global_batch_size * per_scene)
            loss += regularization_loss(model)
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return sums

    def eval_step(self, model, batch):
        _, sums, (answers, types, predicted) = self._sums(model, batch, training=False)
        return {**sums, EXAMPLES: {"answer": answers, "type": types, "predicted": predicted}}

    def results(self, totals):
        asked = max(float(totals["questions"]), 1.0)
        found = {
            "loss": float(totals["loss"]) / asked,
            "accuracy": float(totals["accuracy"]) / asked,
        }
        for name in self.types:
            found[f"accuracy_{name}"] = float(totals[f"correct_{name}"]) / max(
                float(totals[f"asked_{name}"]), 1.0
            )
        return found

    def baseline(self, answers, types) -> dict:
        """The training split's majority answer per type, scored on these questions."""
        return {
            f"baseline_accuracy_{name}": float(np.mean(answers[types == t] == self.majority[t]))
            for t, name in enumerate(self.types)
            if np.any(types == t)
        }

    def log_epoch(self, model, sample, totals, step):
        found = {}
        if EXAMPLES in totals:
            ex = totals[EXAMPLES]
            found = self.baseline(np.asarray(ex["answer"]), np.asarray(ex["type"]))
        images, tokens, answers, _ = (np.asarray(a)[:4] for a in sample)
        q = tokens.shape[1]
        probs = np.asarray(
            model(
                [np.repeat(images.astype(np.float32), q, 0), tokens.reshape(-1, self.seq_len)],
                training=False,
            )
        )
        questions = strings(
            self.tokenizer.detokenize(tf.constant(tokens.reshape(-1, self.seq_len)))
        )
        truth = answers.reshape(-1)
        rows = [
            (i // q, questions[i], f"{self.answers[p]} ({probs[i, p]:.2f})", self.answers[truth[i]])
            for i, p in enumerate(probs.argmax(-1))
        ]
        tf.summary.text("answers", table(["scene", "question", "answer", "true"], rows), step=step)
        return found

    # -- export -----------------------------------------------------------------------------
    def calibration(self, train, test):
        def flat(ds, n):
            images, tokens, answers = [], [], []
            for image, t, a, _ in ds.take(n).as_numpy_iterator():
                images += [image] * len(t)
                tokens += list(t)
                answers += list(a)
            return np.stack(images), np.stack(tokens), np.array(answers)

        n = self.calibration_count // vqa_questions.PER_SCENE
        rep_images, rep_tokens, _ = flat(train, n)
        images, tokens, answers = flat(test, n)
        return {
            "representative.images": rep_images,
            "representative.question_tokens": rep_tokens,
            "x_test.images": images,
            "x_test.question_tokens": tokens,
            "y_test": answers,
        }

    def export_info(self):
        return {**super().export_info(), "answers": self.answers, "question_types": self.types}
