"""Speech recognition with CTC (Graves et al. 2006): a recording -> its transcript.

The source is a data set with `audio` and a `transcript` (tokens separated by spaces): offline,
`digit_strings:<spoken digits>` (training/digit_strings.py: 2-7 recordings of one speaker from
one split, 50-300 ms of silence between them, "4 0 7 1"). The vocabulary is `task.tokens`, by
default every token of the training transcripts (sorted), and `max_labels` (the padded label
length) by default the longest training transcript's.

Each recording becomes a float waveform in -1..1 at the START of `clip_seconds` (zero-padded;
a longer one is an error when the strings are built, and is refused by the export), its
transcript token ids (blank = the last class, TensorFlow's convention) padded to `max_labels`.
Training clips may get `gain_db` and white `noise` (dB SNR, low and high) as in
audio_classification; SpecAugment is in the model.

Validation decodes every test string greedily and by beam search (`beam_width`,
tf.nn.ctc_beam_search_decoder) and scores both with jiwer: `cer`/`wer` (greedy) and
`cer_beam`/`wer_beam`, logged per epoch in TensorBoard with a table of transcripts. The CER is
over the spoken characters: where every token is one character (digits) the separating spaces
are left out of it, else it is over the text as written.
"""

import jiwer
import numpy as np
import tensorflow as tf

from training.tasks.base import EXAMPLES, Task, apply_gradients, regularization_loss


def place(waveform, length):
    """[n] -> [length]: the recording at the start, zeros after it (cut if longer)."""
    waveform = waveform[:length]
    return tf.pad(waveform, [[0, length - tf.shape(waveform)[0]]])


def texts(ids, tokens) -> list[str]:
    """Rows of token ids (-1 or anything out of range pads) -> texts joined by spaces."""
    return [" ".join(tokens[i] for i in row if 0 <= i < len(tokens)) for row in ids]


def error_rates(references, hypotheses, tokens) -> dict:
    """{"cer", "wer"} of the hypotheses by jiwer (0 for no references)."""
    if not references:
        return {"cer": 0.0, "wer": 0.0}
    single = all(len(t) == 1 for t in tokens)

    def chars(t):
        return t.replace(" ", "") if single else t

    wer = jiwer.wer(references, hypotheses)
    cer = jiwer.cer([chars(r) for r in references], [chars(h) for h in hypotheses])
    return {"cer": float(cer), "wer": float(wer)}


