"""Task kinds: what each kind of model is trained to do, and the serving signatures its exports
carry. One record per kind, read by both sides of the house:

- training/tasks/ has a `Task` class per kind (its `name` is the kind's) with the steps;
- serving/signatures/ has a builder per kind that adds exactly these signatures to a SavedModel;
- every registered model names its kind (`@register(..., task=...)`), checked when it registers.

`python -m training train` checks a recipe's `export.saved_model.signatures` against the kind's
list before the first step. `serving_default` is every kind's tensor-in signature (what TFLite
converts and what TF Serving calls without a signature name), always exported; the others take
what a user has (image bytes, text) and serve from SavedModel / TF Serving only.
"""

import dataclasses

DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class TaskKind:
    name: str
    summary: str
    signatures: dict  # name -> what it takes and returns


TASK_KINDS: dict[str, TaskKind] = {}


def _kind(name, summary, **signatures):
    if DEFAULT_SIGNATURE not in signatures:
        raise ValueError(f"task kind {name!r} has no {DEFAULT_SIGNATURE} signature")
    TASK_KINDS[name] = TaskKind(name, summary, signatures)


def get_kind(name: str) -> TaskKind:
    if name not in TASK_KINDS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASK_KINDS))})")
    return TASK_KINDS[name]


def check_signatures(kind: str, requested) -> list[str]:
    """The signatures to export for `requested` (None: all of the kind's); serving_default always
    comes first. ValueError naming the kind's signatures for one it does not have."""
    known = list(get_kind(kind).signatures)
    if requested is None:
        return known
    if isinstance(requested, str):
        requested = [requested]
    unknown = [s for s in requested if s not in known]
    if unknown:
        raise ValueError(
            f"task {kind!r} has no serving signature {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(known)})"
        )
    return [DEFAULT_SIGNATURE] + [s for s in known if s in requested and s != DEFAULT_SIGNATURE]


_kind(
    "classification",
    "images -> class probabilities",
    serving_default="images float32 [N,H,W,C] (0..255) -> probabilities",
    predict_image_bytes="image_bytes string [N] (PNG/JPEG) -> classes, labels, probabilities",
    explain_image_bytes="image_bytes string [N] (PNG/JPEG) -> heatmap float32 [N,H,W] (Grad-CAM "
    "of the predicted class, 0..1 at the input size), classes, labels, probabilities",
)
_kind(
    "segmentation",
    "images -> a class per pixel",
    serving_default="images uint8 [N,H,W,C] -> segmentation int32 [N,H,W] (a class per pixel at "
    "the input's resolution), probabilities float32 [N,H,W,K]",
    segment_image_bytes="image_bytes string [N] (PNG/JPEG, one size per request) -> "
    "segmentation int32 [N,H,W], probabilities float32 [N,H,W,K]",
)
_kind(
    "detection",
    "images -> boxes with classes and scores",
    serving_default="images uint8 [N,H,W,C] -> detection_boxes float32 [N,100,4] (ymin, xmin, "
    "ymax, xmax, normalized to [0,1]), detection_scores float32 [N,100], detection_classes int64 "
    "[N,100] (the index in labels.txt), num_detections int32 [N]; per-class NMS in the graph",
    detect_image_bytes="image_bytes string [N] (PNG/JPEG) -> the same, and detection_labels "
    "string [N,100] (the class names)",
)
_kind(
    "text_classification",
    "text -> class probabilities",
    serving_default="tokens int32 [N,T] -> probabilities",
    predict_text="text string [N] -> classes, labels, probabilities",
)
_kind(
    "language_model",
    "next-character prediction; text generation",
    serving_default="tokens int32 [N,T] -> logits [N,T,V]",
    generate="prompt string, max_new_tokens, temperature, seed -> text, completion",
)
_kind(
    "masked_language_model",
    "BERT masked-LM pretraining",
    serving_default="tokens int32 [N,T] -> logits [N,T,V]",
    fill_mask="text string [N] with [MASK]s -> text with them filled",
)
_kind(
    "seq2seq",
    "translation with an encoder-decoder",
    serving_default="encoder_tokens, decoder_tokens int32 -> logits",
    translate="text string [N] -> translation string [N]",
)
for _gan in ("gan", "wgan_gp"):
    _kind(
        _gan,
        "a generator of images from latent vectors",
        serving_default="latent float32 [N,D] -> images float32 0..255",
        generate="latent float32 [N,D] -> images uint8",
        sample="count int32, seed int64 -> images uint8, latent",
    )
