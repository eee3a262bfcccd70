"""Text and sequence recipes: a text classifier, two character language models, a translator and a
small BERT. Vocabularies are built from each data set's training split when a run starts."""

from training.recipes import add

SHAKESPEARE = {"dataset": "tiny_shakespeare", "validation_split": "validation"}

add(
    "lstm-imdb",
    description="Bidirectional LSTM sentiment classifier (keras-io bidirectional_lstm_imdb) on "
    "IMDB reviews; the export takes raw text.",
    model={"name": "lstm"},
    data={"dataset": "imdb_reviews", "shuffle_buffer": 25000},
    task={"name": "text_classification", "seq_len": 200, "vocab_size": 20000, "pretrained": None},
    optimizer={"name": "adam", "lr": 1e-3},
    train={"epochs": 3, "batch_size": 32},
)

add(
    "char-rnn",
    description="Karpathy's char-rnn (2 LSTM layers of 128, sequences of 50, RMSprop 2e-3) on "
    "tiny_shakespeare; the export generates text.",
    model={"name": "char_rnn"},
    data=SHAKESPEARE,
    task={
        "name": "language_model",
        "seq_len": 50,
        "stride": 50,
        "prompt": None,
        "sample_length": 300,
        "temperature": 0.8,
    },
    optimizer={"name": "rmsprop", "lr": 2e-3, "clipnorm": 5.0, "schedule": "cosine"},
    train={"epochs": 30, "batch_size": 50},
)

# nanoGPT config/train_shakespeare_char.py: 6 layers, 6 heads, width 384, context 256, dropout
# 0.2, batch 64, AdamW (lr 1e-3, beta2 0.99, weight decay 0.1 on matrices only), 100 warm-up
# steps, cosine to 1e-4 at 5000 iterations, gradients clipped to norm 1. nanoGPT draws windows at
# random offsets and evaluates every 250 iterations; here overlapping windows every 64 characters
# make an epoch of 245 steps, so the validation loss is logged at about that pace.
NANOGPT_ADAMW = {
    "name": "adamw",
    "lr": 1e-3,
    "min_lr": 1e-4,
    "beta_2": 0.99,
    "weight_decay": 0.1,
    "no_weight_decay": ["gamma", "beta", "bias"],
    "global_clipnorm": 1.0,
    "schedule": "cosine",
    "warmup_steps": 100,
}

add(
    "gpt-shakespeare-char",
    description="nanoGPT's shakespeare_char: a 6-layer GPT over characters, 5000 iterations "
    "(GPU; nanoGPT reaches validation loss 1.4697).",
    model={"name": "gpt"},
    data={**SHAKESPEARE, "shuffle_buffer": 20000},
    task={
        "name": "language_model",
        "seq_len": 256,
        "stride": 64,
        "prompt": None,
        "sample_length": 500,
        "temperature": 0.8,
    },
    optimizer=NANOGPT_ADAMW,
    train={"epochs": 21, "batch_size": 64, "max_steps": 5000, "eval_batch_size": 64},
)

# nanoGPT's README "I only have a macbook" configuration: context 64, batch 12, 4 layers, 4 heads,
# width 128, no dropout, 2000 iterations (nanoGPT: validation loss about 1.88).
add(
    "gpt-shakespeare-char-cpu",
    description="A small GPT over tiny_shakespeare characters that trains on a CPU in minutes.",
    model={
        "name": "gpt",
        "overrides": {
            "block_size": 64,
            "num_layers": 4,
            "num_heads": 4,
            "d_model": 128,
            "dropout": 0.0,
        },
    },
    data={**SHAKESPEARE, "shuffle_buffer": 20000},
    task={
        "name": "language_model",
        "seq_len": 64,
        "stride": 64,
        "prompt": None,
        "sample_length": 300,
        "temperature": 0.8,
    },
    optimizer=NANOGPT_ADAMW,
    train={"epochs": 2, "batch_size": 12, "max_steps": 2000, "log_every": 50},
)

add(
    "transformer-pt-en",
    description="Transformer encoder-decoder (the TensorFlow tutorial's 4 layers, width 128) "
    "translating TED talks Portuguese -> English; BLEU on the test split each epoch.",
    model={
        "name": "transformer",
        "overrides": {"num_layers": 4, "d_model": 128, "num_heads": 8, "d_ff": 512, "dropout": 0.1},
    },
    data={"dataset": "ted_hrlr_translate/pt_to_en", "validation_split": "validation"},
    task={
        "name": "seq2seq",
        "source_key": "pt",
        "target_key": "en",
        "vocab_size": 8000,
        "source_length": 128,
        "target_length": 128,
        "bleu_split": "test",
        "bleu_examples": 0,
        "decode": "greedy",
        "beam_size": 4,
        "length_penalty": 0.6,
    },
    optimizer={
        "name": "adam",
        "lr": 1e-3,
        "beta_2": 0.98,
        "schedule": "cosine",
        "warmup_steps": 4000,
    },
    train={"epochs": 20, "batch_size": 64},
)

add(
    "bert-mlm",
    description="BERT-Mini masked-LM pretraining on the 50,000 unlabelled IMDB reviews.",
    model={"name": "bert_mlm"},
    data={"dataset": "imdb_reviews", "train_split": "unsupervised", "shuffle_buffer": 50000},
    task={
        "name": "masked_language_model",
        "seq_len": 128,
        "vocab_size": 16000,
        "vocab_split": "unsupervised",
        "mask_rate": 0.15,
        "pretrained": None,
    },
    optimizer={
        "name": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.01,
        "no_weight_decay": ["gamma", "beta", "bias"],
        "schedule": "cosine",
        "warmup_steps": 500,
    },
    train={"epochs": 10, "batch_size": 64},
)

add(
    "bert-imdb",
    description="BERT-Mini sentiment classifier on IMDB reviews; start it from a bert-mlm run "
    "with --set task.pretrained=runs/bert-mlm/<run>.",
    model={"name": "bert_classifier"},
    data={"dataset": "imdb_reviews", "shuffle_buffer": 25000},
    task={"name": "text_classification", "seq_len": 128, "vocab_size": 16000, "pretrained": None},
    optimizer={
        "name": "adamw",
        "lr": 1e-4,
        "weight_decay": 0.01,
        "no_weight_decay": ["gamma", "beta", "bias"],
        "schedule": "cosine",
        "warmup_steps": 300,
    },
    train={"epochs": 4, "batch_size": 32},
)
