"""The D2S-VSE method recipe (docs/methods/d2s-vse.md, recipe): two stages in one job, as data.

Stage ``dense`` (stage 1, the code's ``--pretrain``): images against their dense descriptions
(the text source ``dense``, one item per image); `d2s-triplet`, VSE0 with a linear ramp in the
first epoch, then hardest negatives.

Stage ``sparse`` (stage 2, ``--distill``): images against their captions, from the weights stage 1
left, with a fresh optimiser and schedule (``restart``); the text encoder now adds the
learnable-token decoder's residual to every caption embedding; `d2s-distill` adds
mean(1 − cos(student, teacher)) against a frozen copy of the stage-1 text encoder reading the
dense text of each caption's image. Warm-up and ramp restart, as in the code.

Defaults are the code's: joint space 512, decoder 100 tokens × 4 blocks × 4 heads, AdamW lr 2e-4
(the transformer at 0.1×), weight decay 1e-4, ×0.3 at epochs 9, 15, 20, 25 of each stage, grad
clip 2, batch 128, 30 + 30 epochs, margin 0.2, loss weights 1 : 1. The image side is VSE∞'s
region head (fc + MLP, GPO, region drop 0.2) on frozen features instead of a fine-tuned ViT, and
the text side all-MiniLM-L6-v2 instead of BERT-base: the models this project has offline.
``d2s-vse-vit`` is the published setting: the same two stages on a fine-tuned ViT
(`hf-vision`), given as a local checkpoint folder (``image_encoder.model``).

The code's choices kept behind options (docs/methods/d2s-vse.md, deviations):
``text_encoder.normalize_decoder_at_eval = true`` (evaluate with d̄/‖d̄‖) and
``stages.sparse.loss.teacher_mode = "train"`` (stochastic teacher). Real dense descriptions:
``texts.dense.path = "data/f30k_train.jsonl"``; a shorter version for stage 1, as the code's
``*_short200.jsonl``, is a second source (``texts.dense_short = { name = "dense-text", path = ...,
max_words = 200 }``, ``stages.dense.text = "dense_short"``).
"""

from harness.interfaces import MethodRecipe

EMBED_DIM = 512

D2S_VSE = MethodRecipe(
    name="d2s-vse",
    summary=(
        "D2S-VSE: stage 1 aligns images with dense descriptions; stage 2 fine-tunes on captions with a "
        "learnable-token decoder and distillation from the frozen stage-1 text encoder on the dense text"
    ),
    paper=(
        "Liu, Feng, Liu, Huang, Lv, Aligning Information Capacity Between Vision and Language via "
        "Dense-to-Sparse Feature Distillation for Image-Text Matching, ICCV 2025 (arXiv:2503.14953)"
    ),
    defaults={
        "image_encoder": {"name": "vse-inf-region", "feature": "regions", "embed_dim": EMBED_DIM, "region_drop": 0.2},
        # The code fine-tunes bert-base-uncased; MiniLM is the BERT-style model available offline.
        "text_encoder": {
            "name": "d2s-text",
            "embed_dim": EMBED_DIM,
            "lr_scale": 0.1,
            "num_tokens": 100,
            "decoder_depth": 4,
            "decoder_heads": 4,
        },
        "similarity_head": {"name": "cosine"},
        "texts": {"dense": {"name": "dense-text"}},
        "train": {
            "batch_size": 128,
            "optimizer": "adamw",
            "lr": 2e-4,
            "weight_decay": 1e-4,
            "lr_schedule": "multistep",
            "lr_milestones": [9, 15, 20, 25],
            "lr_decay": 0.3,
            "grad_clip": 2.0,
        },
        "stages": {
            "dense": {
                "epochs": 30,
                "text": "dense",
                "loss": {"name": "d2s-triplet", "margin": 0.2, "warmup_epochs": 1},
            },
            "sparse": {
                "epochs": 30,
                "loss": {"name": "d2s-distill", "margin": 0.2, "warmup_epochs": 1, "align_weight": 1.0, "distill_weight": 1.0},
            },
        },
    },
)


D2S_VSE_VIT = MethodRecipe(
    name="d2s-vse-vit",
    summary="D2S-VSE with its fine-tuned ViT, as published: the two stages of d2s-vse on a ViT read at 384 px",
    paper=D2S_VSE.paper,
    defaults={
        **D2S_VSE.defaults,
        # The code's VisionTransEncoder: all of the ViT's tokens (class token included), the
        # per-image token drop ρ (top rate 0.2), Linear → GPO → l2norm, the ViT at 0.1 × lr;
        # the 224-px checkpoints read 384-px images, cropped and resized as its cv2 pipeline.
        # `model` is the ViT's folder, e.g. a snapshot of google/vit-base-patch16-224-in21k.
        "image_encoder": {
            "name": "hf-vision",
            "embed_dim": EMBED_DIM,
            "pooling": "gpo",
            "image_size": 384,
            "crop": "sides",
            "token_drop": 0.2,
            "lr_scale": 0.1,
        },
    },
)
