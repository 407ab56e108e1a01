"""CLIP and SigLIP as methods: the training-free row every retrieval paper reports, and
fine-tuning with the model's own loss.

All three take a local checkpoint folder (docs/real-data.md, "Pretrained checkpoints")::

    [methods.clip]
    image_encoder.model = "/models/clip-vit-base-patch32"
    text_encoder.model = "/models/clip-vit-base-patch32"
    similarity_head.model = "/models/clip-vit-base-patch32"

``clip`` has no stages: it is evaluated as the checkpoint is (the zero-shot row of CLIP_benchmark).
``clip-finetune`` and ``siglip-finetune`` fine-tune both towers and the temperature with
symmetric InfoNCE or the sigmoid loss: AdamW at 1e-5 with weight decay 0.1, a cosine schedule
over 5 epochs, batch 128, the common settings of CLIP fine-tuning on COCO and Flickr30K (no
single paper fixes them).
"""

from harness.interfaces import MethodRecipe

_TOWERS = {
    "image_encoder": {"name": "clip-image"},
    "text_encoder": {"name": "clip-text"},
    "similarity_head": {"name": "clip-logits"},
}
_FINETUNING = {"batch_size": 128, "optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.1, "lr_schedule": "cosine", "grad_clip": 1.0}

CLIP = MethodRecipe(
    name="clip",
    summary="CLIP or SigLIP from a local checkpoint, evaluated as it is (the zero-shot row)",
    paper="Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021",
    defaults=_TOWERS,
)

CLIP_FINETUNE = MethodRecipe(
    name="clip-finetune",
    summary="CLIP fine-tuned with its symmetric InfoNCE loss and learnable temperature",
    paper=CLIP.paper,
    defaults={**_TOWERS, "train": _FINETUNING, "stages": {"finetune": {"epochs": 5, "loss": {"name": "clip-infonce"}}}},
)

SIGLIP_FINETUNE = MethodRecipe(
    name="siglip-finetune",
    summary="SigLIP fine-tuned with its pairwise sigmoid loss, learnable temperature and bias",
    paper="Zhai, Mustafa, Kolesnikov, Beyer, Sigmoid Loss for Language Image Pre-Training, ICCV 2023",
    defaults={**_TOWERS, "train": _FINETUNING, "stages": {"finetune": {"epochs": 5, "loss": {"name": "siglip-sigmoid"}}}},
)
