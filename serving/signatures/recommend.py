"""Signatures of recommenders: `recommend` answers with the top k item ids and their scores, the
items a user has already seen left out, with the item index inside the graph.

- `sequential_recommendation` (SASRec): a history of item ids in (any length; zeros are dropped,
  the last `max_length` items kept); its own items are the ones left out.
- `retrieval` (two towers): a user id in; the item tower's embeddings of the whole item table
  were computed at export and are a constant of the graph (the index), scored by one matrix
  product; the user's training items (export_info `seen`) are left out.
- `ranking` (DCN-v2): a user id in; every item is scored by the network (one batch of
  num_items+1 pairs per user), the user's training items left out.

The top k is brute force (`tf.math.top_k` over every item): exact, and fast enough for tables of
thousands to a few hundred thousand items on a CPU. An approximate index goes where the two-tower
signature scores its item table (`_retrieval`'s `table` matmul and top_k): ScaNN
(`scann.scann_ops.builder(table, k, "dot_product")...build()`, as TFRS' `layers.factorized_top_k.
ScaNN`) would be built from the same exported table, and its searcher saved in the SavedModel;
that SavedModel then needs ScaNN's custom ops in the server (TF Serving built with them), which is
why the zoo keeps the exact index by default. A user id beyond the trained ones, or an item id
beyond the table, is refused (InvalidArgument: a 400 from the server).
"""

import numpy as np
import tensorflow as tf

import zoo.recommend  # noqa: F401  (registers the models' layers for loading)
from serving.signatures import signature_builder

MASKED = -1e30  # the score of an excluded item (finite: JSON has no -inf)


def _exclude(scores, seen):
    """`scores` [N,V+1] with index 0 and the items in `seen` [N,L] (0 pads) set to MASKED."""
    n, width = tf.shape(scores)[0], tf.shape(scores)[1]
    seen = tf.cast(seen, tf.int32)
    rows = tf.broadcast_to(tf.range(n)[:, None], tf.shape(seen))
    indices = tf.reshape(tf.stack([rows, seen], -1), [-1, 2])
    hits = tf.scatter_nd(indices, tf.ones([tf.shape(indices)[0]], tf.int32), [n, width])
    hits = tf.logical_or(hits > 0, tf.one_hot(tf.zeros([n], tf.int32), width) > 0)
    return tf.where(hits, tf.constant(MASKED, scores.dtype), scores)


def _top(scores, k):
    scores, ids = tf.math.top_k(scores, k=k)
    return {"item_ids": tf.cast(ids, tf.int64), "scores": scores}


def _check_ids(ids, highest, what):
    return [
        tf.debugging.assert_non_negative(ids, message=f"{what} must be >= 0"),
        tf.debugging.assert_less_equal(
            ids, tf.constant(highest, ids.dtype), message=f"{what} must be at most {highest}"
        ),
    ]


def _seen_table(info):
    seen = info.get("seen") or [[]]
    width = max(1, max(len(s) for s in seen))
    table = np.zeros((len(seen), width), np.int32)
    for user, items in enumerate(seen):
        table[user, : len(items)] = items
    return tf.constant(table)


@signature_builder("sequential_recommendation")
def _sequential(archive, model, info):
    """serving_default: history int32 [N,T] -> scores [N,V+1] for the next item (TFLite's).
    recommend: history int32 [N,L] -> item_ids int64 [N,k], scores float32 [N,k]."""
    length, k, num_items = int(info["max_length"]), int(info["top_k"]), int(info["num_items"])

    def serve(history):
        logits = model(history, training=False)
        return {"scores": tf.cast(logits[:, -1, :], tf.float32)}

    def recommend(history):
        history = tf.cast(history, tf.int32)
        with tf.control_dependencies(_check_ids(history, num_items, "item ids")):
            n, size = tf.shape(history)[0], tf.shape(history)[1]
        key = tf.where(history > 0, tf.range(size)[None, :], -1)
        compact = tf.gather(history, tf.argsort(key, axis=1, stable=True), batch_dims=1)
        compact = tf.concat([tf.zeros([n, length], tf.int32), compact], 1)[:, -length:]
        scores = serve(compact)["scores"]
        return _top(_exclude(scores, history), k)

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, length], tf.int32, name="history")],
    )
    archive.add_endpoint(
        "recommend",
        recommend,
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="history")],
    )
    return {"history": np.ones([1, length], np.int32)}


def _pair_specs():
    return [
        tf.TensorSpec([None], tf.int32, name="user_id"),
        tf.TensorSpec([None], tf.int32, name="item_id"),
    ]


def _user_recommend(info, score_all):
    k, num_users = int(info["top_k"]), int(info["num_users"])
    seen = _seen_table(info)

    def recommend(user_id):
        with tf.control_dependencies(_check_ids(user_id, num_users, "user ids")):
            user_id = tf.identity(user_id)
        return _top(_exclude(score_all(user_id), tf.gather(seen, user_id)), k)

    return recommend


@signature_builder("retrieval")
def _retrieval(archive, model, info):
    """serving_default: user_id, item_id int32 [N] -> user_embedding, item_embedding, score.
    recommend: user_id int32 [N] -> item_ids int64 [N,k], scores float32 [N,k]."""
    items = np.arange(int(info["num_items"]) + 1, dtype=np.int32)
    out = model({"user_id": np.zeros_like(items), "item_id": items}, training=False)
    table = tf.constant(np.asarray(out["item_embedding"], np.float32))  # the index, [V+1, D]

    def serve(user_id, item_id):
        out = model({"user_id": user_id, "item_id": item_id}, training=False)
        return {name: tf.cast(value, tf.float32) for name, value in out.items()}

    def score_all(user_id):
        user = model({"user_id": user_id, "item_id": tf.zeros_like(user_id)}, training=False)
        return tf.matmul(tf.cast(user["user_embedding"], tf.float32), table, transpose_b=True)

    archive.add_endpoint("serving_default", serve, input_signature=_pair_specs())
    archive.add_endpoint(
        "recommend",
        _user_recommend(info, score_all),
        input_signature=[tf.TensorSpec([None], tf.int32, name="user_id")],
    )
    return {"user_id": np.ones([1], np.int32), "item_id": np.ones([1], np.int32)}


@signature_builder("ranking")
def _ranking(archive, model, info):
    """serving_default: user_id, item_id int32 [N] -> probability float32 [N].
    recommend: user_id int32 [N] -> item_ids int64 [N,k], scores float32 [N,k] (probabilities)."""
    width = int(info["num_items"]) + 1

    def serve(user_id, item_id):
        logit = model({"user_id": user_id, "item_id": item_id}, training=False)
        return {"probability": tf.sigmoid(tf.cast(logit, tf.float32))}

    def score_all(user_id):
        users = tf.repeat(user_id, width)
        items = tf.tile(tf.range(width, dtype=tf.int32), [tf.shape(user_id)[0]])
        return tf.reshape(serve(users, items)["probability"], [-1, width])

    archive.add_endpoint("serving_default", serve, input_signature=_pair_specs())
    archive.add_endpoint(
        "recommend",
        _user_recommend(info, score_all),
        input_signature=[tf.TensorSpec([None], tf.int32, name="user_id")],
    )
    return {"user_id": np.ones([1], np.int32), "item_id": np.ones([1], np.int32)}
