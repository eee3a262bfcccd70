"""Image-text recipes: a CLIP dual encoder (zoo/multimodal/clip.py) and visual question answering
(zoo/multimodal/vqa.py) with the tasks of training/tasks/image_text.py.

`clip-digit-scenes`: on scenes of the bundled digits (training/scenes.py; 8,000 training scenes
from the 4,000 training digits, 2,000 held-out scenes from the 1,000 test digits) and their
captions ("seven two nine"), scaled to 64x64 (`task.image_size`; the digits stay legible at 14-28
pixels, and a CPU trains four times as many steps; `--set task.image_size=[128,128]` keeps the
canvas): a ResNet-18 of width 16 as the image tower, a two-block Transformer encoder as the text
tower, 64-d embeddings, the symmetric InfoNCE over the global batch with a learnt temperature.
Scored each epoch by zero-shot digit classification (the 1,000 test digits, each resized to 21x21
and centred on the 64x64 canvas, against the prompts "zero" ... "nine") and recall@1/@5 both ways
over 100 held-out scenes.

`vqa-digit-scenes`: questions generated from the same scenes (training/vqa_questions.py: how many
digits, is there a <digit> (half yes, half no), what is the leftmost digit), answered over 12
answers by the same ResNet-18's feature map (2x2 cells at 64x64) read by the question through
cross-attention. The baseline per type is the training split's majority answer of that type.

`clip-coco`: tfds `coco_captions` (the first caption of each image) at 224x224x3, a ResNet-50
image tower: a GPU's work, not run here; offline it falls back to the digit scenes
(`data.fallback`).

Measured 2026-12-02 on a CPU of 2 cores shared with two other training jobs (wall times are
inflated by the sharing; user+sys is this process's CPU time), each run once with
`/usr/bin/time -v python -m training train <recipe>` (training, per-epoch scoring and the export
with its four TFLite variants):

- clip-digit-scenes, 30 epochs (1,860 steps of 128; no export in this run): zero-shot accuracy
  0.678 on the 1,000 test digits (chance 0.10; no classifier trained), recall@1 0.66
  image->text and 0.67 text->image, recall@5 0.93 and 0.96 over the 100 held-out scenes
  (chance: about 0.01 and 0.05; several scenes share a caption, so text->image can exceed
  image->text), learnt logit scale 29.2 (from 14.3). Wall 898 s, user+sys 474 s. Its validation
  scores swing in the middle epochs (epoch 16: zero-shot 0.03, epoch 18: 0.59: batch
  normalization's moving statistics trail the weights at the higher learning rates) and settle
  as the cosine schedule ends (epochs 27-30: 0.70, 0.70, 0.70, 0.68). At 12 epochs (744 steps):
  zero-shot 0.260, recall@1 0.36 / 0.41, recall@5 0.77 / 0.78 (user+sys 220 s).
- vqa-digit-scenes, 8 epochs (1,000 steps of 64 scenes x 2 questions): accuracy 0.491 over the
  8,000 held-out questions; per type: count 0.873 (majority answer 0.193), exists 0.495 (0.500),
  leftmost 0.101 (0.108). From scratch the model learns to count but not yet which digits are
  there: the image tower has not learnt digit identity in 1,000 steps. Wall 1,294 s, user+sys
  312 s.
- vqa-digit-scenes started from the 12-epoch CLIP run's image tower (`--set
  model.init_from=runs/clip-digit-scenes --set 'model.init_exclude=["image_projection"]'`: the
  40 ResNet layers load by name), same 8 epochs: accuracy 0.647; count 0.880, exists 0.660,
  leftmost 0.390, every type above its majority answer. Wall 972 s, user+sys 314 s (plus the
  CLIP run's).
"""

from training.recipes import add

SCENES = {"dataset": "digit_scenes:sample:mnist5k", "shuffle_buffer": 2048}
TOWER = {"backbone": "resnet18", "backbone_overrides": {"width": 16}}

add(
    "clip-digit-scenes",
    description="CLIP (ResNet-18 image tower, Transformer text tower, global-batch InfoNCE with a "
    "learnt temperature) on digit scenes and their captions; zero-shot digits and recall@k.",
    model={
        "name": "clip",
        "overrides": {
            **TOWER,
            "num_layers": 2,
            "d_model": 64,
            "num_heads": 4,
            "d_ff": 128,
            "embed_dim": 64,
        },
    },
    data=SCENES,
    task={"name": "clip", "seq_len": 8, "vocab_size": 200, "image_size": [64, 64]},
    optimizer={"name": "adam", "lr": 2e-3, "schedule": "cosine", "warmup_steps": 50},
    train={"epochs": 30, "batch_size": 128, "eval_batch_size": 200},
)
add(
    "vqa-digit-scenes",
    description="Visual question answering on digit scenes (count, exists, leftmost), a ResNet-18 "
    "feature map fused with the question by cross-attention; accuracy per question type.",
    model={
        "name": "vqa",
        "overrides": {
            **TOWER,
            "question_layers": 1,
            "fusion_layers": 2,
            "d_model": 64,
            "num_heads": 4,
            "d_ff": 128,
        },
    },
    data=SCENES,
    task={
        "name": "vqa",
        "seq_len": 8,
        "vocab_size": 200,
        "image_size": [64, 64],
        "train_questions": 2,
    },
    optimizer={"name": "adam", "lr": 2e-3, "schedule": "cosine", "warmup_steps": 50},
    train={"epochs": 8, "batch_size": 64, "eval_batch_size": 100},
)
add(
    "clip-coco",
    description="CLIP on COCO Captions (tfds coco_captions, 224x224 RGB, ResNet-50 image tower): "
    "a GPU recipe; offline it trains on the digit scenes instead.",
    model={
        "name": "clip",
        "overrides": {
            "backbone": "resnet50",
            "num_layers": 4,
            "d_model": 256,
            "num_heads": 4,
            "d_ff": 1024,
            "embed_dim": 256,
        },
    },
    data={
        "dataset": "coco_captions",
        "fallback": "digit_scenes:sample:mnist5k",
        "train_split": "train",
        "validation_split": "test",  # Karpathy's 5,000-image test split; the scenes have one too
        "shuffle_buffer": 1024,
        "cache": False,
    },
    task={"name": "clip", "image_size": [224, 224], "seq_len": 32, "vocab_size": 8000},
    optimizer={
        "name": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.1,
        "schedule": "cosine",
        "warmup_steps": 1000,
    },
    train={"epochs": 30, "batch_size": 256, "eval_batch_size": 256, "checkpoint_every": 2000},
    run={"mixed_precision": "auto"},
)
