"""Image captioning (zoo/multimodal/captioning.py): an image in, a sentence out, trained with
teacher forcing and scored each epoch by decoding the held-out images.

A wordpiece vocabulary ([PAD], [UNK], [START], [END] first) is learnt from the training captions
when the task starts and handed to the exporter in `export_info()`, so the SavedModel tokenizes
and detokenizes as training did. An element is ((image, [START] + caption), caption + [END]),
`caption_length` tokens each; the loss is the cross-entropy over the real (unpadded) tokens.
Each epoch the `eval_split` images are captioned greedily and/or by beam search (`decode`:
"greedy", "beam" or "both"; the image read once, then the decoder per token) and scored against
their references (evaluation/captioning.py): `exact_match`, `bleu1`..`bleu4` (sacrebleu, 0..1),
`cider` (pycocoevalcap's CIDEr-D), with a `beam_` prefix for beam search; TensorBoard shows the
first `samples` images with their generated and reference captions (an image grid, and a text
table).

Config (the recipe's `task` section): `image_key` ("image"), `caption_key` ("caption"; a path
into nested features such as "captions/text" for coco_captions, whose several captions per image
each make a training element and are all references; by default whichever of the two the data
has), `image_size` ([H, W] to resize to; default
the data's own), `caption_length` (decoder positions, [END] included), `vocab_size`,
`lower_case`, `vocab_split`, `eval_split` ("test"), `eval_examples` (0: all), `decode`,
`beam_size`, `length_penalty` (GNMT alpha), `samples`, `held_out_examples` (0: all; else only the
first N examples of `eval_split` are loaded, for the held-out loss and accuracy as well as for
decoding: a `digit_scenes:...?count=N` source grows its test split with its training split, and
its first 2,000 test scenes are the default test split's exactly), `augment` ("none" or
"zoom_out": training images shrunk about their centre by a factor in [1 - `zoom`, 1] and
brightened or darkened by up to `brightness` of their value; both keep a left-to-right caption
true, as no flip or crop would).
"""

import numpy as np
import tensorflow as tf

import textkit
from evaluation import captioning as scoring
from textkit import END, START, WordpieceTokenizer, pack
from training import summaries
from training.data import Source
from training.tasks.base import Task, image_shape
from training.tasks.classification import warp
from training.tasks.text import TeacherForcing, strings, table
from zoo.multimodal.captioning import encoder_decoder

DECODES = ("greedy", "beam", "both")
AUGMENTATIONS = ("none", "zoom_out")


