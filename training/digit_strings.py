"""Spoken digit strings: recordings of single spoken digits (the Free Spoken Digit Dataset, a
`folder:` of `<split>/<digit>/<digit>_<speaker>_<n>.wav`) joined into utterances for speech
recognition, by these rules:

- a string is 2-7 recordings (the count uniform), all of ONE speaker and all from ONE split, so
  a test string is made of test recordings only;
- between two recordings, 50-300 ms of silence (zeros; uniform, to the sample);
- its transcript is the digits' labels joined by single spaces ("4 0 7 1");
- a split's strings come from a generator seeded by (seed, the split's name) alone, so train and
  test are the same for the same seed whatever else is built (training/scenes.py's rule);
  `max_seconds` (the model's clip length) redraws a string that would be longer.

`count` strings per split; by default as many as the split has recordings (each recording is
in about 4.5 strings). The speaker is the second field of the file name (`audio/filename`).

A data source like `digit_scenes:` (training/data.py opens it):

    digit_strings:SOURCE?count=N&seed=S&max_seconds=X

SOURCE is labelled single-digit recordings with file names (`folder:` of FSDD, tfds
`spoken_digit`); the source's features are `audio` (int64 PCM), `transcript`, `speaker`.
"""

import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from training.data import AUTOTUNE, DataError, Source

MIN_DIGITS, MAX_DIGITS = 2, 7
GAP_MS = (50, 300)


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator of a split's strings: a split's strings do not depend on the others'."""
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def speaker_of(filename: str) -> str:
    parts = filename.split("_")
    if len(parts) < 3:
        raise DataError(f"{filename!r} is not <digit>_<speaker>_<n>.wav: no speaker in its name")
    return parts[1]


def build(recordings, labels, speakers, names, count, rng, rate, max_samples=None) -> dict:
    """`count` strings as lists: audio (int64 arrays), transcript (str), speaker (str)."""
    by_speaker = {}
    for i, s in enumerate(speakers):
        by_speaker.setdefault(s, []).append(i)
    order = sorted(by_speaker)
    low, high = (int(round(ms * rate / 1000)) for ms in GAP_MS)
    out = {"audio": [], "transcript": [], "speaker": []}
    attempts = 0
    while len(out["audio"]) < count:
        attempts += 1
        if attempts > 100 * count:
            raise DataError(
                f"digit strings: {max_samples / rate:.2f} s holds too few strings of "
                f"{MIN_DIGITS}-{MAX_DIGITS} recordings"
            )
        speaker = order[rng.integers(len(order))]
        n = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
        chosen = rng.choice(by_speaker[speaker], size=n, replace=len(by_speaker[speaker]) < n)
        gaps = rng.integers(low, high + 1, size=n - 1)
        parts = [recordings[chosen[0]]]
        for gap, i in zip(gaps, chosen[1:]):
            parts += [np.zeros(gap, np.int64), recordings[i]]
        audio = np.concatenate(parts)
        if max_samples is not None and len(audio) > max_samples:
            continue  # too long for the clip: drawn again (the generator moves on)
        out["audio"].append(audio)
        out["transcript"].append(" ".join(names[labels[i]] for i in chosen))
        out["speaker"].append(speaker)
    return out


def from_spec(spec: str) -> Source:
    """`SOURCE?count=N&seed=S&max_seconds=X` (each optional) -> the strings of SOURCE."""
    from training.data import open_source

    inner, _, query = spec.partition("?")
    options = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        try:
            options[key] = (float if key == "max_seconds" else int)(value)
        except ValueError:
            options[key] = None
        if key not in ("count", "seed", "max_seconds") or options[key] is None:
            raise DataError(
                f"digit_strings:{spec}: expected ?count=N&seed=S&max_seconds=X, not {part!r}"
            )
    return source(open_source(inner), **options)


def source(digits: Source, count=None, seed=0, max_seconds=None) -> Source:
    """The digit strings of `digits` (a labelled audio source with `audio/filename`)."""
    keys = set(digits.features.keys())
    if not {"audio", "label", "audio/filename"} <= keys or not digits.class_names:
        raise DataError(
            f"digit strings need labelled recordings with file names (`audio`, `label`, "
            f"`audio/filename`); {digits.name} has {', '.join(sorted(keys))}"
        )
    if count is not None and int(count) < 1:
        raise DataError(f"digit strings: count must be at least 1, not {count}")
    rate = int(digits.features["audio"].sample_rate)
    names = digits.class_names
    max_samples = None if max_seconds is None else int(round(float(max_seconds) * rate))
    features = tfds.features.FeaturesDict(
        {
            "audio": tfds.features.Audio(shape=(None,), dtype=np.int64, sample_rate=rate),
            "transcript": tfds.features.Text(),
            "speaker": tfds.features.Text(),
        }
    )
    built = {}

    def load(split):
        if split not in built:
            examples = list(digits.load(split).as_numpy_iterator())
            if not examples:
                raise DataError(f"{digits.name} has no recordings in split {split!r}")
            recordings = [e["audio"] for e in examples]
            labels = [int(e["label"]) for e in examples]
            speakers = [speaker_of(e["audio/filename"].decode()) for e in examples]
            n = int(count) if count is not None else len(recordings)
            built[split] = build(
                recordings, labels, speakers, names, n, split_rng(int(seed), split), rate,
                max_samples,
            )  # fmt: skip
        made = built[split]
        lengths = [len(a) for a in made["audio"]]
        audio = tf.RaggedTensor.from_row_lengths(np.concatenate(made["audio"]), lengths)
        ds = tf.data.Dataset.from_tensor_slices(
            (audio, tf.constant(made["transcript"]), tf.constant(made["speaker"]))
        )

        def features_of(samples, transcript, speaker):
            return {"audio": samples, "transcript": transcript, "speaker": speaker}

        return ds.map(features_of, num_parallel_calls=AUTOTUNE, deterministic=True)

    given = {"count": count, "seed": seed, "max_seconds": max_seconds}
    spec = digits.name + "?" + "&".join(f"{k}={v}" for k, v in given.items() if v is not None)
    description = f"spoken digit strings from {digits.description or digits.name}"
    return Source(f"digit_strings:{spec}", features, digits.splits, load, description)