_kind(
    "vae",
    "variational autoencoder",
    serving_default="z float32 [N,D] -> images float32 0..255 (the decoder)",
    decode="z float32 [N,D] -> images float32 0..255",
    encode="images float32 [N,H,W,C] -> z_mean, z_log_var",
    sample="count int32, seed int64 -> images uint8, latent",
)
_kind(
    "autoencoder",
    "(denoising) autoencoder",
    serving_default="images float32 [N,H,W,C] -> reconstruction float32 0..255",
    reconstruct="images float32 [N,H,W,C] -> reconstruction float32 0..255",
)
_kind(
    "embedding",
    "images -> a representation vector (a self-supervised encoder)",
    serving_default="images float32 [N,H,W,C] (0..255) -> embedding float32 [N,D] (the encoder's "
    "output, before the projection head)",
    embed_image_bytes="image_bytes string [N] (PNG/JPEG) -> embedding float32 [N,D]",
)
_kind(
    "video_classification",
    "clips -> class probabilities",
    serving_default="videos uint8 [N,T,H,W,C] (the model's T,H,W,C) -> probabilities float32 "
    "[N,K] (the tensors TFLite converts; argmax = class)",
    predict_video="videos uint8 [N,T,H,W,C] -> classes int64 [N], labels string [N], "
    "probabilities float32 [N,K]",
)
_kind(
    "captioning",
    "images -> a sentence about them",
    serving_default="images float32 [N,H,W,C] (0..255) -> tokens int32 [N,L] (greedy caption ids; "
    "the decoding loop is in the graph and converts to TFLite, see the TFLite report)",
    caption_image_bytes="image_bytes string [N] (PNG/JPEG), beam_size int32, max_length int32 -> "
    "caption string [N]",
)
_kind(
    "image_text",
    "a dual encoder of images and text in one embedding space (CLIP)",
    serving_default="images float32 [N,H,W,C] (0..255) -> image_embedding float32 [N,D] "
    "(L2-normalized)",
    embed_image="image_bytes string [N] (PNG/JPEG) -> embedding float32 [N,D]",
    embed_text="text string [N] -> embedding float32 [N,D] (the tokenizer is in the graph)",
)
_kind(
    "vqa",
    "an image and a question about it -> an answer",
    serving_default="images float32 [N,H,W,C] (0..255), question tokens int32 [N,T] -> "
    "probabilities float32 [N,A] over the answers",
    answer="image_bytes string [N] (PNG/JPEG), question string [N] -> answer string [N], "
    "probabilities",
)
_kind(
    "audio_classification",
    "a recording -> class probabilities (keyword spotting, spoken digits)",
    serving_default="waveform float32 [N,L] (-1..1 at the model's sample rate, L its clip length: "
    "centre-padded or cropped) -> probabilities float32 [N,K]",
    classify_audio_bytes="audio_bytes string [N] (16-bit PCM WAV at the model's sample rate, any "
    "length) -> classes int64 [N], labels string [N], probabilities float32 [N,K]",
)
_kind(
    "policy",
    "observations -> an action (a reinforcement-learning agent's policy)",
    serving_default="observation float32 [N,*obs] -> action (int64 [N] for discrete actions, "
    "float32 [N,A] within the action bounds for continuous ones; deterministic: argmax or the "
    "mean), and the network's own outputs (logits / q_values / value)",
    act="observation float32 [N,*obs] -> action: the deterministic action alone",
)
_kind(
    "sequential_recommendation",
    "a history of item ids -> the next item (SASRec)",
    serving_default="history int32 [N,T] (item ids, left-padded with 0, the most recent last) -> "
    "scores float32 [N,V+1] for the next item (index 0 is padding)",
    recommend="history int32 [N,L] (any L; 0 pads) -> item_ids int64 [N,k], scores float32 [N,k]: "
    "the top k by brute force over the whole item table, the history's own items excluded",
)
_kind(
    "retrieval",
    "users and items in one embedding space (two towers)",
    serving_default="user_id int32 [N], item_id int32 [N] -> user_embedding, item_embedding "
    "float32 [N,D], score float32 [N]",
    recommend="user_id int32 [N] -> item_ids int64 [N,k], scores float32 [N,k]: the top k of the "
    "item index in the graph (brute force), the user's training items excluded",
)
_kind(
    "ranking",
    "a (user, item) pair -> the probability of an interaction (DCN-v2)",
    serving_default="user_id int32 [N], item_id int32 [N] -> probability float32 [N]",
    recommend="user_id int32 [N] -> item_ids int64 [N,k], scores float32 [N,k]: every item "
    "scored, the top k, the user's training items excluded",
)
_kind(
    "speech_recognition",
    "a recording -> its transcript (CTC: spoken digit strings)",
    serving_default="waveform float32 [N,L] (-1..1 at the model's sample rate, L its clip length: "
    "the recording at the start, zero-padded or cut) -> probabilities float32 [N,T,K] per frame "
    "(K-1 tokens, the blank last; what TFLite converts)",
    transcribe_audio_bytes="audio_bytes string [N] (16-bit PCM WAV at the model's sample rate, "
    "up to its clip length) -> text string [N] (tokens joined by spaces, CTC beam search), "
    "greedy_text string [N] (greedy CTC)",
)
