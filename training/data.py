"""Data sources and tf.data pipelines.

A source is a tfds data set (`mnist`, `cifar10`, `tiny_shakespeare`, ...), an image folder
(`folder:PATH` holding `PATH/<split>/<label>/<image>`), a sample bundled with the project
(`sample:mnist5k`, training/samples/), or scenes or clips made from the digits of one of these
(`digit_scenes:SOURCE?count=N&seed=S`, training/scenes.py; `moving_digits:SOURCE?...`,
training/moving_digits.py), or spoken digit strings made from recordings of single digits
(`digit_strings:SOURCE?count=N&seed=S&max_seconds=X`, training/digit_strings.py). Whichever, a
split loads as a tf.data.Dataset of feature dicts described by a tfds `FeaturesDict`, so a task
reads them all the same way.

Offline: `TFDS_DATA_DIR` points at prepared data, `TFDS_MANUAL_DIR` at original download files
(tfds checks their checksums and prepares them). With neither and no network, loading stops with a
`DataError` naming the files to place: it never hangs on a download. A recipe's `data.fallback`
(e.g. `sample:mnist5k` for `mnist`) is opened instead in that case, with one line saying so.
"""

import dataclasses
import os
import pathlib
import socket
import sys

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
AUDIO_SUFFIXES = {".wav"}
AUTOTUNE = tf.data.AUTOTUNE


class DataError(Exception):
    """The data cannot be had: a one-line reason for the user."""


class NotPrepared(DataError):
    """A tfds data set that is not prepared and cannot be here: no network, and TFDS_MANUAL_DIR
    lacks its files (or tfds could not download them). A recipe's `data.fallback` applies."""


@dataclasses.dataclass
class Source:
    name: str
    features: tfds.features.FeaturesDict
    splits: list[str]
    _load: callable
    description: str = ""

    def load(self, split: str) -> tf.data.Dataset:
        """A split, or splits joined by "+" (`train+validation`: one after the other)."""
        parts = split.split("+")
        for part in parts:
            if self.splits and part not in self.splits:
                raise DataError(
                    f"data set {self.name!r} has no split {part!r} "
                    f"(splits: {', '.join(self.splits)})"
                )
        ds = self._load(parts[0])
        for part in parts[1:]:
            ds = ds.concatenate(self._load(part))
        return ds

    @property
    def class_names(self) -> list[str]:
        label = self.features["label"] if "label" in self.features.keys() else None
        return list(label.names) if isinstance(label, tfds.features.ClassLabel) else []


def open_source(spec: str, fallback: str | None = None) -> Source:
    """`mnist`, `ted_hrlr_translate/pt_to_en`, `folder:PATH`, `sample:NAME`, or data made from
    another source (`digit_scenes:`, `moving_digits:`, `digit_strings:`).

    `fallback` (a recipe's `data.fallback`): the source to open when the tfds data set `spec`
    (or the one it is made from) cannot be prepared here (NotPrepared); one line on stderr says
    so. A bundled sample stands in only for the data set it samples (`--dataset fashion_mnist`
    never trains on MNIST digits)."""
    try:
        return _open(spec)
    except NotPrepared as e:
        if not fallback or not _stands_in_for(fallback, spec):
            raise
        source = open_source(fallback)
        note = f"note: training on {fallback} instead of {spec} ({source.description}): {e}"
        print(note, file=sys.stderr)
        return source


def _open(spec: str) -> Source:
    if spec.startswith("digit_strings:"):
        from training import digit_strings

        return digit_strings.from_spec(spec[len("digit_strings:") :])
    if spec.startswith("digit_scenes:"):
        return _scenes_source(spec[len("digit_scenes:") :])
    if spec.startswith("moving_digits:"):
        return _moving_digits_source(spec[len("moving_digits:") :])
    if spec.startswith("folder:"):
        return _folder_source(pathlib.Path(spec[len("folder:") :]).expanduser())
    if spec.startswith("sample:"):
        return _sample_source(spec[len("sample:") :])
    return _tfds_source(spec)


