"""Recommendation tasks: the next item from a history (SASRec), retrieval (two towers) and ranking
(DCN-v2), all on an interaction log evaluated leave-last-out.

The source is a log with one record per interaction (tfds `movielens/*-ratings`: `user_id`,
`movie_id`, `timestamp`; the generated `interaction_logs`: `user_id`, `item_id`, `timestamp`).
The task reads it whole, orders each user's items by time and makes two splits of its own (the
source's `data.train_split`/`validation_split` name these): `train`, every user's items but the
last, and `test`, the last item of each user to find from the rest (leave-last-out, as in the
SASRec paper's evaluation). Ids are the log's own when they are whole numbers (MovieLens' are),
so an exported model takes the ids a user knows; otherwise a vocabulary numbers them from 1 (0 is
padding: no item, no user). Users with fewer than `min_interactions` are left out.

Metrics on `test`, over the full item table (no sampled negatives) with the user's own earlier
items excluded: Recall@k (= HR@k: one item to find), NDCG@k and MRR, k = `top_k` (default 10),
beside the same metrics of two baselines on the same users: `popularity_*` (the most consumed
training items first) and `random_*`. All are sums over users divided by their count (the loop's
contract), so they add up across replicas, and TensorBoard shows them per epoch.

- `sequential_recommendation` (SASRec): each training user is one sequence, inputs its items but
  the last, targets the items one step on, left-padded/cropped to `max_length`; the loss is the
  full softmax cross-entropy over the item table at every real position (the paper samples one
  negative for a binary loss; the full softmax is cheap at these table sizes and learns faster,
  as later work on SASRec found).
- `retrieval` (two towers): the training interactions as (user, item) pairs; in-batch softmax
  over the batch's items with the temperature `temperature`, the logQ correction (each logit minus
  the log of its item's share of the training interactions, keras-rs'
  `SamplingProbabilityCorrection`, Yi et al. 2019) and accidental hits (the same item twice in a
  batch) removed (keras-rs' `RemoveAccidentalHits`).
- `ranking` (DCN-v2): the training interactions as positives and `negatives` random items per
  positive (drawn again each epoch), a binary cross-entropy; at test every item is scored.

Metrics are our own few lines rather than keras-rs' metric objects: the loop sums per-replica
tensors across replicas, which stateful Keras metrics do not fit.
"""

import dataclasses
import math

import keras_rs
import numpy as np
import tensorflow as tf

from training import (
    data,
    interactions,  # noqa: F401  (registers the generated logs with tfds)
)
from training.tasks.base import Task, apply_gradients, regularization_loss


