"""Recommendation recipes: SASRec (next item), two towers (retrieval) and DCN-v2 (ranking), on a
generated interaction log offline (`interaction_logs`, training/interactions.py: clusters of
users and items, a Markov chain over items) and on MovieLens for users (tfds downloads it).
Leave-last-out: each user's last item is the test; Recall@10, NDCG@10 and MRR over the whole
item table against popularity and random, in TensorBoard (training/tasks/recommendation.py).

Measured 2026-12-02 on the default generated log (1,000 users, 500 items; the 1,000 last items;
a 2-core CPU shared with other jobs; user+sys CPU seconds, the export included):

    recipe                Recall@10  NDCG@10  MRR    CPU s
    sasrec-generated      0.729      0.575    0.531   98  (40 epochs, 600 steps)
    two_tower-generated   0.436      0.242    0.200   29  (10 epochs)
    dcn-generated         0.393      0.230    0.194   74  (5 epochs)
    popularity            0.127      0.069    0.063
    random                0.02       0.01     0.016

SASRec finds 5.7x popularity's Recall@10 (the issue asks 3x): the next item follows the last one.
The two towers and DCN see users, not order, so they find the users' clusters (3.4x and 3.1x).
MovieLens 1M: not run here (a download); the SASRec paper's HR@10 is 0.82 against 100 sampled
negatives, where this task ranks against the whole table (a lower figure for the same model).
"""

from training.recipes import add

GENERATED = {"dataset": "interaction_logs", "train_split": "train", "validation_split": "test"}
SAVED_MODEL = {"formats": ["saved_model"]}

add(
    "sasrec-generated",
    description="SASRec (2 blocks, width 64) on the generated log: the next item from the "
    "last 50; full softmax over the items.",
    model={"name": "sasrec", "overrides": {"embed_dim": 64, "blocks": 2, "dropout": 0.2}},
    data=GENERATED,
    task={"name": "sequential_recommendation", "max_length": 50, "top_k": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 40, "batch_size": 64, "eval_batch_size": 256},
    export=SAVED_MODEL,
)
add(
    "two_tower-generated",
    description="Two towers on the generated log: in-batch softmax, temperature 0.05, logQ "
    "correction.",
    model={"name": "two_tower"},
    data=GENERATED,
    task={"name": "retrieval", "temperature": 0.05, "top_k": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 10, "batch_size": 256, "eval_batch_size": 256},
    export=SAVED_MODEL,
)
add(
    "dcn-generated",
    description="DCN-v2 (2 cross layers, MLP 128-64) on the generated log: interactions against "
    "4 random items each.",
    model={"name": "dcn"},
    data=GENERATED,
    task={"name": "ranking", "negatives": 4, "top_k": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 5, "batch_size": 256, "eval_batch_size": 64},
    export=SAVED_MODEL,
)
add(
    "sasrec-movielens-1m",
    description="SASRec on MovieLens 1M (the paper's settings: the last 200 items, width 50, 2 "
    "blocks, 1 head, dropout 0.2). The paper's HR@10 is 0.82 against 100 sampled negatives; "
    "the task ranks against all ~3.7k items, a harder measure (a GPU run).",
    model={"name": "sasrec", "overrides": {"embed_dim": 50, "blocks": 2, "dropout": 0.2}},
    data={"dataset": "movielens/1m-ratings", "train_split": "train", "validation_split": "test"},
    task={"name": "sequential_recommendation", "max_length": 200, "top_k": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 200, "batch_size": 128, "eval_batch_size": 256},
    export=SAVED_MODEL,
)
add(
    "two_tower-movielens-100k",
    description="Two towers on MovieLens 100K (the TFRS retrieval tutorial's data set).",
    model={"name": "two_tower"},
    data={"dataset": "movielens/100k-ratings", "train_split": "train", "validation_split": "test"},
    task={"name": "retrieval", "temperature": 0.05, "top_k": 10},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 20, "batch_size": 256, "eval_batch_size": 256},
    export=SAVED_MODEL,
)