def _stands_in_for(fallback: str, name: str) -> bool:
    if not fallback.startswith("sample:"):
        return True
    sample = fallback[len("sample:") :]
    from training import samples

    base = name.split("/")[0].split(":")[0]  # `mnist` of `mnist:3.*.*` or `mnist/config`
    return sample in samples.SAMPLES and samples.SAMPLES[sample][0] == base


# ---------------------------------------------------------------------------------------------
# tfds


def network_available(host="storage.googleapis.com", port=443, timeout=3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds_source(name: str) -> Source:
    data_dir = os.environ.get("TFDS_DATA_DIR") or None
    manual_dir = os.environ.get("TFDS_MANUAL_DIR") or None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(
            f"unknown data set {name!r}: not a tfds data set (see `python -m training list`) "
            "and not folder:PATH"
        ) from None
    if not builder.is_prepared():
        files = _download_files(builder)
        if manual_dir and all(pathlib.Path(manual_dir, f).is_file() for f in files):
            config = tfds.download.DownloadConfig(manual_dir=manual_dir)
            _preparing(builder, f"from {manual_dir}")
            try:
                builder.download_and_prepare(download_config=config)
            except Exception as e:  # tfds raises many kinds; the user needs the reason
                raise DataError(
                    f"tfds could not prepare {name!r} from TFDS_MANUAL_DIR={manual_dir}: "
                    f"{str(e).splitlines()[0]}"
                ) from None
        elif network_available():
            _preparing(builder, "downloading")
            try:
                builder.download_and_prepare()
            except Exception as e:  # a proxy or firewall lets the probe through, not the download
                raise NotPrepared(
                    f"tfds could not download {name!r}: {str(e).splitlines()[0]}"
                ) from None
        else:
            raise NotPrepared(_offline_message(builder))
    splits = list(builder.info.splits.keys())

    def load(split):
        return builder.as_dataset(split=split, shuffle_files=False)

    return Source(name, builder.info.features, splits, load, builder.info.description or "")


def _preparing(builder, how):
    """Say what the first use of a tfds data set is doing (minutes, silent otherwise); its own
    progress bars only in a terminal (elsewhere they are raw escape sequences in a log)."""
    print(f"preparing tfds {builder.name} ({how}; once, into {builder.data_dir})", flush=True)
    if not sys.stdout.isatty():
        tfds.disable_progress_bar()


def _download_files(builder) -> list[str]:
    """The original files tfds downloads for `builder` (those TFDS_MANUAL_DIR must hold)."""
    infos = (builder.url_infos or {}).items()
    return sorted({info.filename or url.rsplit("/", 1)[-1] for url, info in infos})


def _offline_message(builder) -> str:
    files = _download_files(builder)
    where = builder.data_dir
    listing = f" ({', '.join(files)})" if files else ""
    return (
        f"tfds data set {builder.name!r} is not prepared in {where} and there is no network: "
        f"set TFDS_DATA_DIR to prepared data, or put the original files{listing} in a folder "
        "and set TFDS_MANUAL_DIR to it"
    )


# ---------------------------------------------------------------------------------------------
# image folders


def _folder_source(root: pathlib.Path) -> Source:
    """`root/<split>/<label>/<file>`: images (PNG, JPEG, ...), or WAV audio. Audio comes as tfds'
    audio data sets give it (spoken_digit, speech_commands): `audio` int64 [samples] (16-bit PCM
    values, mono), `label`, and `audio/filename` (the file's name, e.g. FSDD's
    `<digit>_<speaker>_<n>.wav`, which names the speaker)."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    splits = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = {split: _files_by_label(root / split) for split in splits}
    files = {split: found for split, found in files.items() if found}
    if not files:
        raise DataError(
            f"no images or audio in {root}: expected {root}/<split>/<label>/<image>.png (or .wav)"
        )
    class_names = sorted({label for found in files.values() for label in found})
    first = next(iter(next(iter(files.values())).values()))[0]
    audio = first.suffix.lower() in AUDIO_SUFFIXES
    label_feature = tfds.features.ClassLabel(names=class_names)
    if audio:
        rate = int(tf.audio.decode_wav(tf.io.read_file(str(first)))[1])
        features = tfds.features.FeaturesDict(
            {
                "audio": tfds.features.Audio(shape=(None,), dtype=np.int64, sample_rate=rate),
                "audio/filename": tfds.features.Text(),
                "label": label_feature,
            }
        )
    else:
        shape = tuple(
            tf.io.decode_image(tf.io.read_file(str(first)), expand_animations=False).shape
        )
        features = tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=shape), "label": label_feature}
        )

    def decode_image(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=shape[-1], expand_animations=False
        )
        if image.shape[:2] != shape[:2]:
            image = tf.cast(tf.round(tf.image.resize(image, shape[:2])), tf.uint8)
        return {"image": tf.ensure_shape(image, shape), "label": label}

    def decode_audio(path, label):
        waveform, found_rate = tf.audio.decode_wav(tf.io.read_file(path), desired_channels=1)
        check = tf.debugging.assert_equal(
            found_rate, rate, message=f"every recording of {root} must be at {rate} Hz"
        )
        with tf.control_dependencies([check]):
            samples = tf.cast(tf.round(waveform[:, 0] * 32768.0), tf.int64)
        name = tf.strings.split(path, os.sep)[-1]
        return {"audio": samples, "audio/filename": name, "label": label}

    def load(split):
        paths, labels = [], []
        for label, found in sorted(files[split].items()):
            paths += [str(p) for p in found]
            labels += [class_names.index(label)] * len(found)
        ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
        decode = decode_audio if audio else decode_image
        return ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)

    kind = "audio" if audio else "image"
    return Source(f"folder:{root}", features, list(files), load, f"{kind} folder {root}")


def _files_by_label(split_dir: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """Label -> its files (images or audio, whichever the folder holds), sorted."""
    found = {}
    suffixes = IMAGE_SUFFIXES | AUDIO_SUFFIXES
    for label_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        kept = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in suffixes)
        if kept:
            found[label_dir.name] = kept
    return found


# ---------------------------------------------------------------------------------------------
# samples bundled with the project (training/samples/)


def _sample_source(name: str) -> Source:
    from training import samples

    if name not in samples.SAMPLES:
        known = ", ".join(f"sample:{n}" for n in samples.SAMPLES)
        raise DataError(f"no bundled sample {name!r} (known: {known})")
    arrays = samples.load(name)
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=arrays["train_images"].shape[1:]),
            "label": tfds.features.ClassLabel(names=[str(n) for n in arrays["class_names"]]),
        }
    )

    def load(split):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].astype("int64")
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    description = samples.SAMPLES[name][1]
    return Source(f"sample:{name}", features, list(samples.SPLITS), load, description)


# ---------------------------------------------------------------------------------------------
# made from digits: scenes (training/scenes.py) and moving digits (training/moving_digits.py)


def _made_from_digits(kind: str, spec: str):
    """`SOURCE?count=N&seed=S` -> (the digit source, count or None, seed); DataError if the
    options or the digits do not fit."""
    inner, _, query = spec.partition("?")
    options = {"count": None, "seed": "0"}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        if key not in options or not value.isdigit():
            raise DataError(
                f"{kind}:{spec}: expected ?count=N&seed=S (whole numbers), not {part!r}"
            )
        options[key] = value
    count = None if options["count"] is None else int(options["count"])
    if count == 0:
        raise DataError(f"{kind}:{spec}: count must be at least 1")
    digits = open_source(inner)
    shape = tuple(digits.features["image"].shape) if "image" in digits.features.keys() else ()
    if shape != (28, 28, 1) or not digits.class_names:
        raise DataError(
            f"{kind} needs 28x28x1 labelled digit images; {inner} has images of shape "
            f"{shape or 'none'}"
        )
    return digits, count, int(options["seed"])


def _digit_arrays(digits: Source, split: str):
    pairs = [(d["image"], d["label"]) for d in digits.load(split).as_numpy_iterator()]
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64)


def _scenes_source(spec: str) -> Source:
    from training import scenes

    digits, count, seed = _made_from_digits("digit_scenes", spec)
    names = digits.class_names
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(scenes.CANVAS, scenes.CANVAS, 1)),
            "segmentation_mask": tfds.features.Image(shape=(scenes.CANVAS, scenes.CANVAS, 1)),
            "objects": tfds.features.Sequence(
                {
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=names),
                }
            ),
            "caption": tfds.features.Text(),
        }
    )
    built = {}

    def load(split):
        if split not in built:
            images, labels = _digit_arrays(digits, split)
            n = count if count is not None else 2 * len(images)
            built[split] = scenes.build(images, labels, n, scenes.split_rng(seed, split), names)
        a = built[split]
        ds = tf.data.Dataset.from_tensor_slices(
            (a["images"], a["masks"], a["boxes"], a["labels"], a["objects"], a["captions"])
        )

        def features_of(image, mask, boxes, labels, k, caption):
            return {
                "image": image,
                "segmentation_mask": mask,
                "objects": {"bbox": boxes[:k], "label": labels[:k]},
                "caption": caption,
            }

        return ds.map(features_of, num_parallel_calls=AUTOTUNE, deterministic=True)

    description = f"scenes of digits from {digits.description or digits.name}"
    return Source(f"digit_scenes:{spec}", features, digits.splits, load, description)


def _moving_digits_source(spec: str) -> Source:
    from training import moving_digits as md

    digits, count, seed = _made_from_digits("moving_digits", spec)
    features = tfds.features.FeaturesDict(
        {
            "video": tfds.features.Video(shape=(md.FRAMES, md.CANVAS, md.CANVAS, 1)),
            "label": tfds.features.ClassLabel(names=list(md.DIRECTIONS)),
        }
    )

    def load(split):
        images, _ = _digit_arrays(digits, split)
        n = count if count is not None else len(images)
        clips = md.clips(len(images), n, md.split_rng(seed, split))
        stack = tf.constant(images)

        def features_of(clip):
            digit = tf.gather(stack, clip["digit"])
            video = md.frames(digit, clip["y"], clip["x"], clip["dy"], clip["dx"])
            return {"video": video, "label": clip["label"]}

        ds = tf.data.Dataset.from_tensor_slices(clips)
        return ds.map(features_of, num_parallel_calls=AUTOTUNE, deterministic=True)

    description = f"moving digits from {digits.description or digits.name}"
    return Source(f"moving_digits:{spec}", features, digits.splits, load, description)


# ---------------------------------------------------------------------------------------------
# a subset of a labelled source: some classes, a few labelled examples of each


def subset(source: Source, classes=None, per_class=0, split="train") -> Source:
    """`source` restricted to `classes` (label indices, relabelled 0..k-1 in the order given; the
    class names follow) in every split, and to the first `per_class` examples of each class, in
    the split's own order, in `split` (the training split: a few labels, the test split whole).
    The same rule picks the same images in every run (and for every tool that states it)."""
    if not classes and not per_class:
        return source
    names = source.class_names
    if not names:
        raise DataError(
            f"data.classes/data.per_class need a data set with class labels; {source.name!r} "
            "has no `label` class feature"
        )
    kept = list(range(len(names))) if not classes else [int(c) for c in classes]
    bad = [c for c in kept if not 0 <= c < len(names)]
    if bad or len(set(kept)) != len(kept):
        raise DataError(
            f"data.classes={classes}: expected distinct class indices in 0..{len(names) - 1} "
            f"({', '.join(names)})"
        )
    if int(per_class) < 0:
        raise DataError(f"data.per_class={per_class}: expected a count >= 0 (0: all)")
    relabel = np.full(len(names), -1, np.int64)
    relabel[kept] = np.arange(len(kept))
    relabel = tf.constant(relabel)

    def new_label(ex):
        return tf.gather(relabel, tf.cast(ex["label"], tf.int64))

    def only_kept(ds):
        ds = ds.filter(lambda ex: new_label(ex) >= 0)
        return ds.map(lambda ex: {**ex, "label": new_label(ex)})

    def first_of_each(ds, n):
        def count(seen, ex):
            label = ex["label"]
            return tf.tensor_scatter_nd_add(seen, [[label]], [1]), (seen[label] < n, ex)

        def kept_example(keep, ex):
            return keep

        def example(keep, ex):
            return ex

        ds = ds.scan(tf.zeros([len(kept)], tf.int64), count)
        return ds.filter(kept_example).map(example)

    def load(part):
        ds = only_kept(source._load(part))
        return first_of_each(ds, int(per_class)) if per_class and part == split else ds

    features = tfds.features.FeaturesDict(
        {
            **{k: source.features[k] for k in source.features.keys()},
            "label": tfds.features.ClassLabel(names=[names[c] for c in kept]),
        }
    )
    what = [f"classes {', '.join(names[c] for c in kept)}"] if classes else []
    what += [f"the first {per_class} of each class in {split}"] if per_class else []
    return dataclasses.replace(
        source,
        name=f"{source.name} ({'; '.join(what)})",
        features=features,
        _load=load,
    )


# ---------------------------------------------------------------------------------------------
# a group held out: every example of one speaker (say) to test on, the others to train on

HELD_OUT, KEPT = "held_out", "kept"


def groups_of(source: Source, key: str, pattern: str) -> dict[str, str]:
    """Each value of the string feature `key` in any split -> its group, `pattern`'s first group
    (FSDD's speaker: `^[^_]+_([^_]+)_` over `audio/filename`); values it does not match are left
    out."""
    import re

    regex = re.compile(pattern)
    found = {}
    for split in source.splits:
        for value in source.load(split).map(lambda ex: ex[key]).as_numpy_iterator():
            match = regex.search(value.decode())
            if match:
                found[value.decode()] = match.group(1)
    return found


def hold_out(source: Source, key: str, pattern: str, group: str) -> Source:
    """`source` with two splits made from all of its own: `held_out`, the examples whose group
    (`pattern`'s first group over the string feature `key`) is `group`, and `kept`, the others
    (examples the pattern does not match are kept). Leave-one-speaker-out evaluation trains on
    `kept` and tests on `held_out`."""
    if key not in source.features.keys():
        raise DataError(f"data.hold_out: {source.name!r} has no feature {key!r}")
    groups = groups_of(source, key, pattern)
    if group not in groups.values():
        raise DataError(
            f"data.hold_out: no group {group!r} in {source.name!r} by {pattern!r} over {key!r} "
            f"(groups: {', '.join(sorted(set(groups.values()))) or 'none'})"
        )
    held = sorted(value for value, g in groups.items() if g == group)

    def load(split):
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(held, tf.ones([len(held)], tf.int64)), 0
        )
        ds = source.load("+".join(source.splits))
        want = 1 if split == HELD_OUT else 0
        return ds.filter(lambda ex: tf.equal(table.lookup(ex[key]), want))

    return dataclasses.replace(
        source,
        name=f"{source.name} (group {group} held out)",
        splits=[KEPT, HELD_OUT],
        _load=load,
    )


# ---------------------------------------------------------------------------------------------
# pipelines


def count(ds: tf.data.Dataset) -> int:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(tf.constant(0, tf.int64), lambda c, _: c + 1))


def prepared(source: Source, split: str, inputs, cache: bool) -> tf.data.Dataset:
    """The deterministic part of a split: decoded, turned into model inputs by the task's
    `inputs(ds)`, cached in memory if asked."""
    ds = inputs(source.load(split))
    return ds.cache() if cache else ds


def train_batches(ds, *, batch_size, epoch, seed, shuffle_buffer, augment=None, skip=0):
    """One epoch of training batches: a shuffle fixed by (seed, epoch), so a resumed run sees the
    same order; augmentation gets a per-example stateless seed for the same reason."""
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed + epoch, reshuffle_each_iteration=False)
    if augment is not None:
        ds = ds.enumerate().map(
            lambda i, example: augment(
                *example, seed=tf.stack([tf.cast(seed + epoch, tf.int64), i])
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    ds = ds.batch(batch_size, drop_remainder=True)
    if skip:
        ds = ds.skip(skip)
    return _with_options(ds.prefetch(AUTOTUNE))


def eval_batches(ds, *, batch_size):
    return _with_options(ds.batch(batch_size).prefetch(AUTOTUNE))


def _with_options(ds):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)