class Captioning(TeacherForcing, Task):
    name = "captioning"

    def __init__(self, config, source):
        super().__init__(config, source)
        self.image_key = config.get("image_key", "image")
        features = source.features
        self.caption_key = config.get("caption_key") or self._caption_key(features)
        if self.image_key not in features.keys():
            raise ValueError(f"data set {source.name} has no {self.image_key!r} feature")
        size = config.get("image_size")
        self.image_shape, self.resize = image_shape(source, self.image_key, size), bool(size)
        self.caption_length = int(config.get("caption_length", 16))
        self.lower_case = bool(config.get("lower_case", True))
        self.decode = config.get("decode", "greedy")
        if self.decode not in DECODES:
            raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {self.decode!r}")
        self.beam_size = int(config.get("beam_size", 3))
        self.alpha = float(config.get("length_penalty", 0.0))
        captions = source.load(config.get("vocab_split", "train")).flat_map(
            lambda example: tf.data.Dataset.from_tensor_slices(
                tf.reshape(self._caption(example), [-1])
            )
        )
        self.vocab = textkit.wordpiece_vocabulary(
            captions,
            config.get("vocab_size", 1000),
            textkit.SEQ2SEQ_TOKENS,
            self.lower_case,
        )
        self.tokenizer = WordpieceTokenizer(self.vocab, self.lower_case)
        self.start_id, self.end_id = self.vocab.index(START), self.vocab.index(END)
        self._eval = self._decoders = None
        self.augmentation = config.get("augment", "none")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"unknown augment {self.augmentation!r} (known: {', '.join(AUGMENTATIONS)})"
            )
        self.zoom = float(config.get("zoom", 0.15))
        self.brightness = float(config.get("brightness", 0.2))
        held_out = int(config.get("held_out_examples", 0))
        if held_out:
            self.source = self._limited(source, config.get("eval_split", "test"), held_out)

    @staticmethod
    def _limited(source, split, n):
        """`source` with only the first `n` examples of `split`."""

        def load(part):
            ds = source.load(part)
            return ds.take(n) if part == split else ds

        return Source(source.name, source.features, source.splits, load, source.description)

    @property
    def augment(self):
        if self.augmentation == "none":
            return None
        height, width, _ = self.image_shape

        def augment(inputs, labels, seed):
            image, decoder_in = inputs
            u = tf.random.stateless_uniform([2], seed=seed, minval=0.0, maxval=1.0)
            inverse = 1.0 / (1.0 - u[0] * self.zoom)  # output samples the input at M (x - c) + c
            image = warp(image, (height, width), (inverse, 0.0, 0.0, inverse), 0.0, 0.0)
            gain = 1.0 + (2.0 * u[1] - 1.0) * self.brightness
            image = tf.clip_by_value(image * gain, 0.0, 255.0)
            return (tf.ensure_shape(image, self.image_shape), decoder_in), labels

        return augment

    @staticmethod
    def _caption_key(features):
        """ "caption" (digit scenes), or "captions/text" (tfds coco_captions)."""
        if "caption" in features.keys():
            return "caption"
        if "captions" in features.keys() and "text" in features["captions"].feature.keys():
            return "captions/text"
        raise ValueError("name the caption feature: --set task.caption_key=... (e.g. 'caption')")

    # -- inputs ------------------------------------------------------------------------------
    def _caption(self, example):
        value = example
        for part in self.caption_key.split("/"):
            if part not in value:
                raise ValueError(f"the data has no caption feature {self.caption_key!r}")
            value = value[part]
        return value

    def image(self, image):
        image = tf.cast(image, tf.float32)
        if self.resize:
            image = tf.image.resize(image, self.image_shape[:2])
        return tf.ensure_shape(image, self.image_shape)

    def _caption_pairs(self, ds):
        """(image, one caption) per caption: an image with several captions appears once each."""

        def pairs(example):
            captions = tf.reshape(self._caption(example), [-1])
            image = self.image(example[self.image_key])  # one size, so they batch
            images = tf.repeat(image[None], tf.size(captions), axis=0)
            return tf.data.Dataset.from_tensor_slices((images, captions))

        return ds.flat_map(pairs)

    def encode(self, captions):
        """Strings [N] -> (decoder input [START] + caption, labels caption + [END]), int32
        [N, caption_length] each."""
        ids = pack(
            self.tokenizer.tokenize(captions), self.caption_length + 1, self.start_id, self.end_id
        )
        return ids[:, :-1], ids[:, 1:]

    def inputs(self, ds):
        def encode(images, captions):
            decoder_in, labels = self.encode(captions)
            return (images, decoder_in), labels

        return self._caption_pairs(ds).batch(64).map(encode).unbatch()

    def model_overrides(self):
        return {
            "input_shape": self.image_shape,
            "vocab_size": len(self.vocab),
            "max_length": self.caption_length,
            "caption_length": self.caption_length,
        }

    # -- decoding and scores -----------------------------------------------------------------
    def decoders(self, model):
        """{"greedy", "beam"}: tf.functions images [N,H,W,C] -> token ids [N, caption_length]."""
        if self._decoders is None or self._decoders[0] is not model:
            encoder, decoder = encoder_decoder(model)
            length, start, end = self.caption_length, self.start_id, self.end_id
            # explicit tf.while_loops: no AutoGraph (which re-reads source files when it traces)
            greedy = tf.function(
                lambda images: textkit.greedy_decode(
                    decoder, images, length, start, end, encoder=encoder
                ),
                autograph=False,
            )
            beam = tf.function(
                lambda images: textkit.beam_decode(
                    decoder,
                    images,
                    length,
                    start,
                    end,
                    beam_size=self.beam_size,
                    alpha=self.alpha,
                    encoder=encoder,
                ),
                autograph=False,
            )
            self._decoders = (model, {"greedy": greedy, "beam": beam})
        return self._decoders[1]

    def caption(self, model, images, decode="greedy", batch_size=100) -> list[str]:
        """Images (0..255) -> captions (detokenized wordpieces)."""
        if decode not in ("greedy", "beam"):
            raise ValueError(f"decode must be 'greedy' or 'beam', got {decode!r}")
        fn = self.decoders(model)[decode]
        out = []
        for i in range(0, len(images), batch_size):
            ids = fn(tf.constant(images[i : i + batch_size], tf.float32))
            out += strings(self.tokenizer.detokenize(ids))
        return out

    def eval_set(self):
        """(images float32 [N,H,W,C], references: a list of normalized captions per image) of
        `eval_split` (its first `eval_examples`; 0: all)."""
        if self._eval is None:
            ds = self.source.load(self.config.get("eval_split", "test"))
            limit = int(self.config.get("eval_examples", 0))
            if limit:
                ds = ds.take(limit)
            images, references = [], []
            for example in ds.map(
                lambda e: (self.image(e[self.image_key]), tf.reshape(self._caption(e), [-1]))
            ).as_numpy_iterator():
                images.append(example[0])
                words = self.tokenizer.words(tf.constant(example[1]))
                references.append(strings(words))
            self._eval = (
                np.stack(images) if images else np.zeros((0, *self.image_shape)),
                references,
            )
        return self._eval

    def evaluate(self, model, decode="greedy") -> tuple[dict, list[str]]:
        """Scores of `decode` on the eval split, and its captions."""
        images, references = self.eval_set()
        captions = self.caption(model, images, decode)
        return scoring.caption_scores(captions, references), captions

    def log_epoch(self, model, sample, totals, step):
        images, references = self.eval_set()
        if not len(images):
            return {}
        decodes = ["greedy", "beam"] if self.decode == "both" else [self.decode]
        metrics, shown = {}, {}
        for decode in decodes:
            scores, captions = self.evaluate(model, decode)
            prefix = "" if decode == "greedy" else "beam_"
            metrics.update({f"{prefix}{k}": v for k, v in scores.items()})
            shown[decode] = captions
        k = min(int(self.config.get("samples", 8)), len(images))
        header = ["#", *(f"{d} caption" for d in decodes), "reference"]
        rows = [(i, *(shown[d][i] for d in decodes), " / ".join(references[i])) for i in range(k)]
        tf.summary.text("captions", table(header, rows), step=step)
        first = decodes[0]
        labels = [f"{c or '(empty)'}" for c in shown[first][:k]]
        labels += [f"{r[0] if r else ''}" for r in references[:k]]
        pictures = np.concatenate([images[:k], images[:k]])
        picture = summaries.grid(pictures, labels, columns=k, cell=128)
        summaries.image(f"captions_{first}_above_reference_below", picture, step)
        return metrics

    def calibration(self, train, test):
        def images(ds, n):
            return np.stack([x for (x, _), _ in ds.take(n).as_numpy_iterator()])

        pairs = list(test.take(200).as_numpy_iterator())
        return {
            "representative": images(train.shuffle(1024, seed=0), 100).astype(np.uint8),
            "x_test": np.stack([x for (x, _), _ in pairs]).astype(np.uint8),
            "y_test": np.stack([y for _, y in pairs]).astype(np.int32),
        }

    def export_info(self):
        return {
            "vocab": list(self.vocab),
            "caption_length": self.caption_length,
            "lower_case": self.lower_case,
            "image_shape": list(self.image_shape),
            "beam_size": self.beam_size,
            "length_penalty": self.alpha,
        }
