"""Two towers for retrieval (Yi et al. 2019, "Sampling-bias-corrected neural modeling for large
corpus item recommendations"): a user tower and an item tower map ids to one embedding space,
where a user's score for an item is the cosine of their embeddings.

Each tower: an id embedding, `hidden` ReLU layers, a linear projection to `output_dim`, then L2
normalization. Inputs `user_id` and `item_id` int32 [N] (ids from 1, 0 unknown); outputs
`user_embedding` and `item_embedding` [N,D] (unit length) and `score` [N] (their cosine). The
training task scores every user of a batch against every item of the batch (in-batch softmax,
temperature, logQ correction: training/tasks/recommendation.py); serving scores a user against
the whole item table.
"""

import keras
from keras import layers

from zoo.registry import register

CITATION = (
    "Yi et al. 2019, Sampling-Bias-Corrected Neural Modeling for Large Corpus Item "
    "Recommendations, RecSys 2019; Covington et al. 2016 (YouTube DNN)"
)


def _tower(ids, vocabulary, embed_dim, hidden, output_dim, dropout, name):
    x = layers.Embedding(vocabulary, embed_dim, name=f"{name}_id_embedding")(ids)
    for i, width in enumerate(hidden, 1):
        x = layers.Dense(width, activation="relu", name=f"{name}_dense{i}")(x)
        x = layers.Dropout(dropout, name=f"{name}_dropout{i}")(x)
    x = layers.Dense(output_dim, name=f"{name}_projection")(x)
    return layers.UnitNormalization(axis=-1, name=f"{name}_normalize")(x)


@register(
    "two_tower",
    task="retrieval",
    input_shape=None,
    citation=CITATION,
    tiny={"num_users": 20, "num_items": 50, "embed_dim": 8, "hidden": (16,), "output_dim": 8},
)
def two_tower(
    num_users=1000,
    num_items=1000,
    embed_dim=64,
    hidden=(128,),
    output_dim=64,
    dropout=0.0,
    name="two_tower",
):
    """Two-tower retrieval model: user and item ids -> unit embeddings and their cosine."""
    user_id = keras.Input(shape=(), dtype="int32", name="user_id")
    item_id = keras.Input(shape=(), dtype="int32", name="item_id")
    user = _tower(user_id, num_users + 1, embed_dim, hidden, output_dim, dropout, "user")
    item = _tower(item_id, num_items + 1, embed_dim, hidden, output_dim, dropout, "item")
    user = layers.Activation("linear", dtype="float32", name="user_embedding")(user)
    item = layers.Activation("linear", dtype="float32", name="item_embedding")(item)
    score = layers.Dot(axes=-1, name="score")([user, item])
    score = layers.Reshape((), name="score_flat")(score)
    outputs = {"user_embedding": user, "item_embedding": item, "score": score}
    return keras.Model({"user_id": user_id, "item_id": item_id}, outputs, name=name)