class SpeechRecognition(Task):
    name = "speech_recognition"
    shown = 8  # test transcripts in TensorBoard's table each epoch

    def __init__(self, config, source):
        super().__init__(config, source)
        keys = set(source.features.keys())
        self.clip_seconds = float(config.get("clip_seconds", 5.0))
        if not {"audio", "transcript"} <= keys:
            hint = (
                " (recordings of single digits: digit_strings:<source>)" if "label" in keys else ""
            )
            raise ValueError(
                f"{source.name} has no `audio` and `transcript` to recognize speech from{hint}"
            )
        tokens, max_labels = config.get("tokens"), config.get("max_labels")
        if not tokens or not max_labels:
            split = config.get("vocab_split", "train")
            transcripts = [
                t.decode().split()
                for t in source.load(split).map(lambda e: e["transcript"]).as_numpy_iterator()
            ]
            tokens = tokens or sorted({w for t in transcripts for w in t})
            max_labels = max_labels or max(map(len, transcripts), default=1)
        self.tokens = [str(t) for t in tokens]
        self.max_labels = int(max_labels)
        self.sample_rate = int(source.features["audio"].sample_rate or config.get("sample_rate"))
        self.clip_samples = int(round(self.clip_seconds * self.sample_rate))
        self.image_shape = (self.clip_samples,)  # what calibration and export_info read
        self.beam_width = int(config.get("beam_width", 8))
        self.gain_db = float(config.get("gain_db", 0.0))
        noise = config.get("noise")
        self.noise = tuple(map(float, noise)) if noise else None

    @property
    def blank(self) -> int:
        return len(self.tokens)

    def model_overrides(self):
        return {
            "input_shape": (self.clip_samples,),
            "num_classes": len(self.tokens) + 1,
            "sampling_rate": self.sample_rate,
        }

    def preprocess(self, example):
        waveform = place(tf.cast(example["audio"], tf.float32) / 32768.0, self.clip_samples)
        words = tf.strings.split(example["transcript"])
        vocabulary = tf.constant(self.tokens)
        known = tf.equal(words[:, None], vocabulary[None, :])
        check = tf.debugging.assert_equal(
            tf.reduce_all(tf.reduce_any(known, axis=1)),
            True,
            message=f"a transcript has a token outside the vocabulary {self.tokens}",
        )
        with tf.control_dependencies([check]):
            ids = tf.argmax(tf.cast(known, tf.int32), axis=1, output_type=tf.int32)
        length = tf.minimum(tf.size(ids), self.max_labels)
        ids = tf.pad(ids[: self.max_labels], [[0, self.max_labels - length]])
        waveform = tf.ensure_shape(waveform, [self.clip_samples])
        return waveform, tf.ensure_shape(ids, [self.max_labels]), length

    @property
    def augment(self):
        if not (self.gain_db or self.noise):
            return None

        def augment(waveform, labels, length, seed):
            u = tf.random.stateless_uniform([2], seed=seed, minval=-1.0, maxval=1.0)
            if self.gain_db:
                waveform *= 10.0 ** (u[0] * self.gain_db / 20.0)
            if self.noise:
                low, high = self.noise
                snr = low + (u[1] + 1.0) / 2.0 * (high - low)
                power = tf.reduce_mean(tf.square(waveform)) + 1e-10
                std = tf.sqrt(power / 10.0 ** (snr / 10.0))
                noise = tf.random.stateless_normal(tf.shape(waveform), seed=seed + 1)
                waveform += std * noise
            return tf.ensure_shape(waveform, [self.clip_samples]), labels, length

        return augment

    # -- steps ----------------------------------------------------------------------------------
    def _ctc(self, labels, lengths, logits):
        frames = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
        return tf.nn.ctc_loss(
            labels=labels,
            logits=logits,
            label_length=lengths,
            logit_length=frames,
            logits_time_major=False,
            blank_index=-1,
        )

    def train_step(self, model, optimizers, batch, global_batch_size):
        waveforms, labels, lengths = batch
        with tf.GradientTape() as tape:
            logits = tf.cast(model(waveforms, training=True), tf.float32)
            per_example = self._ctc(labels, lengths, logits)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizers["model"], tape, loss, model.trainable_variables)
        return {
            "loss": tf.reduce_sum(per_example),
            "count": tf.cast(tf.shape(labels)[0], tf.float32),
        }

    def decode(self, logits, beam=False):
        """Logits [N,T,K] -> token ids [N,T] (-1 past the transcript): greedy or beam CTC."""
        time_major = tf.transpose(logits, (1, 0, 2))
        frames = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
        if beam:
            decoded, _ = tf.nn.ctc_beam_search_decoder(
                time_major, frames, beam_width=self.beam_width, top_paths=1
            )
        else:
            decoded, _ = tf.nn.ctc_greedy_decoder(time_major, frames, merge_repeated=True)
        dense = tf.sparse.to_dense(decoded[0], default_value=-1)
        dense = tf.cast(dense, tf.int32)
        pad = tf.shape(logits)[1] - tf.shape(dense)[1]
        return tf.pad(dense, [[0, 0], [0, pad]], constant_values=-1)

    def eval_step(self, model, batch):
        waveforms, labels, lengths = batch
        logits = tf.cast(model(waveforms, training=False), tf.float32)
        per_example = self._ctc(labels, lengths, logits)
        truth = tf.where(tf.range(self.max_labels)[None, :] < lengths[:, None], labels, -1)
        return {
            "loss": tf.reduce_sum(per_example),
            "count": tf.cast(tf.shape(labels)[0], tf.float32),
            EXAMPLES: {
                "truth": truth,
                "greedy": self.decode(logits),
                "beam": self.decode(logits, beam=True),
            },
        }

    def results(self, totals):
        metrics = super().results(totals)
        found = totals.get(EXAMPLES)
        if found is not None:
            references = texts(found["truth"], self.tokens)
            for key, suffix in (("greedy", ""), ("beam", "_beam")):
                rates = error_rates(references, texts(found[key], self.tokens), self.tokens)
                metrics.update({f"{k}{suffix}": v for k, v in rates.items()})
        return metrics

    # -- what the run shows and leaves behind ---------------------------------------------------
    def log_epoch(self, model, sample, totals, step):
        waveforms, labels, lengths = (np.asarray(a)[: self.shown] for a in sample)
        logits = tf.cast(model(waveforms, training=False), tf.float32)
        truth = [row[:n] for row, n in zip(labels, lengths)]
        references = texts(truth, self.tokens)
        greedy = texts(self.decode(logits).numpy(), self.tokens)
        beam = texts(self.decode(logits, beam=True).numpy(), self.tokens)
        rows = ["| truth | greedy | beam |", "|---|---|---|"]
        rows += [f"| {r} | {g} | {b} |" for r, g, b in zip(references, greedy, beam)]
        tf.summary.text("transcripts", "\n".join(rows), step=step)

    def calibration(self, train, test):
        x_train = np.stack(
            [x for x, _, _ in train.shuffle(4096, seed=0).take(100).as_numpy_iterator()]
        )
        x_test = np.stack([x for x, _, _ in test.take(32).as_numpy_iterator()])
        return {"representative": x_train, "x_test": x_test}

    def export_info(self):
        return {
            "tokens": self.tokens,
            "clip_samples": self.clip_samples,
            "sample_rate": self.sample_rate,
            "beam_width": self.beam_width,
            "tflite_float_layers": ["log_mel"],  # as audio_classification's
        }
