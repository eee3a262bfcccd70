"""DCN-v2: the deep & cross network for ranking (Wang et al. 2021), scoring (user, item) pairs.

The user's and the item's id embeddings are concatenated into x0 [N,2E]; `cross_layers` cross
layers (x_{l+1} = x0 * (W x_l + b) + x_l, full-rank W or the paper's low-rank U V^T with
`projection_dim`: keras-rs' `FeatureCross`, the Keras 3 layer of the TFRS tutorial) model
explicit feature interactions, then a ReLU MLP (the "stacked" structure) and one logit. Inputs
`user_id` and `item_id` int32 [N]; output `logit` [N] (float32; sigmoid = the probability that the
user interacts with the item). Serving ranks a user's items by scoring every one.
"""

import keras
import keras_rs
from keras import layers

from zoo.registry import register

CITATION = (
    "Wang et al. 2021, DCN V2: Improved Deep & Cross Network and Practical Lessons for "
    "Web-scale Learning to Rank Systems, WWW 2021, arXiv:2008.13535"
)


@register(
    "dcn",
    task="ranking",
    input_shape=None,
    citation=CITATION,
    tiny={"num_users": 20, "num_items": 50, "embed_dim": 8, "cross_layers": 1, "hidden": (16,)},
)
def dcn(
    num_users=1000,
    num_items=1000,
    embed_dim=32,
    cross_layers=2,
    projection_dim=None,
    hidden=(128, 64),
    dropout=0.0,
    name="dcn",
):
    """DCN-v2 ranking model (stacked): id embeddings -> cross layers -> MLP -> logit."""
    user_id = keras.Input(shape=(), dtype="int32", name="user_id")
    item_id = keras.Input(shape=(), dtype="int32", name="item_id")
    user = layers.Embedding(num_users + 1, embed_dim, name="user_embedding")(user_id)
    item = layers.Embedding(num_items + 1, embed_dim, name="item_embedding")(item_id)
    x0 = layers.Concatenate(name="features")([user, item])
    x = x0
    for i in range(1, cross_layers + 1):
        x = keras_rs.layers.FeatureCross(projection_dim=projection_dim, name=f"cross{i}")(x0, x)
    for i, width in enumerate(hidden, 1):
        x = layers.Dense(width, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = layers.Dense(1, dtype="float32", name="logit_dense")(x)
    logit = layers.Reshape((), name="logit")(x)
    return keras.Model({"user_id": user_id, "item_id": item_id}, logit, name=name)