def _ids(values) -> tuple[np.ndarray, list | None]:
    """Log ids -> int64 ids from 1, and the vocabulary (None when the ids are whole numbers)."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        ids = values.astype(np.int64)
    else:
        try:
            ids = np.array([int(v) for v in values], np.int64)
        except ValueError:
            names, ids = np.unique(values, return_inverse=True)
            return ids.astype(np.int64) + 1, [
                n.decode() if isinstance(n, bytes) else str(n) for n in names
            ]
    if ids.size and ids.min() < 1:
        ids = ids - ids.min() + 1  # 0 is padding
    return ids, None


@dataclasses.dataclass
class Log:
    """A log ordered per user: `sequences[u]` the items of user `users[u]` by time."""

    users: np.ndarray
    sequences: list
    num_users: int
    num_items: int
    item_names: list | None

    @classmethod
    def read(cls, source, split, user_key, item_key, time_key, min_interactions):
        keys = source.features.keys()
        missing = [k for k in (user_key, item_key, time_key) if k not in keys]
        if missing:
            raise data.DataError(
                f"{source.name} has no {', '.join(map(repr, missing))}: a recommendation task "
                f"needs an interaction log (features {', '.join(keys)}); set task.user_key, "
                "task.item_key, task.time_key"
            )
        ds = source.load(split).map(lambda ex: (ex[user_key], ex[item_key], ex[time_key]))
        parts = list(ds.batch(65536).as_numpy_iterator())
        if not parts:
            raise data.DataError(f"{source.name} split {split!r} is empty")
        users, items, times = (np.concatenate([p[i] for p in parts]) for i in range(3))
        users, _ = _ids(users)
        items, item_names = _ids(items)
        order = np.lexsort((np.arange(len(users)), times, users))
        users, items = users[order], items[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        kept = [(users[s], items[s:e]) for s, e in zip(starts, ends) if e - s >= min_interactions]
        if not kept:
            raise data.DataError(
                f"{source.name}: no user has {min_interactions} interactions "
                "(task.min_interactions)"
            )
        return cls(
            users=np.array([u for u, _ in kept], np.int64),
            sequences=[s for _, s in kept],
            num_users=int(users.max()),
            num_items=int(items.max()),
            item_names=item_names,
        )


def _i32(x):
    return tf.cast(x, tf.int32)


def _pad_left(sequence, length):
    out = np.zeros(length, np.int64)
    tail = np.asarray(sequence[-length:], np.int64)
    if len(tail):
        out[length - len(tail) :] = tail
    return out


def _padded(rows, length=None):
    length = length or max(1, max(len(r) for r in rows))
    out = np.zeros((len(rows), length), np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:length]
    return out


def rank_metrics(scores, target, seen, k, prefix=""):
    """Sums over a batch of Recall@k, NDCG@k and MRR of `target` [B] under `scores` [B,V+1], items
    in `seen` [B,L] (0 pads) and index 0 excluded; ties count in the target's favour only where
    scores are equal, which the baselines avoid by construction."""
    scores = tf.cast(scores, tf.float32)
    batch, width = tf.shape(scores)[0], tf.shape(scores)[1]
    seen = tf.cast(seen, tf.int32)
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(seen))
    indices = tf.reshape(tf.stack([rows, seen], -1), [-1, 2])
    excluded = tf.scatter_nd(indices, tf.ones([tf.shape(indices)[0]], tf.int32), [batch, width])
    target = tf.cast(target, tf.int32)
    is_target = tf.one_hot(target, width, on_value=True, off_value=False)
    padding = tf.one_hot(tf.zeros([batch], tf.int32), width, on_value=True, off_value=False)
    excluded = tf.logical_and(tf.logical_or(excluded > 0, padding), tf.logical_not(is_target))
    target_score = tf.gather(scores, target, batch_dims=1)
    above = tf.logical_and(scores > target_score[:, None], tf.logical_not(excluded))
    rank = tf.reduce_sum(tf.cast(above, tf.float32), axis=1)  # 0: first
    hit = tf.cast(rank < k, tf.float32)
    return {
        f"{prefix}recall_at_{k}": tf.reduce_sum(hit),
        f"{prefix}ndcg_at_{k}": tf.reduce_sum(hit / (tf.math.log(rank + 2.0) / math.log(2.0))),
        f"{prefix}mrr": tf.reduce_sum(1.0 / (rank + 1.0)),
    }


class Recommendation(Task):
    """What the three tasks share: the log, the leave-last-out splits, the metrics."""

    name = "base"  # not registered itself

    def __init__(self, config, source):
        super().__init__(config, source)
        keys = source.features.keys()
        item_key = config.get("item_key") or ("item_id" if "item_id" in keys else "movie_id")
        self.top_k = int(config.get("top_k", 10))
        self.log = Log.read(
            source,
            config.get("log_split", "train"),
            config.get("user_key", "user_id"),
            item_key,
            config.get("time_key", "timestamp"),
            int(config.get("min_interactions", 3)),
        )
        self.num_items, self.num_users = self.log.num_items, self.log.num_users
        train = [s[:-1] for s in self.log.sequences]
        counts = np.bincount(np.concatenate(train), minlength=self.num_items + 1).astype(np.float64)
        self.item_counts = counts
        # popularity with a fixed tie-break (never in the target's favour by accident)
        jitter = np.random.default_rng(0).uniform(0.0, 0.5, counts.shape)
        self.popularity = tf.constant((counts + jitter).astype(np.float32))
        self.splits = {"train": self.train_elements(), "test": self.test_elements()}
        log_source = source

        def load(split):
            return tf.data.Dataset.from_tensor_slices(self.splits[split])

        self.source = dataclasses.replace(
            log_source,
            name=f"{log_source.name} (leave-last-out)",
            splits=list(self.splits),
            _load=load,
        )

    # elements per split, as dicts of arrays (the subclasses)
    def train_elements(self) -> dict:
        raise NotImplementedError

    def test_elements(self) -> dict:
        return {
            "user_id": self.log.users,
            "target": np.array([s[-1] for s in self.log.sequences], np.int64),
            "seen": _padded([s[:-1] for s in self.log.sequences]),
        }

    def preprocess(self, example):
        if "target" in example:
            return (_i32(example["user_id"]), example["target"], example["seen"])
        return self.train_element(example)

    def eval_step(self, model, batch):
        user, target, seen = batch
        scores = self.scores(model, batch)
        sums = rank_metrics(scores, target, seen, self.top_k)
        size = tf.shape(target)[0]
        popular = tf.broadcast_to(self.popularity[None, :], tf.shape(scores))
        sums.update(rank_metrics(popular, target, seen, self.top_k, "popularity_"))
        noise = tf.random.stateless_uniform(
            tf.shape(scores), seed=tf.stack([tf.reduce_sum(tf.cast(user, tf.int64)), 7])
        )
        sums.update(rank_metrics(noise, target, seen, self.top_k, "random_"))
        sums["count"] = tf.cast(size, tf.float32)
        return sums

    def scores(self, model, batch):
        """[B, num_items+1] scores of every item for each test user."""
        raise NotImplementedError

    def log_epoch(self, model, sample, totals, step):
        """A table in TensorBoard's text tab: test users' last items, the item to find, and the
        top k (seen items left out; the item to find in bold where it is among them)."""
        batch = tuple(tf.constant(x) for x in sample)
        scores = self.scores(model, batch).numpy()
        seen, targets = sample[2], sample[1]
        rows = [f"| user | last items | to find | top {self.top_k} |", "|---|---|---|---|"]
        for i in range(min(len(targets), 10)):
            row = scores[i].copy()
            row[0] = -np.inf
            row[seen[i][seen[i] > 0]] = -np.inf
            top = np.argsort(-row, kind="stable")[: self.top_k]
            shown = [f"**{t}**" if t == targets[i] else str(t) for t in top]
            last = [int(x) for x in seen[i][seen[i] > 0][-5:]]
            user = int(sample[0][i]) if np.ndim(sample[0][i]) == 0 else "-"  # SASRec: a history
            rows.append(f"| {user} | {last} | {int(targets[i])} | {' '.join(shown)} |")
        tf.summary.text("recommendations", "\n".join(rows), step=step)

    def seen_table(self) -> list:
        """Per user id, the training items (what `recommend` leaves out)."""
        table = [[] for _ in range(self.num_users + 1)]
        for user, sequence in zip(self.log.users, self.log.sequences):
            table[int(user)] = [int(i) for i in sequence[:-1]]
        return table

    def export_info(self):
        info = {
            "num_items": self.num_items,
            "num_users": self.num_users,
            "top_k": self.top_k,
        }
        if self.log.item_names:
            info["item_names"] = self.log.item_names
        return info


class SequentialRecommendation(Recommendation):
    name = "sequential_recommendation"

    def __init__(self, config, source):
        self.max_length = int(config.get("max_length", 50))
        super().__init__(config, source)

    def model_overrides(self):
        return {"input_shape": (self.max_length,), "num_items": self.num_items}

    def train_elements(self):
        rows = [s[:-1] for s in self.log.sequences]
        return {
            "inputs": np.stack([_pad_left(r[:-1], self.max_length) for r in rows]),
            "targets": np.stack([_pad_left(r[1:], self.max_length) for r in rows]),
        }

    def test_elements(self):
        elements = super().test_elements()
        elements["history"] = np.stack(
            [_pad_left(s[:-1], self.max_length) for s in self.log.sequences]
        )
        return elements

    def preprocess(self, example):
        if "target" in example:
            return (_i32(example["history"]), example["target"], example["seen"])
        return (_i32(example["inputs"]), example["targets"])

    def train_step(self, model, optimizers, batch, global_batch_size):
        inputs, targets = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            logits = tf.cast(model(inputs, training=True), tf.float32)
            mask = tf.cast(targets > 0, tf.float32)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits) * mask
            positions = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
            per_user = tf.reduce_sum(ce, axis=1) / positions
            loss = tf.reduce_sum(per_user) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        return {"loss": tf.reduce_sum(per_user), "count": tf.cast(tf.shape(targets)[0], tf.float32)}

    def eval_step(self, model, batch):
        history, target, seen = batch
        return super().eval_step(model, (history, target, seen))

    def scores(self, model, batch):
        history = batch[0]
        return tf.cast(model(history, training=False), tf.float32)[:, -1, :]

    def export_info(self):
        return {**super().export_info(), "max_length": self.max_length}


class _UserItem(Recommendation):
    """Two towers and DCN: (user, item) pairs in, every item scored per user at test."""

    def model_overrides(self):
        return {"num_users": self.num_users, "num_items": self.num_items}

    def pairs(self):
        users = np.concatenate(
            [np.full(len(s) - 1, u, np.int64) for u, s in zip(self.log.users, self.log.sequences)]
        )
        items = np.concatenate([s[:-1] for s in self.log.sequences])
        return users, items

    def all_items(self, model, user):
        raise NotImplementedError

    def export_info(self):
        return {**super().export_info(), "seen": self.seen_table()}


class Retrieval(_UserItem):
    name = "retrieval"

    def __init__(self, config, source):
        self.temperature = float(config.get("temperature", 0.05))
        super().__init__(config, source)
        share = self.item_counts / max(self.item_counts.sum(), 1.0)
        self.sampling = tf.constant(np.maximum(share, 1e-12).astype(np.float32))
        self.correction = keras_rs.layers.SamplingProbabilityCorrection()
        self.accidental = keras_rs.layers.RemoveAccidentalHits()

    def train_elements(self):
        users, items = self.pairs()
        return {"user_id": users, "item_id": items}

    def train_element(self, example):
        return (_i32(example["user_id"]), _i32(example["item_id"]))

    def train_step(self, model, optimizers, batch, global_batch_size):
        user, item = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            out = model({"user_id": user, "item_id": item}, training=True)
            logits = tf.matmul(out["user_embedding"], out["item_embedding"], transpose_b=True)
            logits = logits / self.temperature
            logits = self.correction(logits, tf.gather(self.sampling, item))
            labels = tf.eye(tf.shape(item)[0])
            logits = self.accidental(logits, labels, item)
            per_example = tf.nn.softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        return {
            "loss": tf.reduce_sum(per_example),
            "count": tf.cast(tf.shape(item)[0], tf.float32),
        }

    def scores(self, model, batch):
        user = tf.cast(batch[0], tf.int32)
        items = tf.range(self.num_items + 1, dtype=tf.int32)
        users = model({"user_id": user, "item_id": tf.zeros_like(user)}, training=False)
        table = model({"user_id": tf.zeros_like(items), "item_id": items}, training=False)
        return tf.matmul(users["user_embedding"], table["item_embedding"], transpose_b=True)

    def export_info(self):
        return {**super().export_info(), "temperature": self.temperature}


class Ranking(_UserItem):
    name = "ranking"

    def __init__(self, config, source):
        self.negatives = int(config.get("negatives", 4))
        super().__init__(config, source)

    def train_elements(self):
        users, items = self.pairs()
        n = 1 + self.negatives
        return {
            "user_id": np.repeat(users, n),
            "item_id": np.repeat(items, n),  # the negatives' items are drawn in `augment`
            "label": np.tile(np.r_[1.0, np.zeros(self.negatives)], len(users)).astype(np.float32),
        }

    def train_element(self, example):
        return (_i32(example["user_id"]), _i32(example["item_id"]), example["label"])

    @property
    def augment(self):
        def augment(user, item, label, seed):
            drawn = tf.random.stateless_uniform(
                [], seed=seed, minval=1, maxval=self.num_items + 1, dtype=tf.int32
            )
            return user, tf.where(label > 0, item, tf.cast(drawn, item.dtype)), label

        return augment

    def train_step(self, model, optimizers, batch, global_batch_size):
        user, item, label = batch
        optimizer = optimizers["model"]
        with tf.GradientTape() as tape:
            logit = tf.cast(model({"user_id": user, "item_id": item}, training=True), tf.float32)
            per_example = tf.nn.sigmoid_cross_entropy_with_logits(label, logit)
            loss = tf.reduce_sum(per_example) / global_batch_size + regularization_loss(model)
        apply_gradients(optimizer, tape, loss, model.trainable_variables)
        correct = tf.equal(tf.cast(logit > 0, tf.float32), label)
        return {
            "loss": tf.reduce_sum(per_example),
            "accuracy": tf.reduce_sum(tf.cast(correct, tf.float32)),
            "count": tf.cast(tf.shape(label)[0], tf.float32),
        }

    def scores(self, model, batch):
        user = tf.cast(batch[0], tf.int32)
        width = self.num_items + 1
        users = tf.repeat(user, width)
        items = tf.tile(tf.range(width, dtype=tf.int32), [tf.shape(user)[0]])
        logit = model({"user_id": users, "item_id": items}, training=False)
        return tf.reshape(tf.cast(logit, tf.float32), [-1, width])
